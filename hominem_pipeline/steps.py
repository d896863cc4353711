"""The training and evaluation steps as plain functions with plain outputs, so that the same code runs in
the Dagster step's own process or in another process launched through Dagster Pipes (a subprocess here;
a Kubernetes pod or a Ray task on a GPU node elsewhere, docs/SCALING.md).

Each step returns a `StepOutput`: metadata as JSON values, the Dagster metadata type of the few that are
not plain (`path`, `md`, `json`), and the data version. No Dagster import: `defs/` turns the output into a
`MaterializeResult`, and `pipes_entry.py` reports it through the Pipes protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hominem_pipeline.settings import Settings

Log = Callable[[str], None]


@dataclass
class StepOutput:
    metadata: dict[str, Any]
    data_version: str
    kinds: dict[str, str] = field(default_factory=dict)  # metadata key -> "path" | "md" | "json"


def train_step(settings: Settings, params: dict[str, Any], log: Log) -> StepOutput:
    """One dual-channel training cycle (`dual_lora`). `params`: `config_path`, `force` (train even when a
    published adapter already answers these inputs, `training.reuse`) and training overrides."""
    from hominem_pipeline.store import TrainingDatabase
    from hominem_pipeline.training import NoTrainingData, load_config, run_training

    overrides = {k: v for k, v in params.items() if k not in ("config_path", "force") and v is not None}
    train_config = load_config(settings, params.get("config_path"), overrides)
    log_every = max(1, (train_config.max_steps or 10) // 10)

    def progress(step: int, total: int, row: dict) -> None:
        if step % log_every == 0 or step == total:
            log(f"dual_lora: step {step}/{total} loss {row['loss']:.4f}")

    try:
        with TrainingDatabase(settings.database_path) as db:
            result = run_training(
                settings, train_config, db=db, progress=progress, reuse=not params.get("force")
            )
    except NoTrainingData as exc:
        log(f"warning: {exc}")
        return StepOutput({"trained": False, "reason": str(exc)}, "none")
    meta = result.metadata
    channels = meta["channel_contributions"]
    reused = bool(meta.get("reused", False))
    if reused:
        log(f"dual_lora: unchanged, {meta['reuse_reason']}")
    return StepOutput(
        {
            "trained": not reused,
            "unchanged": reused,
            "reason": meta.get("reuse_reason", "trained a new cycle"),
            "version": result.version,
            "path": str(result.path),
            "continued_from": meta["continued_from"] or "base model",
            "cycle": meta["cycle"],
            "steps": meta["steps"],
            **{f"{ch}_{k}": v for ch, c in channels.items() for k, v in c.items()},
            **{k: round(v, 4) for k, v in meta["metrics"].items()},
            "cluster_coverage": meta["cluster_coverage"],
            "data_counts": meta["data_counts"],
            "sft_rows_trained": meta["trained_examples"]["sft"],
            "preference_pairs_trained": meta["trained_examples"]["preference"],
            "reward_model_version": meta["reward_model_version"] or "none",
            "seconds_per_step": round(meta["timing"]["seconds_per_step"] or 0.0, 3),
        },
        result.version,
        {"path": "path", "cluster_coverage": "json", "data_counts": "json"},
    )


def evaluate_step(settings: Settings, params: dict[str, Any], log: Log) -> StepOutput:
    """Evaluate the adapter version `params["version"]` of `params["model_name"]` (`lora_eval`)."""
    from hominem_pipeline.adapters import now_utc
    from hominem_pipeline.evaluation.evaluate import evaluate_published
    from hominem_pipeline.evaluation.report import report_markdown

    model_name, version = str(params["model_name"]), str(params["version"])
    started = now_utc()
    report, path = evaluate_published(settings, model_name, version, log=log)
    return StepOutput(
        {
            "evaluated": True,
            # A report written before this step began is one `evaluate_published` reused (same inputs).
            "unchanged": datetime.fromisoformat(report.evaluated_at) < started,
            "version": version,
            "model_name": model_name,
            "compared_with_current": report.current_version if "current" in report.arms else "",
            "passed": report.passed,
            "regressions": len(report.gate_failures),
            "interference": report.interference.verdict,
            "reward_model": report.reward_model_note,
            "regression_set_hash": report.regression_set_hash,
            **report.flat_metrics(),
            "summary": report_markdown(report),
            "report": str(path),
        },
        report.content_hash,
        {"summary": "md", "report": "path"},
    )


STEPS: dict[str, Callable[[Settings, dict[str, Any], Log], StepOutput]] = {
    "dual_lora": train_step,
    "lora_eval": evaluate_step,
}
