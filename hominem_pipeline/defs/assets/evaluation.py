"""Evaluation and promotion of the adapter that `dual_lora` published: `lora_eval` runs the fixed
regression set and the new phrasings of the facts the adapter was taught on base, base+LoRA and its
parent, the check `lora_no_regression` gates on the configured tolerances (a regression is a warning, the
run stays green), and `adapter_promotion` moves `current` to the evaluated version only when the gate passed,
otherwise records `promoted: false` with the reason.

The evaluated version is read from `dual_lora`'s latest materialisation (its `version` and `model_name`
metadata, or its `path`), never from "the newest folder", so lineage holds.
"""

from pathlib import Path

import dagster as dg

from hominem_pipeline.adapters import CURRENT, AdapterRegistry
from hominem_pipeline.defs.launch import Launcher, run_step
from hominem_pipeline.defs.resources import STORE_POOL, HominemResource
from hominem_pipeline.evaluation.report import EvalReport, read_report
from hominem_pipeline.health.config import load_health_config
from hominem_pipeline.training import promotion

GROUP = "lora"


class LoraEvalConfig(dg.Config):
    # Where the evaluation runs: this step's process, or a subprocess through Dagster Pipes (defs/launch.py).
    launcher: Launcher = "in_process"


DUAL_LORA = dg.AssetKey("dual_lora")


def _latest_metadata(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict:
    event = instance.get_latest_materialization_event(key)
    if event is None or event.asset_materialization is None:
        raise dg.Failure(f"{key.to_user_string()} has not been materialised yet; nothing to read from it")
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def published_adapter(metadata: dict) -> tuple[str, str]:
    """(model_name, version) named by a dual_lora materialisation."""
    if metadata.get("version") and metadata.get("model_name"):
        return str(metadata["model_name"]), str(metadata["version"])
    if metadata.get("path"):
        path = Path(str(metadata["path"]))
        return path.parent.name, path.name
    raise dg.Failure(
        f"dual_lora's materialisation names no adapter (needs version + model_name, or path): {sorted(metadata)}"
    )


def report_of_latest_eval(instance: dg.DagsterInstance) -> EvalReport | None:
    """The report `lora_eval` last wrote, or None when dual_lora had published nothing to evaluate."""
    metadata = _latest_metadata(instance, dg.AssetKey("lora_eval"))
    return read_report(Path(str(metadata["report"]))) if metadata.get("report") else None


@dg.asset(
    group_name=GROUP,
    deps=["dual_lora"],
    description="Base vs base+LoRA (vs its parent and `current`): taught facts in new phrasings, forgetting, "
    "scenario margins, alignment, interference",
)
def lora_eval(
    context: dg.AssetExecutionContext, config: LoraEvalConfig, hominem: HominemResource
) -> dg.MaterializeResult:
    upstream = _latest_metadata(context.instance, DUAL_LORA)
    if upstream.get("trained") is False and not upstream.get("unchanged"):
        # A cycle without training data publishes no adapter: nothing to evaluate, nothing to promote.
        reason = f"dual_lora published no adapter: {upstream.get('reason', 'no reason given')}"
        context.log.warning(reason)
        return dg.MaterializeResult(
            metadata={"evaluated": False, "reason": reason}, data_version=dg.DataVersion("none")
        )
    model_name, version = published_adapter(upstream)
    return run_step(
        context, "lora_eval", hominem, {"model_name": model_name, "version": version}, config.launcher
    )


@dg.asset_check(
    asset=lora_eval,
    blocking=True,
    description="No regression beyond config/eval/lora_eval.yaml tolerances, vs base and vs current. A "
    "regression is a warning: the run stays green and `adapter_promotion` holds `current`, saying why",
)
def lora_no_regression(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    report = report_of_latest_eval(context.instance)
    if report is None:
        return dg.AssetCheckResult(
            passed=True,
            metadata={"evaluated": False},
            description="no adapter was published; nothing to gate",
        )
    return dg.AssetCheckResult(
        passed=report.passed,
        # Refusing a regressing adapter is the gate doing its job, not a broken run (as with the RHI gate):
        # WARN, and `adapter_promotion` (which re-reads the report) keeps `current` and records the reason.
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "version": report.version,
            "regressions": len(report.gate_failures),
            "failures": dg.MetadataValue.json(report.gate_failures),
            "reward_model": report.reward_model_note,
        },
        description=None if report.passed else "; ".join(report.gate_failures)[:1000],
    )


@dg.asset(
    group_name=GROUP,
    deps=[lora_eval, "rhi_report"],  # rhi_report (defs/health.py) sits between the evaluation and this
    pool=STORE_POOL,  # marks the SFT rows the new `current` trained on as used
    description="Moves the adapter registry's `current` pointer to the evaluated version (passing evaluation and "
    "RHI above the consolidation threshold) and marks the SFT rows it trained on used (rollback: `hominem adapters rollback`)",
)
def adapter_promotion(context: dg.AssetExecutionContext, hominem: HominemResource) -> dg.MaterializeResult:
    report = report_of_latest_eval(context.instance)
    if report is None:
        context.log.info("no adapter was evaluated; `current` stays")
        return dg.MaterializeResult(metadata={"promoted": False}, data_version=dg.DataVersion("none"))
    settings = hominem.settings()
    registry = AdapterRegistry(settings.artifacts_dir, report.model_name)
    # `promotion.promote` re-reads the evaluation report and asks the RHI gate; either can refuse.
    try:
        with hominem.open_db() as db:
            move = promotion.promote(
                registry, report.version, db=db, health=load_health_config(settings).consolidation
            )
    except (promotion.EvaluationFailed, promotion.ConsolidationHeld) as exc:
        # A gate did its job (lora_no_regression warned, or the RHI decision logged under artifacts/rhi/):
        # `current` stays and the run stays green.
        context.log.warning(str(exc))
        return dg.MaterializeResult(
            metadata={
                "promoted": False,
                "reason": str(exc),
                "current": registry.pointer(CURRENT).target or "",
            },
            data_version=dg.DataVersion(f"held-{report.version}"),
        )
    except promotion.PromotionRefused as exc:
        raise dg.Failure(f"{exc}; `current` stays") from exc
    return dg.MaterializeResult(
        metadata={
            "promoted": True,
            "current": move.version,
            "previous": move.previous or "",
            "changed": move.previous != move.version,
            "health": move.health,
            "sft_rows_marked_used": move.marked_used,
            "sft_rows_handed_back": move.unmarked,
            "rollback_history": dg.MetadataValue.json(registry.history()),
            "pointer": dg.MetadataValue.path(str(registry.pointer(CURRENT).path)),
        },
        data_version=dg.DataVersion(move.version),
    )


EVALUATION_ASSETS = [lora_eval, adapter_promotion]
EVALUATION_CHECKS = [lora_no_regression]
