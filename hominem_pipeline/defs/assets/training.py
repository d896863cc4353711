"""The `dual_lora` asset: one dual-channel training cycle (SFT + reward-weighted preference loss) that
publishes a PEFT adapter under artifacts/lora/<model>/<version>/. The domain code is
`hominem_pipeline.training`; `hominem train` runs the same thing outside Dagster.
"""

import dagster as dg

from hominem_pipeline.defs.resources import STORE_POOL, HominemResource
from hominem_pipeline.training import NoTrainingData, load_config, run_training


class DualLoraConfig(dg.Config):
    """Overrides for one run; empty fields come from config/training/lora_dual.yaml."""

    config_path: str | None = None  # e.g. config/training/lora_dpo.yaml for a pure preference run
    max_steps: int | None = None
    epochs: int | None = None
    sft_weight: float | None = None
    preference_weight: float | None = None
    batch_mixing: str | None = None  # interleaved | mixed | alternating (validated by the training config)
    beta: float | None = None
    seed: int | None = None
    force: bool = False  # train even when a published adapter already answers these inputs (training.reuse)


@dg.asset(
    group_name="training",
    pool=STORE_POOL,  # records which examples the adapter trained on (marked used only at promotion)
    deps=["preference_pairs", "sft_pairs", "reward_model", "base_model"],
    description="Dual-channel LoRA adapter (memory + reward channels), published under artifacts/lora/",
)
def dual_lora(context: dg.AssetExecutionContext, config: DualLoraConfig, hominem: HominemResource) -> dg.MaterializeResult:
    settings = hominem.settings()
    overrides = {k: v for k, v in config.model_dump().items() if k not in ("config_path", "force") and v is not None}
    train_config = load_config(settings, config.config_path, overrides)
    log_every = max(1, (train_config.max_steps or 10) // 10)

    def progress(step: int, total: int, row: dict) -> None:
        if step % log_every == 0 or step == total:
            context.log.info(f"dual_lora: step {step}/{total} loss {row['loss']:.4f}")

    try:
        with hominem.open_db() as db:
            result = run_training(settings, train_config, db=db, progress=progress, reuse=not config.force)
    except NoTrainingData as exc:
        context.log.warning(str(exc))
        return dg.MaterializeResult(metadata={"trained": False, "reason": str(exc)}, data_version=dg.DataVersion("none"))
    meta = result.metadata
    channels = meta["channel_contributions"]
    if meta.get("reused"):
        context.log.info(f"dual_lora: unchanged, {meta['reuse_reason']}")
    return dg.MaterializeResult(
        metadata={
            "trained": not meta.get("reused", False),
            "unchanged": bool(meta.get("reused", False)),
            "reason": meta.get("reuse_reason", "trained a new cycle"),
            "version": result.version,
            "path": dg.MetadataValue.path(str(result.path)),
            "continued_from": meta["continued_from"] or "base model",
            "cycle": meta["cycle"],
            "steps": meta["steps"],
            **{f"{ch}_{k}": v for ch, c in channels.items() for k, v in c.items()},
            **{k: round(v, 4) for k, v in meta["metrics"].items()},
            "cluster_coverage": dg.MetadataValue.json(meta["cluster_coverage"]),
            "data_counts": dg.MetadataValue.json(meta["data_counts"]),
            "sft_rows_trained": meta["trained_examples"]["sft"],
            "preference_pairs_trained": meta["trained_examples"]["preference"],
            "reward_model_version": meta["reward_model_version"] or "none",
            "seconds_per_step": round(meta["timing"]["seconds_per_step"] or 0.0, 3),
        },
        data_version=dg.DataVersion(result.version),
    )
