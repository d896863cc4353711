"""Nightly maintenance of the SFT store: the `sft_maintenance` asset, its job and its schedule (time and
timezone from config/maintenance.toml). Thin: the work is `extraction.maintenance.run_maintenance`."""

import dagster as dg

from hominem_pipeline.defs.jobs import timed_schedule
from hominem_pipeline.defs.resources import STORE_POOL, HominemResource
from hominem_pipeline.embedding import Embedder
from hominem_pipeline.extraction.maintenance import load_maintenance_config, run_maintenance
from hominem_pipeline.settings import Settings


@dg.asset(
    group_name="conversations",
    pool=STORE_POOL,
    deps=["sft_pairs"],
    description="Nightly SFT store maintenance: used rows past their age removed, duplicates merged (content "
    "hash, then similarity within k-means clusters), valuable older rows re-emitted, clusters kept current",
)
def sft_maintenance(context: dg.AssetExecutionContext, hominem: HominemResource) -> dg.MaterializeResult:
    settings = hominem.settings()
    config = load_maintenance_config(settings)
    embedder = Embedder(settings.inference.embeddings.model)
    with hominem.open_db() as db:
        report = run_maintenance(db, config, embedder, log=context.log.info)
    context.log.info(f"sft_maintenance: {report.counts()}")
    return dg.MaterializeResult(
        metadata={
            **report.counts(),
            "seconds": dg.MetadataValue.json(report.seconds),
        },
    )


nightly_maintenance_job = dg.define_asset_job("nightly_maintenance_job", selection=[sft_maintenance])


def maintenance_schedule(settings: Settings | None = None) -> dg.ScheduleDefinition:
    """The nightly schedule, at the configured time in the configured timezone (on unless disabled)."""
    schedule = load_maintenance_config(settings or Settings()).schedule
    return timed_schedule(
        "nightly_maintenance",
        nightly_maintenance_job,
        schedule.cron,
        schedule.timezone,
        "SFT store maintenance (config/maintenance.toml)",
        enabled=schedule.enabled,
    )


MAINTENANCE_ASSETS = [sft_maintenance]
MAINTENANCE_JOBS = [nightly_maintenance_job]
