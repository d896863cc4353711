"""The Reward Health Index in Dagster: the `rhi_report` asset between `lora_eval` and
`adapter_promotion` (its blocking check `rhi_consolidation_gate`), and the nightly replay (the op job
`rhi_nightly_job` and its schedule: the slow loop on `current`, reported as `rhi_nightly` events), and the
fast loop (`online_update_job` and its schedule, reported as `rhi_online` events). The domain is
`hominem_pipeline.health`; these bodies load, call and report.
"""

from datetime import datetime
from typing import Any

import dagster as dg

from hominem_pipeline.defs.assets.evaluation import report_of_latest_eval
from hominem_pipeline.defs.jobs import RETRAINING_TAG, timed_schedule
from hominem_pipeline.defs.resources import STORE_POOL, HominemResource
from hominem_pipeline.health.config import load_health_config
from hominem_pipeline.health.plot import markdown_image
from hominem_pipeline.health.report import find_report, report_markdown
from hominem_pipeline.health.run import Measured, cycle_measurement, nightly_replay
from hominem_pipeline.settings import Settings

GROUP = "lora"


def _metadata(measured: Measured) -> dict:
    report = measured.report
    return {
        "measured": True,
        "unchanged": measured.reused,  # the saved measurement of the same inputs: nothing measured
        "version": report.version,
        "model_name": report.model_name,
        # Floats plotted across materialisations by the UI (a missing component is left out, not zeroed).
        **({"rhi": report.rhi} if report.rhi is not None else {}),
        **({"partial_rhi": report.partial} if report.partial is not None else {}),
        **{c: v for c, v in report.values().items() if v is not None},
        "missing_components": ", ".join(report.missing) or "none",
        "interpretation": report.interpretation,
        "reward_model": report.reward_model or "none",
        "summary": dg.MetadataValue.md(report_markdown(report) + "\n\n" + markdown_image(measured.plot)),
        "report": dg.MetadataValue.path(str(measured.path)),
        "plot": dg.MetadataValue.path(str(measured.plot)),
    }


@dg.asset(
    group_name=GROUP,
    deps=["lora_eval"],
    pool=STORE_POOL,  # reads the conversations in the store (LRPS, MSS curvature)
    description="Reward Health Index of the evaluated adapter: DCS, GVS, MSS, CDRS, LRPS and their weighted "
    "index, with its history and a plain-text reading (docs/REWARD_HEALTH.md)",
)
def rhi_report(context: dg.AssetExecutionContext, hominem: HominemResource) -> dg.MaterializeResult:
    evaluated = report_of_latest_eval(context.instance)
    if evaluated is None:
        context.log.info("no adapter was evaluated; nothing to measure")
        return dg.MaterializeResult(metadata={"measured": False}, data_version=dg.DataVersion("none"))
    with hominem.open_db() as db:
        measured = cycle_measurement(hominem.settings(), evaluated.model_name, evaluated.version, db=db)
    if measured.reused:
        context.log.info(
            f"RHI of {evaluated.version}: unchanged inputs, the saved measurement ({measured.report.rhi})"
        )
    else:
        context.log.info(f"RHI {measured.report.rhi}: {measured.report.interpretation}")
    return dg.MaterializeResult(
        metadata=_metadata(measured),
        data_version=dg.DataVersion(f"{measured.report.version}-{measured.report.measured_at}"),
    )


@dg.asset_check(
    asset=rhi_report,
    blocking=True,
    description="The evaluated adapter has a sound RHI report (blocks promotion when not); RHI at or below "
    "the consolidation threshold is a warning and `adapter_promotion` holds `current`",
)
def rhi_consolidation_gate(
    context: dg.AssetCheckExecutionContext, hominem: HominemResource
) -> dg.AssetCheckResult:
    evaluated = report_of_latest_eval(context.instance)
    if evaluated is None:
        return dg.AssetCheckResult(
            passed=True, metadata={"measured": False}, description="nothing was evaluated"
        )
    settings = hominem.settings()
    try:
        report = find_report(settings.artifacts_dir, evaluated.model_name, evaluated.version)
    except Exception as exc:  # an unreadable report is not a report
        report, problem = None, f"unreadable RHI report: {exc}"
    else:
        problem = "" if report is not None else f"no RHI report for {evaluated.version}"
    if report is None:
        return dg.AssetCheckResult(passed=False, description=problem, metadata={"version": evaluated.version})
    threshold = load_health_config(settings).consolidation.threshold
    above = report.rhi is not None and report.rhi > threshold
    return dg.AssetCheckResult(
        passed=above,
        # Holding `current` is the gate doing its job, not a broken run: warn, let adapter_promotion log it.
        severity=dg.AssetCheckSeverity.ERROR if above else dg.AssetCheckSeverity.WARN,
        metadata={
            "version": report.version,
            **({"rhi": report.rhi} if report.rhi is not None else {}),
            "threshold": threshold,
            "missing_components": ", ".join(report.missing) or "none",
        },
        description=None
        if above
        else f"RHI {report.rhi} <= {threshold}: `current` stays. {report.interpretation}",
    )


