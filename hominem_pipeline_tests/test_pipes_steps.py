"""The training and evaluation steps through Dagster Pipes: `dual_lora` and `lora_eval` with
`launcher: pipes` run in a subprocess (PipesSubprocessClient) on the tiny model, and report back the same
metadata, data version and logs as in-process; promotion then reads them like any other run."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg

from hominem_pipeline.defs.assets.evaluation import EVALUATION_ASSETS, EVALUATION_CHECKS
from hominem_pipeline.defs.assets.training import dual_lora
from hominem_pipeline.defs.resources import HominemResource
from hominem_pipeline_tests.test_lora_eval_assets import _small_eval_config
from hominem_pipeline_tests.test_training_faces import _seed_data


def _run(home: Path, launcher: str, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    resources = {"hominem": HominemResource(home=str(home), config_dir=str(home / "config"))}
    return dg.materialize(
        [dual_lora, *EVALUATION_ASSETS, *EVALUATION_CHECKS],
        resources=resources,
        run_config={
            "ops": {
                "dual_lora": {"config": {"max_steps": 2, "launcher": launcher}},
                "lora_eval": {"config": {"launcher": launcher}},
            }
        },
        instance=instance,
        raise_on_error=False,
    )


def _metadata(result: dg.ExecuteInProcessResult, key: str) -> tuple[dict, dict]:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.path == [key]]
    mat = event.materialization
    return {k: v.value for k, v in mat.metadata.items()}, {
        k: type(v).__name__ for k, v in mat.metadata.items()
    }


def test_training_and_evaluation_through_pipes_report_what_in_process_reports(
    hominem_home: Path, tiny_model_dir: Path
) -> None:
    _seed_data(hominem_home, sft_in_store=True)
    _small_eval_config(hominem_home / "config")
    twin = hominem_home.parent / "twin"  # the same starting state, for the in-process run
    shutil.copytree(hominem_home, twin)
    instance = dg.DagsterInstance.ephemeral()
    piped = _run(hominem_home, "pipes", instance)
    assert piped.success or [e for e in piped.get_asset_check_evaluations() if not e.passed]
    trained, trained_kinds = _metadata(piped, "dual_lora")
    assert trained["trained"] is True and trained["steps"] == 2
    assert Path(trained["path"]).name == trained["version"] and Path(trained["path"]).is_dir()
    [event] = [e for e in piped.get_asset_materialization_events() if e.asset_key.path == ["dual_lora"]]
    assert event.materialization.tags["dagster/data_version"] == trained["version"]
    evaluated, eval_kinds = _metadata(piped, "lora_eval")
    assert evaluated["version"] == trained["version"] and isinstance(evaluated["passed"], bool)
    assert Path(evaluated["report"]).is_file()
    # The subprocess's log lines came back into the run's event log.
    messages = [e.user_message for e in instance.all_logs(piped.run_id)]
    assert any("dual_lora: step 2/2" in m for m in messages)

    in_process = _run(twin, "in_process", dg.DagsterInstance.ephemeral())
    local_trained, local_kinds = _metadata(in_process, "dual_lora")
    local_eval, local_eval_kinds = _metadata(in_process, "lora_eval")
    # Same keys, same metadata types (path, md, json, ...), whichever process ran the step.
    assert trained_kinds == local_kinds
    assert eval_kinds == local_eval_kinds
    assert local_trained["cycle"] == trained["cycle"] == 1
