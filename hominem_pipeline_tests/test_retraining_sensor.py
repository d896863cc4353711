"""The retraining sensor on a real ephemeral Dagster instance: it counts what is new since the accepted
adapter from the channels' exports, fires on each of seed 000's three rules and only then, says why in
its skip reason, never requests the same data twice, and waits while a retraining run is queued."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
import yaml

from hominem_pipeline.adapters import CURRENT, AdapterRegistry, model_name_for_spec
from hominem_pipeline.definitions import defs
from hominem_pipeline.defs.jobs import RETRAINING_TAG, retraining_job
from hominem_pipeline.defs.resources import HominemResource
from hominem_pipeline.defs.sensors import retraining_sensor
from hominem_pipeline.settings import Settings
from hominem_pipeline_tests.retraining_helpers import Exports


def _evaluate(home: Path, instance: dg.DagsterInstance, cursor: str | None = None):
    # Entered and left: a context with resources otherwise leaves Dagster's context-local defs-state
    # storage pointing at this test's instance for every later test in the process.
    with dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"hominem": HominemResource(home=str(home), config_dir=str(home / "config"))},
    ) as ctx:
        return retraining_sensor(ctx)


def _accept(home: Path, name: str) -> str:
    """Publish a stand-in adapter version and make it `current`, as a passing promotion would."""
    settings = Settings(home=home)
    registry = AdapterRegistry(settings.artifacts_dir, model_name_for_spec(settings.inference.student.model))
    folder = registry.root / name
    folder.mkdir(parents=True)
    (folder / "METADATA.json").write_text(
        json.dumps({"created_at": "2026-03-01T00:00:00Z", "base_model": "tiny"})
    )
    registry.pointer(CURRENT).set(name)
    return name


@pytest.fixture
def instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.ephemeral()


def test_below_every_threshold_skips_and_says_the_counts(
    hominem_home: Path, instance: dg.DagsterInstance
) -> None:
    Exports(hominem_home).add(conversations=240, pairs=90)
    result = _evaluate(hominem_home, instance)
    assert isinstance(result, dg.SkipReason)
    assert (
        "240/500 new conversations" in result.skip_message
        and "90/200 new preference pairs" in result.skip_message
    )
    assert "needs >= 250 and >= 100" in result.skip_message
    # Counted from the exports: the sensor never opened (or created) the DuckDB store.
    assert not Settings(home=hominem_home).database_path.exists()


@pytest.mark.parametrize(
    ("first", "then", "rule", "totals"),
    [
        ((499, 0), (1, 0), "memory", (500, 0)),
        ((0, 199), (0, 1), "reward", (0, 200)),
        ((250, 99), (0, 1), "both", (250, 100)),
    ],
)
def test_each_rule_requests_exactly_one_run_and_the_same_cursor_no_second(
    hominem_home: Path, instance: dg.DagsterInstance, first: tuple, then: tuple, rule: str, totals: tuple
) -> None:
    exports = Exports(hominem_home)
    exports.add(*first)  # one short of the rule: nothing
    assert isinstance(_evaluate(hominem_home, instance), dg.SkipReason)
    exports.add(*then, tag="x")
    fired = _evaluate(hominem_home, instance)
    assert isinstance(fired, dg.SensorResult)
    [request] = fired.run_requests
    assert request.job_name in (None, "retraining_job") and request.tags["hominem/rule"] == rule
    assert (
        int(request.tags["hominem/new_conversations"]),
        int(request.tags["hominem/new_preference_pairs"]),
    ) == totals
    # The next tick with the cursor it returned: the same data is not requested twice.
    again = _evaluate(hominem_home, instance, cursor=fired.cursor)
    assert (
        isinstance(again, dg.SkipReason) and "already requested for exactly this data" in again.skip_message
    )


def test_counts_restart_from_the_accepted_cycle_and_a_rejected_cycle_keeps_counting(
    hominem_home: Path, instance: dg.DagsterInstance
) -> None:
    exports = Exports(hominem_home)
    exports.add(pairs=200)
    first = _evaluate(hominem_home, instance)
    assert isinstance(first, dg.SensorResult)
    # Data arrives while the cycle trains; then the cycle is accepted (promotion moves `current`).
    exports.add(pairs=30, tag="late")
    _accept(hominem_home, "v1")
    after = _evaluate(hominem_home, instance, cursor=first.cursor)
    assert isinstance(after, dg.SkipReason)
    # Counted from the data the accepted cycle was requested for, so the late 30 are new.
    assert "30/200 new preference pairs" in after.skip_message and "since v1" in after.skip_message

    # The next cycle is requested but rejected (`current` stays at v1): new data still counts from v1.
    exports.add(pairs=170, tag="more")
    second = _evaluate(hominem_home, instance, cursor=first.cursor)
    assert (
        isinstance(second, dg.SensorResult)
        and second.run_requests[0].tags["hominem/new_preference_pairs"] == "200"
    )
    assert isinstance(_evaluate(hominem_home, instance, cursor=second.cursor), dg.SkipReason)
    exports.add(pairs=1, tag="one")
    third = _evaluate(hominem_home, instance, cursor=second.cursor)
    assert (
        isinstance(third, dg.SensorResult)
        and third.run_requests[0].tags["hominem/new_preference_pairs"] == "201"
    )
    assert third.run_requests[0].run_key != second.run_requests[0].run_key


def _queued_retraining_run(instance: dg.DagsterInstance) -> dg.DagsterRun:
    """A retraining run as the sensor, a schedule or the UI submits it: queued, from the code location."""
    from dagster._core.remote_origin import (
        InProcessCodeLocationOrigin,
        RemoteJobOrigin,
        RemoteRepositoryOrigin,
    )
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    job = defs.resolve_job_def("retraining_job")
    location = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name="hominem_pipeline.definitions"), "hominem"
    )
    origin = RemoteJobOrigin(RemoteRepositoryOrigin(location, "__repository__"), job.name)
    return instance.create_run_for_job(
        job_def=job, status=dg.DagsterRunStatus.QUEUED, tags=dict(job.tags), remote_job_origin=origin
    )


def test_waits_while_a_retraining_run_is_queued(hominem_home: Path, instance: dg.DagsterInstance) -> None:
    Exports(hominem_home).add(conversations=500)
    queued = _queued_retraining_run(instance)
    result = _evaluate(hominem_home, instance)
    assert isinstance(result, dg.SkipReason) and queued.run_id in result.skip_message
    instance.report_run_canceled(queued)
    assert isinstance(_evaluate(hominem_home, instance), dg.SensorResult)


def test_the_instance_of_dagster_yaml_never_starts_two_retraining_runs(tmp_path: Path) -> None:
    # The run queue of the project's own dagster.yaml, asked what to start: of two queued retraining runs
    # it starts one; while that one runs it starts none. (The daemon's own selection logic.)
    from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon

    overrides = yaml.safe_load((Path(__file__).resolve().parents[1] / "dagster.yaml").read_text())
    with dg.instance_for_test(overrides=overrides, temp_dir=str(tmp_path)) as inst:
        daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)

        def to_start() -> list[str]:
            return [r.run_id for r in daemon._get_runs_to_dequeue(inst, inst.get_concurrency_config(), None)]

        queued = [_queued_retraining_run(inst), _queued_retraining_run(inst)]
        [chosen] = to_start()
        assert chosen in {r.run_id for r in queued}
        # A retraining run already in progress: nothing more starts until it ends.
        job = defs.resolve_job_def("retraining_job")
        running = inst.create_run_for_job(
            job_def=job, status=dg.DagsterRunStatus.STARTED, tags=dict(job.tags)
        )
        assert to_start() == []
        inst.report_run_failed(running)
        assert len(to_start()) == 1


def test_retraining_job_is_dual_lora_and_downstream_so_a_later_gate_joins_without_edits() -> None:
    job = defs.resolve_job_def("retraining_job")
    assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} >= {
        "dual_lora",
        "lora_eval",
        "adapter_promotion",
    }
    assert not {k.to_user_string() for k in job.asset_layer.selected_asset_keys} & {
        "conversations",
        "sft_pairs",
        "preference_pairs",
        "reward_model",
    }
    assert "lora_no_regression" in {c.name for c in job.asset_layer.asset_graph.asset_check_keys}
    assert job.tags[RETRAINING_TAG] == "cycle"

    # An asset placed between evaluation and promotion (the Reward Health Index report) is in the job.
    @dg.asset(deps=["lora_eval"])
    def health_gate() -> None: ...

    extended = dg.Definitions(
        assets=[*defs.assets, health_gate], jobs=[retraining_job], resources=defs.resources
    )
    keys = extended.resolve_job_def("retraining_job").asset_layer.selected_asset_keys
    assert dg.AssetKey("health_gate") in keys