@dg.op(pool=STORE_POOL)  # a revert hands the rolled-back adapter's SFT rows back in the store
def rhi_nightly_replay(context: dg.OpExecutionContext, hominem: HominemResource) -> None:
    """Nightly replay (slow loop): the full RHI of `current`; a dip reverts the consolidation, RHI falling
    night after night lowers the next cycles' learning rates. An op job, not an asset, so that `make run`'s
    "materialise everything" never counts as a night; its history is reported as `rhi_nightly` events."""
    from hominem_pipeline.training.run import load_config, lora_root

    settings = hominem.settings()
    model_name = lora_root(settings, load_config(settings)).name
    with hominem.open_db() as db:
        measured = nightly_replay(settings, model_name, db=db)
    if measured is None:
        context.log.info("no `current` adapter yet: nothing to replay")
        return
    for d in measured.decisions:
        context.log.info(f"{d.loop} loop: {d.action}: {d.reason}")
    context.log_event(
        dg.AssetMaterialization(
            asset_key=NIGHTLY_KEY,
            metadata={
                **_metadata(measured),
                **{f"{d.loop}_decision": d.action for d in measured.decisions},
                "decisions": dg.MetadataValue.json(
                    [{"loop": d.loop, "actions": d.actions, "reason": d.reason} for d in measured.decisions]
                ),
            },
        )
    )


NIGHTLY_KEY = dg.AssetKey("rhi_nightly")


@dg.job(name="rhi_nightly_job", description="The nightly RHI replay of `current` (slow loop, dip check)")
def rhi_nightly_job() -> None:
    rhi_nightly_replay()


def nightly_schedule(settings: Settings | None = None) -> dg.ScheduleDefinition:
    """The replay at `[nightly] cron` in `[nightly] timezone` (config/health.toml), on by default."""
    nightly = load_health_config(settings or Settings()).nightly
    return timed_schedule(
        "rhi_nightly_schedule",
        rhi_nightly_job,
        nightly.cron,
        nightly.timezone,
        f"Nightly RHI replay at {nightly.cron!r} {nightly.timezone} (config/health.toml [nightly])",
    )


class OnlineUpdateConfig(dg.Config):
    as_of: str | None = None  # ISO time the feedback's age is measured at; the schedule sets its tick time

    def moment(self) -> datetime | None:
        return datetime.fromisoformat(self.as_of) if self.as_of else None


@dg.op(pool=STORE_POOL)
def rhi_user_signal(
    context: dg.OpExecutionContext, config: OnlineUpdateConfig, hominem: HominemResource
) -> Any:
    """LRPS from the user's own emoji and choices in the store (the fast loop's brake), read in its own
    step so that the store is held for seconds, not for the update's training; not read when there is no
    feedback to learn from."""
    from hominem_pipeline.health.run import read_user_signal

    with hominem.open_db() as db:
        user = read_user_signal(hominem.settings(), db, config.moment())
    context.log.info(
        f"user signal: LRPS {user.value if user is not None else 'not read (no feedback to learn from or no judgements)'}"
    )
    return user


@dg.op
def rhi_online_update(
    context: dg.OpExecutionContext, config: OnlineUpdateConfig, hominem: HominemResource, user: Any
) -> None:
    """One online update (fast loop) from the feedback pairs no earlier update learned from (at most
    `[fast_loop] max_age_hours` old at `as_of`: the schedule's tick, not the moment the run got to execute,
    since an update queued behind a training cycle runs late), gated by partial RHI, not trained while the
    user's judgements contradict each other; it moves the `online` pointer, never `current` (`hominem
    health online` is the same call, at the clock's now)."""
    from hominem_pipeline.health.run import run_online_update

    result = run_online_update(hominem.settings(), now=config.moment(), user=user)
    d = result.decision
    context.log.info(f"fast loop: {d.action}: {d.reason}")
    context.log_event(
        dg.AssetMaterialization(
            asset_key=ONLINE_KEY,
            metadata={
                "decision": d.action,
                "reason": d.reason,
                "candidate": result.candidate or "none",
                "online": result.online or "unset",
                **(
                    {"partial_rhi": result.report.partial}
                    if result.report and result.report.partial is not None
                    else {}
                ),
            },
        )
    )


ONLINE_KEY = dg.AssetKey("rhi_online")


@dg.job(
    name="online_update_job",
    tags={RETRAINING_TAG: "online"},  # never beside a training cycle
    description="One online update from recent feedback (fast loop), gated by partial RHI",
)
def online_update_job() -> None:
    rhi_online_update(rhi_user_signal())


def online_update_schedule(settings: Settings | None = None) -> dg.ScheduleDefinition:
    """The fast loop at `[fast_loop] cron` in `[fast_loop] timezone` (config/health.toml), on by default."""
    fast = load_health_config(settings or Settings()).fast_loop

    def as_of(at: datetime) -> dict:
        # The tick's time travels with the run: an update queued behind a training cycle runs late, and
        # measuring the feedback's age then would drop what was young enough when it was due.
        config = {"config": {"as_of": at.isoformat()}}
        return {"ops": {"rhi_user_signal": config, "rhi_online_update": config}}

    return timed_schedule(
        "online_update_schedule",
        online_update_job,
        fast.cron,
        fast.timezone,
        f"Online update from the feedback no update took yet (at most {fast.max_age_hours:g} h old at "
        f"the tick) at {fast.cron!r} {fast.timezone} (config/health.toml [fast_loop])",
        run_config_at=as_of,
    )


HEALTH_ASSETS = [rhi_report]
HEALTH_CHECKS = [rhi_consolidation_gate]
HEALTH_JOBS = [rhi_nightly_job, online_update_job]
HEALTH_SCHEDULES = [nightly_schedule(), online_update_schedule()]
