"""The retraining sensor: requests `retraining_job` when enough is new since the last accepted cycle.

Thin over `hominem_pipeline.retraining` (counting and the seed's rules). It reads the channels' JSONL
exports and the adapter pointer only: a sensor runs in the daemon beside running steps, and DuckDB lets
one process hold the store. The cursor holds the data mark and `current` of the last request, so an
unchanged picture never requests a second run.
"""

import json

import dagster as dg

from hominem_pipeline import retraining
from hominem_pipeline.defs.jobs import retraining_job
from hominem_pipeline.defs.resources import HominemResource
from hominem_pipeline.settings import Settings

_ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def active_retraining_run(instance: dg.DagsterInstance) -> dg.DagsterRun | None:
    """A retraining run that is queued or running, if any."""
    runs = instance.get_runs(dg.RunsFilter(job_name=retraining_job.name, statuses=_ACTIVE), limit=1)
    return runs[0] if runs else None


def cycle_request(settings: Settings, assessment: retraining.Assessment, kind: str) -> dg.RunRequest:
    """The run request for one cycle, remembered as the data it was requested for (see `retraining`)."""
    retraining.record_request(settings, assessment)
    new = assessment.new
    return dg.RunRequest(
        run_key=f"{kind}-{assessment.current or 'base'}-{assessment.data_mark}",
        tags={
            "hominem/trigger": kind,
            "hominem/rule": assessment.decision.rule or "anything-new",
            "hominem/new_conversations": str(new.conversations),
            "hominem/new_preference_pairs": str(new.preference_pairs),
            "hominem/data_mark": assessment.data_mark,
        },
    )


@dg.sensor(
    job=retraining_job,
    minimum_interval_seconds=Settings().pipeline.retraining.sensor_interval_seconds,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Retrain when, since the accepted adapter, memory >= 500 new conversations, or reward >= 200 "
    "new preference pairs, or both at 50% ([retraining] in config/hominem.toml)",
)
def retraining_sensor(
    context: dg.SensorEvaluationContext, hominem: HominemResource
) -> dg.SensorResult | dg.SkipReason:
    settings = hominem.settings()
    assessment = retraining.assess(settings)
    summary = assessment.summary()
    if not assessment.decision.fire:
        return dg.SkipReason(summary)
    active = active_retraining_run(context.instance)
    if active is not None:
        return dg.SkipReason(
            f"{summary}; retraining run {active.run_id} is {active.status.value}: waiting for it"
        )
    last = json.loads(context.cursor) if context.cursor else {}
    if last.get("mark") == assessment.data_mark and last.get("current") == assessment.current:
        return dg.SkipReason(
            f"{summary}; a cycle was already requested for exactly this data ({last.get('run_key')}) and "
            "`current` has not moved since: waiting for new data"
        )
    request = cycle_request(settings, assessment, "sensor")
    context.log.info(f"requesting a retraining cycle: {summary}")
    cursor = {"mark": assessment.data_mark, "current": assessment.current, "run_key": request.run_key}
    return dg.SensorResult(run_requests=[request], cursor=json.dumps(cursor))


SENSORS = [retraining_sensor]
