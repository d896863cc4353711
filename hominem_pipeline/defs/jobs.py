"""Jobs: named selections of assets to run together, and the executor every run uses."""

from collections.abc import Callable
from datetime import datetime

import dagster as dg

# Each step runs in its own process (steps in different pools really run side by side). Forked from a
# server that has already imported the heavy modules, a step skips a fresh interpreter's imports of
# dagster, torch and transformers (most of a short step's time on 2 cores); importing them starts no
# threads and opens no store, so forking after them is safe.
executor = dg.multiprocess_executor.configured(
    {
        "start_method": {
            "forkserver": {
                "preload_modules": ["dagster", "hominem_pipeline.definitions", "torch", "transformers"]
            }
        }
    }
)

# Everything, in dependency order: what `make run` materialises.
main_job = dg.define_asset_job("hominem_main_job", selection=dg.AssetSelection.all())

# The conversation assets alone (ingest, label, both channels' exports): what a UI backfill of days or
# the CLI's `dagster asset materialize --select 'conversations*' --partition <day>` runs.
conversations_job = dg.define_asset_job(
    "conversations_job",
    selection=dg.AssetSelection.assets(
        "conversations", "conversation_labels", "sft_pairs", "preference_pairs"
    ),
)

#: The run tag every retraining run carries; dagster.yaml limits runs with it to one at a time, so the
#: sensor, the weekly fallback and a UI launch can never train two cycles side by side.
RETRAINING_TAG = "hominem/retraining"

# One training cycle and everything downstream of it (evaluation, its blocking check, any health report
# placed between evaluation and promotion, promotion): selected as dual_lora's downstream so an asset
# added after lora_eval joins without an edit here. What the retraining sensor and schedule request.
retraining_job = dg.define_asset_job(
    "retraining_job",
    selection=dg.AssetSelection.assets("dual_lora").downstream(),
    tags={RETRAINING_TAG: "cycle"},
    description="dual_lora -> lora_eval -> ... -> adapter_promotion: one training cycle, never two at once",
)


def timed_schedule(
    name: str,
    job: dg.JobDefinition,
    cron: str,
    timezone: str,
    description: str,
    enabled: bool = True,
    run_config_at: Callable[[datetime], dict] | None = None,
) -> dg.ScheduleDefinition:
    """`job` at `cron` read in `timezone`, both from a config file (validated there as `CronExpression`
    and `TimeZoneName`); RUNNING by default, so `make dev` runs it, unless the config switches it off.
    `run_config_at`: the run config for a tick, from the tick's scheduled time (a run that queues and
    executes late still knows when it was due)."""
    status = dg.DefaultScheduleStatus.RUNNING if enabled else dg.DefaultScheduleStatus.STOPPED
    if run_config_at is None:
        return dg.ScheduleDefinition(
            name=name,
            job=job,
            cron_schedule=cron,
            execution_timezone=timezone,
            description=description,
            default_status=status,
        )

    @dg.schedule(
        name=name,
        job=job,
        cron_schedule=cron,
        execution_timezone=timezone,
        description=description,
        default_status=status,
    )
    def _at_tick(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        at = context.scheduled_execution_time
        return dg.RunRequest(run_config=run_config_at(at)) if at is not None else dg.RunRequest()

    return _at_tick
