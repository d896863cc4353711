"""The `reward_model` asset and its blocking check: the teacher's labels distilled into a fast scorer.

The asset trains on the `reward_labels` export plus the imported preference pairs in the store, publishes
a content-addressed version under `artifacts/reward_model/`, and moves `current` to it only when it beats
the trivial baseline on validation; the blocking check reports that same verdict, so downstream assets
never run on a reward model that is no better than predicting the mean.
"""

import json
from pathlib import Path

import dagster as dg

from hominem_pipeline.defs.resources import STORE_POOL, HominemResource
from hominem_pipeline.reward_model.evaluate import flat_metrics
from hominem_pipeline.reward_model.model import METADATA_FILE
from hominem_pipeline.reward_model.pipeline import train_and_publish

GROUP = "reward_model"


@dg.asset(
    group_name=GROUP,
    pool=STORE_POOL,
    deps=["reward_labels"],
    description="Multi-head reward model (frozen MiniLM features, ridge heads, Bradley-Terry scalar)",
)
def reward_model(context: dg.AssetExecutionContext, hominem: HominemResource) -> dg.MaterializeResult:
    settings = hominem.settings()
    with hominem.open_db() as db:
        imported = db.get_imported_preferences()
    run = train_and_publish(settings, imported=imported, log_fn=context.log.info)
    meta = run.result.metadata
    summary = meta["metrics"]["validation"]["summary"]
    return dg.MaterializeResult(
        metadata={
            "version": run.published.version,
            "path": dg.MetadataValue.path(str(run.published.path)),
            "accepted_as_current": run.published.accepted,
            "new_version": run.published.new,
            "training_data_hash": meta["training_data"]["hash"],
            "samples_train": meta["training_data"]["samples_train"],
            "samples_validation": meta["training_data"]["samples_validation"],
            "pairs_imported": meta["training_data"]["pairs_imported"],
            "pairs_teacher": meta["training_data"]["pairs_teacher"],
            "heads_better_than_baseline": dg.MetadataValue.json(
                summary.get("heads_better_than_baseline", [])
            ),
            **{k: round(v, 6) for k, v in flat_metrics(meta["metrics"]).items()},
        },
        data_version=dg.DataVersion(run.published.version),
    )


@dg.asset_check(
    asset=reward_model,
    blocking=True,
    description="On validation, the model's mean MAE over all heads is below the trivial baseline's (training mean)",
)
def reward_model_beats_baseline(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    event = context.instance.get_latest_materialization_event(reward_model.key)
    if event is None or event.asset_materialization is None:
        return dg.AssetCheckResult(passed=False, description="reward_model has not been materialised")
    folder = Path(str(event.asset_materialization.metadata["path"].value))
    metadata = json.loads((folder / METADATA_FILE).read_text())
    summary = metadata["metrics"]["validation"]["summary"]
    n_val = metadata["training_data"]["samples_validation"]
    passed = bool(summary["beats_baseline"])
    if summary["mae_mean"] is None:
        why = "no validation samples: nothing shows the model beats the baseline"
    else:
        why = (
            f"validation mean MAE {summary['mae_mean']:.4f} vs baseline {summary['baseline_mae_mean']:.4f} "
            f"on {n_val} samples"
        )
    numbers = {k: summary[k] for k in ("mae_mean", "baseline_mae_mean") if summary[k] is not None}
    return dg.AssetCheckResult(
        passed=passed,
        description=why,
        metadata={
            "version": metadata["version"],
            "validation_samples": n_val,
            **numbers,
            "heads_better_than_baseline": dg.MetadataValue.json(
                summary.get("heads_better_than_baseline", [])
            ),
        },
    )


REWARD_MODEL_ASSETS = [reward_model]
REWARD_MODEL_CHECKS = [reward_model_beats_baseline]
