"""Schedules: the daily conversation labelling and the weekly retraining fallback.

Times and timezone come from `[schedules]` in config/hominem.toml; both start RUNNING, so `make dev`
shows them on. Event-log days (the daily partitions) are UTC days whatever the schedule's timezone.
"""

from datetime import UTC, date, datetime, timedelta

import dagster as dg

from hominem_pipeline import retraining
from hominem_pipeline.defs.assets.conversations import daily
from hominem_pipeline.defs.jobs import conversations_job, retraining_job
from hominem_pipeline.defs.resources import HominemResource
from hominem_pipeline.defs.sensors import active_retraining_run, cycle_request, retraining_sensor
from hominem_pipeline.settings import Settings

_times = Settings().pipeline.schedules
CONVERSATION_LABELS = dg.AssetKey("conversation_labels")
#: How far back the daily schedule looks for days whose labelling deferred turns to a later run.
DEFERRED_LOOKBACK_DAYS = 7


def last_complete_day(moment: datetime) -> date:
    """The newest UTC day (event-log file) that is over at `moment`."""
    return moment.astimezone(UTC).date() - timedelta(days=1)


def days_with_deferred_turns(instance: dg.DagsterInstance, before: date) -> list[date]:
    """Days in the lookback window whose latest `conversation_labels` materialisation left turns unrated."""
    days = [before - timedelta(days=i) for i in range(1, DEFERRED_LOOKBACK_DAYS + 1)]
    keys = [d.isoformat() for d in days if d.isoformat() >= daily.start.date().isoformat()]
    if not keys:
        return []
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=CONVERSATION_LABELS, asset_partitions=keys), limit=1000
    ).records
    latest: dict[str, int] = {}
    for rec in records:  # newest first: the first record of a partition is its latest materialisation
        mat = rec.asset_materialization
        if mat is None or mat.partition in latest:
            continue
        value = mat.metadata.get("deferred_to_next_run")
        latest[str(mat.partition)] = int(value.value) if value is not None else 0
    return sorted(date.fromisoformat(k) for k, n in latest.items() if n > 0)


@dg.schedule(
    job=conversations_job,
    cron_schedule=_times.conversation_labels,
    execution_timezone=_times.timezone,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Yesterday's conversations ingested and labelled by the teacher (and days that deferred "
    "turns), then both channels' exports refreshed",
)
def daily_conversation_labels(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    moment = context.scheduled_execution_time or datetime.now(UTC)
    yesterday = last_complete_day(moment)
    days = sorted({yesterday, *days_with_deferred_turns(context.instance, yesterday)})
    stamp = moment.astimezone(UTC).strftime("%Y%m%dT%H%M")
    return [
        dg.RunRequest(
            run_key=f"labels-{d.isoformat()}-{stamp}",
            partition_key=d.isoformat(),
            tags={"hominem/trigger": "daily-labels" if d == yesterday else "deferred-turns"},
        )
        for d in days
    ]


@dg.schedule(
    job=retraining_job,
    cron_schedule=_times.retraining_fallback,
    execution_timezone=_times.timezone,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Weekly fallback: retrain when anything is new and the retraining sensor has not fired for "
    "[retraining] fallback_after_days",
)
def weekly_retraining_fallback(
    context: dg.ScheduleEvaluationContext, hominem: HominemResource
) -> dg.RunRequest | dg.SkipReason:
    settings = hominem.settings()
    moment = context.scheduled_execution_time or datetime.now(UTC)
    quiet_for = timedelta(days=settings.pipeline.retraining.fallback_after_days)
    fired = context.instance.get_run_records(
        dg.RunsFilter(job_name=retraining_job.name, tags={"dagster/sensor_name": retraining_sensor.name}),
        limit=1,
    )
    if fired and moment - fired[0].create_timestamp < quiet_for:
        return dg.SkipReason(
            f"the retraining sensor fired {fired[0].create_timestamp:%Y-%m-%d %H:%M} UTC "
            f"(run {fired[0].dagster_run.run_id}), less than {quiet_for.days} days ago"
        )
    active = active_retraining_run(context.instance)
    if active is not None:
        return dg.SkipReason(f"retraining run {active.run_id} is {active.status.value}")
    assessment = retraining.assess(settings)
    if not assessment.new.anything:
        return dg.SkipReason(f"nothing new to train on: {assessment.summary()}")
    context.log.info(f"weekly fallback: {assessment.summary()}")
    return cycle_request(settings, assessment, "weekly-fallback")


SCHEDULES = [daily_conversation_labels, weekly_retraining_fallback]
