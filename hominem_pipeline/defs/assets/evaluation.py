"""Evaluation and promotion of the adapter that `dual_lora` published: `lora_eval` runs the fixed
regression set and the new phrasings of the facts the adapter was taught on base, base+LoRA and its
parent, the blocking check `lora_no_regression` gates on the configured
tolerances, and `adapter_promotion` moves `current` to the evaluated version only when the gate passed.

The evaluated version is read from `dual_lora`'s latest materialisation (its `version` and `model_name`
metadata, or its `path`), never from "the newest folder", so lineage holds.
"""

from datetime import datetime
from pathlib import Path

import dagster as dg

from hominem_pipeline.adapters import CURRENT, AdapterRegistry, now_utc
from hominem_pipeline.defs.resources import STORE_POOL, HominemResource
from hominem_pipeline.evaluation.evaluate import evaluate_published
from hominem_pipeline.evaluation.report import EvalReport, read_report, report_markdown
from hominem_pipeline.training import promotion

GROUP = "lora"
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


def _report_of_latest_eval(instance: dg.DagsterInstance) -> EvalReport | None:
    """The report `lora_eval` last wrote, or None when dual_lora had published nothing to evaluate."""
    metadata = _latest_metadata(instance, dg.AssetKey("lora_eval"))
    return read_report(Path(str(metadata["report"]))) if metadata.get("report") else None


@dg.asset(
    group_name=GROUP,
    deps=["dual_lora"],
    description="Base vs base+LoRA (vs its parent and `current`): taught facts in new phrasings, forgetting, "
    "scenario margins, alignment, interference",
)
def lora_eval(context: dg.AssetExecutionContext, hominem: HominemResource) -> dg.MaterializeResult:
    upstream = _latest_metadata(context.instance, DUAL_LORA)
    if upstream.get("trained") is False and not upstream.get("unchanged"):
        # A cycle without training data publishes no adapter: nothing to evaluate, nothing to promote.
        reason = f"dual_lora published no adapter: {upstream.get('reason', 'no reason given')}"
        context.log.warning(reason)
        return dg.MaterializeResult(
            metadata={"evaluated": False, "reason": reason}, data_version=dg.DataVersion("none")
        )
    model_name, version = published_adapter(upstream)
    started = now_utc()
    report, path = evaluate_published(hominem.settings(), model_name, version, log=context.log.info)
    # A report written before this run began is one `evaluate_published` reused (same inputs).
    unchanged = datetime.fromisoformat(report.evaluated_at) < started
    return dg.MaterializeResult(
        metadata={
            "evaluated": True,
            "unchanged": unchanged,
            "version": version,
            "model_name": model_name,
            "compared_with_current": report.current_version if "current" in report.arms else "",
            "passed": report.passed,
            "regressions": len(report.gate_failures),
            "interference": report.interference.verdict,
            "reward_model": report.reward_model_note,
            "regression_set_hash": report.regression_set_hash,
            **report.flat_metrics(),
            "summary": dg.MetadataValue.md(report_markdown(report)),
            "report": dg.MetadataValue.path(str(path)),
        },
        data_version=dg.DataVersion(report.content_hash),
    )


@dg.asset_check(
    asset=lora_eval,
    blocking=True,
    description="No regression beyond config/eval/lora_eval.yaml tolerances, vs base and vs current",
)
def lora_no_regression(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    report = _report_of_latest_eval(context.instance)
    if report is None:
        return dg.AssetCheckResult(
            passed=True,
            metadata={"evaluated": False},
            description="no adapter was published; nothing to gate",
        )
    return dg.AssetCheckResult(
        passed=report.passed,
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
    deps=[lora_eval],
    pool=STORE_POOL,  # marks the SFT rows the new `current` trained on as used
    description="Moves the adapter registry's `current` pointer to the evaluated version and marks the SFT rows it trained on used (rollback: `hominem adapters rollback`)",
)
def adapter_promotion(context: dg.AssetExecutionContext, hominem: HominemResource) -> dg.MaterializeResult:
    report = _report_of_latest_eval(context.instance)
    if report is None:
        context.log.info("no adapter was evaluated; `current` stays")
        return dg.MaterializeResult(metadata={"promoted": False}, data_version=dg.DataVersion("none"))
    registry = AdapterRegistry(hominem.settings().artifacts_dir, report.model_name)
    # The blocking check already stops this asset in the same run; `promotion.promote` re-reads the
    # report, so a run of this asset alone cannot promote a failed or unevaluated version either.
    try:
        with hominem.open_db() as db:
            move = promotion.promote(registry, report.version, db=db)
    except promotion.PromotionRefused as exc:
        raise dg.Failure(f"{exc}; `current` stays") from exc
    return dg.MaterializeResult(
        metadata={
            "promoted": True,
            "current": move.version,
            "previous": move.previous or "",
            "changed": move.previous != move.version,
            "sft_rows_marked_used": move.marked_used,
            "sft_rows_handed_back": move.unmarked,
            "rollback_history": dg.MetadataValue.json(registry.history()),
            "pointer": dg.MetadataValue.path(str(registry.pointer(CURRENT).path)),
        },
        data_version=dg.DataVersion(move.version),
    )


EVALUATION_ASSETS = [lora_eval, adapter_promotion]
EVALUATION_CHECKS = [lora_no_regression]
