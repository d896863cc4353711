"""The whole Dagster code location loads, and every asset the pipeline promises is in it."""

from __future__ import annotations

import dagster as dg

from hominem_pipeline.definitions import defs


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


def test_every_asset_that_writes_the_store_is_in_the_duckdb_pool() -> None:
    for key in ("seed_prompts", "trajectories", "reward_labels"):
        assert defs.resolve_assets_def(key).op.pool == "duckdb", key
