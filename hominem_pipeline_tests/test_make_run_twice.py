"""`make run`, twice in a row, on the tiny model: the whole graph (every asset, today's partition, with
every check) materialised by the `dagster` CLI against a real instance that enforces the repository's
`dagster.yaml` pools, with the multiprocess executor, so steps really run side by side in their own
processes. The second run is the fast one, where a step outside the store pool once raced a writer for
DuckDB's file lock and failed the run (issue 8). With nothing new, the second run trains and evaluates
nothing (issue 10: every expensive asset says `unchanged`); a third run after a change to the training
recipe retrains the adapter and re-evaluates it, and still reuses the reward model, which does not
depend on the recipe.

The teacher is the `openai` backend talking to a loopback server that writes fixed candidates and rates
them by a plain rule (a caring answer high, a curt one low). The graph has blocking gates whose verdict
depends on what the teacher said (the reward model must beat the mean); with a model's free output they
would pass on one machine and fail on another, and this test is about the runs, not the teacher.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import yaml

from hominem_pipeline.definitions import defs
from hominem_pipeline.events.importers import import_conversations
from hominem_pipeline.events.log import EventLog
from hominem_pipeline.extraction.config import events_dir
from hominem_pipeline.settings import REPO_ROOT, Settings
from hominem_pipeline_tests.conftest import write_config
from hominem_pipeline_tests.loopback_http import ScriptedChatServer, completion
from hominem_pipeline_tests.test_lora_eval_assets import _small_eval_config as small_eval_config

EXAMPLES = REPO_ROOT / "examples" / "conversations"
CARING = "I am sorry that happened. How are you feeling about it, and what would help you most right now?"
CURT = "No."


def rule_teacher(request: dict) -> tuple[int, dict]:
    """Candidates alternate caring / curt by seed; a rating request (it carries the rating schema) gets 5
    on every criterion for a caring answer and 1 for any other, whatever criteria the schema names."""
    fmt = request.get("response_format")
    if not fmt:
        return 200, completion(CARING if request.get("seed", 0) % 2 == 0 else CURT)
    schema = fmt["schema"]
    exchange = request["messages"][-1]["content"].split("\n\nRate the", 1)[0]
    answer = exchange.split("Assistant: ", 1)[-1]
    score = 5 if "sorry" in answer.lower() else 1
    rating = {
        "reward_vector": dict.fromkeys(schema["properties"]["reward_vector"]["required"], score),
        "reward_intensity": score,
        "safety_score": score,
    }
    if "rationale" in schema["properties"]:
        rating["rationale"] = "rule"
    return 200, completion(json.dumps(rating))


def _small(home: Path, teacher_url: str) -> None:
    """The rule teacher, and the fewest rows and steps that still run every asset and check."""
    config = home / "config"
    write_config(
        config,
        inference={
            "teacher.backend": "openai",
            "teacher.base_url": teacher_url,
            "teacher.rating_mode": "json_object",
        },
        pipeline={"generation.prompts_limit": 8},
    )
    training = yaml.safe_load((config / "training" / "lora_dual.yaml").read_text())
    training["max_steps"] = 2
    (config / "training" / "lora_dual.yaml").write_text(yaml.safe_dump(training))
    small_eval_config(config)
    # Every assistant turn rated in the first run (none deferred), so the second run has nothing new.
    conversations = config / "conversations.toml"
    conversations.write_text(
        conversations.read_text().replace("max_turns_per_run = 8", "max_turns_per_run = 0")
    )


def test_the_whole_graph_materialises_twice_in_a_row_with_pools_enforced(
    hominem_home: Path, tmp_path: Path
) -> None:
    with ScriptedChatServer(rule_teacher) as teacher:
        _run_twice(hominem_home, tmp_path, teacher.url)


def _run_twice(hominem_home: Path, tmp_path: Path, teacher_url: str) -> None:
    _small(hominem_home, teacher_url)
    settings = Settings(home=hominem_home)
    log = EventLog(events_dir(settings))
    for name in ("sample_conversations.jsonl", "lmstudio_conversation.json"):
        import_conversations(EXAMPLES / name, log)
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    today = datetime.now(UTC).date().isoformat()
    command = [
        sys.executable,
        "-m",
        "dagster",
        "asset",
        "materialize",
        "-m",
        "hominem_pipeline.definitions",
        "--select",
        "*",
        "--partition",
        today,
    ]

    def materialise(attempt: str) -> None:
        done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
        # Green every time: a cycle that fails its evaluation is refused (a warning), not a failed run.
        assert done.returncode == 0, f"{attempt} run failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"

    materialise("first")
    first = _latest(dagster_home)
    assert first["dual_lora"]["trained"] is True and first["reward_model"]["unchanged"] is False
    materialise("second")
    second = _latest(dagster_home)
    # Nothing new: no adapter trained, no evaluation run, no reward model trained; the same versions.
    for key in ("dual_lora", "lora_eval", "reward_model"):
        assert second[key]["unchanged"] is True, (key, second[key])
    assert second["dual_lora"]["trained"] is False
    assert second["dual_lora"]["version"] == first["dual_lora"]["version"]
    assert second["reward_model"]["version"] == first["reward_model"]["version"]

    every_check = {c.check_key.name for c in defs.asset_checks}
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1  # the pools were on
        runs = instance.get_runs()
        assert [r.status for r in runs] == [dg.DagsterRunStatus.SUCCESS] * 2
        for run in runs:
            failed = instance.get_records_for_run(
                run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE
            ).records
            assert failed == [], f"run {run.run_id} had failed steps"
            evaluated = {
                r.event_log_entry.dagster_event.event_specific_data.check_name
                for r in instance.get_records_for_run(
                    run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
                ).records
            }
            assert evaluated == every_check  # every check ran (none skipped behind a failure)

    # A changed input re-runs what depends on it: a new recipe trains a new cycle and evaluates it; the
    # reward model, upstream of the recipe, stays as it was.
    recipe = hominem_home / "config" / "training" / "lora_dual.yaml"
    training = yaml.safe_load(recipe.read_text())
    training["max_steps"] = 3
    recipe.write_text(yaml.safe_dump(training))
    materialise("third")
    third = _latest(dagster_home)
    assert third["dual_lora"]["trained"] is True and third["dual_lora"]["unchanged"] is False
    assert third["dual_lora"]["version"] != first["dual_lora"]["version"]
    assert (
        third["lora_eval"]["unchanged"] is False
        and third["lora_eval"]["version"] == third["dual_lora"]["version"]
    )
    assert third["reward_model"]["unchanged"] is True


def _latest(dagster_home: Path) -> dict[str, dict]:
    """Each asset's latest materialisation metadata, as plain values."""
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        out = {}
        for key in ("dual_lora", "lora_eval", "reward_model"):
            event = instance.get_latest_materialization_event(dg.AssetKey(key))
            out[key] = {k: v.value for k, v in event.asset_materialization.metadata.items()}
        return out
