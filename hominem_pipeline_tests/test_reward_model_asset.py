"""The reward_model asset in process: metrics as metadata, the version as data version, `current` moved
only when the blocking check passes, and a model no better than the mean blocked."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from hominem_pipeline.atomic import Pointer
from hominem_pipeline.defs.assets.reward_model import reward_model, reward_model_beats_baseline
from hominem_pipeline.defs.resources import HominemResource
from hominem_pipeline.manifold import load_manifold
from hominem_pipeline.reward_model.registry import reward_model_root
from hominem_pipeline.settings import Settings
from hominem_pipeline.store import TrainingDatabase
from hominem_pipeline_tests.reward_data import constant_rows, make_home, planted_rows, write_jsonl


@dg.asset(deps=[reward_model])
def scored_downstream() -> None:
    """Stands in for anything that scores with the reward model (preference pairs, training)."""


def _run(home: Path, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    resources = {"hominem": HominemResource(home=str(home), config_dir=str(home / "config"))}
    return dg.materialize(
        [reward_model, reward_model_beats_baseline, scored_downstream],
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )


def _materialization(result: dg.ExecuteInProcessResult) -> dg.AssetMaterialization:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == reward_model.key]
    return event.materialization


def _downstream_ran(result: dg.ExecuteInProcessResult) -> bool:
    return any(e.asset_key == scored_downstream.key for e in result.get_asset_materialization_events())


def test_asset_publishes_version_with_metrics_and_check_gates_current(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    settings = Settings(home=home, config_dir=home / "config")
    manifold = load_manifold(settings.manifold_path)
    write_jsonl(settings.reward_samples_export, planted_rows(manifold))
    with TrainingDatabase(settings.database_path) as db:
        db.insert_imported_preferences(
            [
                {
                    "pair_id": f"p{i}",
                    "prompt": f"Help me with chore {i}?",
                    "chosen": "Sure, here is how.",
                    "rejected": "No.",
                    "source_file": "x.jsonl",
                    "line_no": i,
                    "source": "chores/helpful",
                    "dimensions": ["narrative_alignment"],
                    "dimensions_from": "source",
                }
                for i in range(1, 6)
            ]
        )
    instance = dg.DagsterInstance.ephemeral()

    good = _run(home, instance)
    assert good.success and _downstream_ran(good)
    [check] = good.get_asset_check_evaluations()
    assert check.check_name == "reward_model_beats_baseline" and check.passed
    # Too few held-out imported pairs to judge on (1 of 5), so the teacher labels decide, out of fold on
    # every labelled sample rather than on the few validation prompts.
    assert check.metadata["basis"].value == "teacher labels, out of fold"
    assert check.metadata["n"].value == len(planted_rows(manifold))
    mat = _materialization(good)
    meta = {k: v.value for k, v in mat.metadata.items()}
    version = meta["version"]
    assert mat.tags["dagster/data_version"] == version
    assert meta["accepted_as_current"] is True and meta["pairs_imported"] == 5
    assert meta["validation/heads/empathy/mae"] < meta["validation/heads/empathy/baseline_mae"]
    assert meta["validation/summary/mae_mean"] < meta["validation/summary/baseline_mae_mean"]
    assert "pairs/accuracy" in meta and "length_bias/empathy/model" in meta
    root = reward_model_root(settings.artifacts_dir)
    assert Pointer(root, "current").target == version
    stored = json.loads((root / version / "METADATA.json").read_text())
    assert stored["training_data"]["pairs_imported"] == 5
    # The helpfulness head also learned that the chosen answer of each imported pair it trained on (4: the
    # fifth is held out, above) beats 2 bare refusals (config [refusals]); no other head takes any.
    per_dimension = stored["preference"]["per_dimension"]
    assert per_dimension["narrative_alignment"]["refusal_pairs"] == 2 * 4
    assert all(d["refusal_pairs"] == 0 for name, d in per_dimension.items() if name != "narrative_alignment")

    # Labels with nothing to learn: a new version is published, the check fails, `current` stays put.
    write_jsonl(settings.reward_samples_export, constant_rows(manifold))
    bad = _run(home, instance)
    [check] = bad.get_asset_check_evaluations()
    assert not check.passed and "training-mean baseline" in check.description
    assert check.metadata["basis"].value == "teacher labels, out of fold"
    assert not bad.success and not _downstream_ran(bad)  # blocking: nothing downstream runs on it
    bad_version = _materialization(bad).metadata["version"].value
    assert bad_version != version
    assert Pointer(root, "latest").target == bad_version
    assert Pointer(root, "current").target == version
