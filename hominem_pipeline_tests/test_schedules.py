"""The schedules on a real ephemeral instance: the daily labelling asks for yesterday's UTC partition and
for days whose labelling deferred turns; the weekly fallback retrains only when the sensor stayed quiet
and something is new. Both are on by default, at the times and in the timezone of config/hominem.toml."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from hominem_pipeline.definitions import defs
from hominem_pipeline.defs.resources import HominemResource
from hominem_pipeline.defs.schedules import (
    daily_conversation_labels,
    last_complete_day,
    weekly_retraining_fallback,
)
from hominem_pipeline.settings import ConfigError, Settings
from hominem_pipeline_tests.conftest import write_config
from hominem_pipeline_tests.retraining_helpers import Exports


def test_schedules_run_by_default_at_the_configured_times() -> None:
    times = Settings().pipeline.schedules
    by_name = {s.name: s for s in defs.schedules}
    assert set(by_name) >= {"daily_conversation_labels", "weekly_retraining_fallback"}
    for name, cron in (
        ("daily_conversation_labels", times.conversation_labels),
        ("weekly_retraining_fallback", times.retraining_fallback),
    ):
        schedule = by_name[name]
        assert schedule.cron_schedule == cron and schedule.execution_timezone == times.timezone
        assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert by_name["daily_conversation_labels"].job_name == "conversations_job"
    assert by_name["weekly_retraining_fallback"].job_name == "retraining_job"
    [sensor] = [s for s in defs.sensors if s.name == "retraining_sensor"]
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_a_bad_schedule_setting_names_its_field(hominem_home: Path) -> None:
    write_config(hominem_home / "config", pipeline={"schedules.timezone": "Mars/Olympus"})
    with pytest.raises(ConfigError, match=r"(?s)hominem.toml.*schedules.timezone.*Mars/Olympus"):
        _ = Settings(home=hominem_home).pipeline


def test_last_complete_day_is_a_utc_day_whatever_the_zone() -> None:
    # 00:30 in Berlin on 3 March is 23:30 UTC on 2 March: the newest finished event-log day is 1 March.
    assert last_complete_day(datetime(2026, 3, 3, 0, 30, tzinfo=ZoneInfo("Europe/Berlin"))) == date(
        2026, 3, 1
    )
    assert last_complete_day(datetime(2026, 3, 3, 0, 30, tzinfo=UTC)) == date(2026, 3, 2)


def test_daily_labels_ask_for_yesterday_and_days_with_deferred_turns() -> None:
    # A schedule context needs an instance with a ref; entered in the test body (a yield fixture would leave
    # Dagster's context-local instance state set for later tests).
    with dg.instance_for_test() as instance:
        _daily_labels(instance)


def _daily_labels(instance: dg.DagsterInstance) -> None:
    def report(day: str, deferred: int) -> None:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                "conversation_labels", partition=day, metadata={"deferred_to_next_run": deferred}
            )
        )

    report("2026-02-27", 5)
    report("2026-02-27", 0)  # a later run rated the rest: nothing left there
    report("2026-02-28", 3)
    report("2026-02-10", 4)  # outside the lookback window
    ctx = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=datetime(2026, 3, 3, 0, 30, tzinfo=UTC)
    )
    requests = daily_conversation_labels(ctx)
    assert [(r.partition_key, r.tags["hominem/trigger"]) for r in requests] == [
        ("2026-02-28", "deferred-turns"),
        ("2026-03-02", "daily-labels"),
    ]
    assert len({r.run_key for r in requests}) == 2


def _fallback(home: Path, instance: dg.DagsterInstance, at: datetime):
    # Entered and left: a context with resources otherwise leaves Dagster's context-local defs-state
    # storage pointing at this test's instance for every later test in the process.
    with dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=at,
        resources={"hominem": HominemResource(home=str(home), config_dir=str(home / "config"))},
    ) as ctx:
        return weekly_retraining_fallback(ctx)


def test_weekly_fallback_needs_a_quiet_sensor_and_something_new(hominem_home: Path) -> None:
    with dg.instance_for_test() as instance:
        _weekly_fallback(hominem_home, instance)


def _weekly_fallback(hominem_home: Path, instance: dg.DagsterInstance) -> None:
    now = datetime.now(UTC)
    nothing = _fallback(hominem_home, instance, now)
    assert isinstance(nothing, dg.SkipReason) and "nothing new" in nothing.skip_message

    Exports(hominem_home).add(conversations=3, pairs=2)  # far below the sensor's thresholds
    job = defs.resolve_job_def("retraining_job")
    instance.create_run_for_job(
        job_def=job,
        status=dg.DagsterRunStatus.SUCCESS,
        tags={**job.tags, "dagster/sensor_name": "retraining_sensor"},
    )
    recent = _fallback(hominem_home, instance, now + timedelta(days=2))
    assert isinstance(recent, dg.SkipReason) and "the retraining sensor fired" in recent.skip_message

    request = _fallback(hominem_home, instance, now + timedelta(days=8))
    assert isinstance(request, dg.RunRequest)
    assert request.tags["hominem/trigger"] == "weekly-fallback"
    assert (request.tags["hominem/new_conversations"], request.tags["hominem/new_preference_pairs"]) == (
        "3",
        "2",
    )


def test_each_maintenance_and_health_schedule_ticks_into_a_run_of_its_job_and_that_job_runs(
    hominem_home: Path,
) -> None:
    """The nightly maintenance, the nightly RHI replay and the online update, driven as the daemon drives them: a tick of the
    schedule in `defs` gives one run request, and the job it names (resolved from `defs`) runs to success."""
    from hominem_pipeline.store import TrainingDatabase
    from hominem_pipeline_tests.test_maintenance import ROWS

    with TrainingDatabase(Settings(home=hominem_home).database_path) as store:
        store.insert_sft_pairs(ROWS)
    resources = {"hominem": HominemResource(home=str(hominem_home), config_dir=str(hominem_home / "config"))}
    by_name = {s.name: s for s in defs.schedules}
    with dg.instance_for_test() as instance:
        for name, job_name in (
            ("nightly_maintenance", "nightly_maintenance_job"),
            ("rhi_nightly_schedule", "rhi_nightly_job"),
            ("online_update_schedule", "online_update_job"),
        ):
            schedule = by_name[name]
            assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
            tick = schedule.evaluate_tick(
                dg.build_schedule_context(
                    instance=instance, scheduled_execution_time=datetime(2026, 3, 3, 3, 30, tzinfo=UTC)
                )
            )
            assert len(tick.run_requests or []) == 1 and schedule.job_name == job_name
            result = defs.resolve_job_def(job_name).execute_in_process(
                resources=resources, instance=instance, run_config=tick.run_requests[0].run_config or None
            )
            assert result.success
        maintained = instance.get_latest_materialization_event(dg.AssetKey("sft_maintenance"))
        assert maintained is not None and maintained.asset_materialization.metadata[
            "rows_before"
        ].value == len(ROWS)
        # No feedback not yet learned: the fast loop skips, says why, and trains nothing.
        online = instance.get_latest_materialization_event(
            dg.AssetKey("rhi_online")
        ).asset_materialization.metadata
        assert online["decision"].value == "skip" and "no feedback pairs" in online["reason"].value
        assert online["candidate"].value == "none"
