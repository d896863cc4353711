"""The whole Dagster code location loads, and every asset the pipeline promises is in it."""

from __future__ import annotations

import inspect

import dagster as dg

from hominem_pipeline.definitions import defs
from hominem_pipeline.defs.resources import STORE_POOL


def test_definitions_load_with_every_job_and_check() -> None:
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"seed_prompts", "base_model", "trajectories", "reward_labels"} <= keys
    # Lineage: labels come from trajectories, which come from seed prompts.
    assert dg.AssetKey("trajectories") in graph.get(dg.AssetKey("reward_labels")).parent_keys
    assert dg.AssetKey("seed_prompts") in graph.get(dg.AssetKey("trajectories")).parent_keys
    checks = {c.name for c in graph.asset_check_keys}
    assert {"reward_labels_schema_valid", "reward_labels_coverage", "trajectories_complete"} <= checks
    job = defs.resolve_job_def("hominem_main_job")
    assert job is not None


#: Steps that never open the DuckDB store: they read exports, models or the Dagster instance. A new step
#: lands here only if it does not touch the store; otherwise it joins the pool.
STEPS_OUTSIDE_THE_STORE = {
    "base_model",
    "lora_eval",
    "seed_prompts_cover_categories",
    "trajectories_complete",
    "reward_labels_schema_valid",
    "reward_model_beats_baseline",
    "preference_pairs_valid",
    "sft_pairs_valid",
    "lora_no_regression",
    "rhi_consolidation_gate",
}


def _steps() -> dict[str, tuple[str | None, str]]:
    """name -> (pool, source of its compute function) for every asset and asset check."""
    out = {}
    for d in [*defs.assets, *defs.asset_checks]:
        name = d.check_key.name if isinstance(d, dg.AssetChecksDefinition) else d.key.to_user_string()
        out[name] = (d.op.pool, inspect.getsource(d.op.compute_fn.decorated_fn))
    return out


def test_every_step_that_opens_the_store_is_in_the_store_pool() -> None:
    # DuckDB lets one process hold the file (even a reader beside a writer), so a step outside the pool
    # that opens it races the pool's writer for the lock: `make run` failed that way once.
    steps = _steps()
    assert set(steps) >= STEPS_OUTSIDE_THE_STORE
    for name, (pool, source) in steps.items():
        if name in STEPS_OUTSIDE_THE_STORE:
            assert "open_db(" not in source and "TrainingDatabase" not in source, name
        else:
            assert pool == STORE_POOL, f"{name} opens the store but is not in the {STORE_POOL!r} pool"


def test_definitions_and_the_cli_load_without_the_training_stack() -> None:
    """Every Dagster step runs in its own process that imports the definitions, and every `hominem` command
    imports the CLI: neither may pull in torch or scipy before a step or command needs them (a step that
    only checks "unchanged" would otherwise pay seconds of imports)."""
    import subprocess
    import sys

    heavy = ("torch", "scipy", "sklearn", "transformers", "sentence_transformers")
    for module in ("hominem_pipeline.definitions", "hominem_pipeline.cli"):
        probe = f"import sys, {module}; print(','.join(m for m in {heavy!r} if m in sys.modules))"
        loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
        assert loaded.stdout.strip() == "", f"importing {module} loaded {loaded.stdout.strip()}"
