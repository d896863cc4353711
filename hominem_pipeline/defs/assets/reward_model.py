"""The `reward_model` asset and its blocking check: the teacher's labels distilled into a fast scorer.

The asset trains on the `reward_labels` export plus the imported preference pairs in the store, publishes
a content-addressed version under `artifacts/reward_model/`, and moves `current` to it only when its
verdict passes (held-out human pairs where there are enough, else the teacher labels out of fold; see
docs/REWARD_MODEL.md); the blocking check reports that same verdict, so downstream assets never run on a
reward model that is no better than its baselines.
"""

import json
from pathlib import Path

import dagster as dg

from hominem_pipeline.defs.resources import STORE_POOL, HominemResource
from hominem_pipeline.reward_model.evaluate import describe_verdict, flat_metrics
from hominem_pipeline.reward_model.model import METADATA_FILE

GROUP = "reward_model"


@dg.asset(
    group_name=GROUP,
    pool=STORE_POOL,
    deps=["reward_labels"],
    description=(
        "Multi-head reward model: per-dimension heads (ridge on the teacher's labels, Bradley-Terry on the pairs "
        "that speak to each dimension), a prompt-conditioned gate, a calibrated preference probability"
    ),
)
def reward_model(context: dg.AssetExecutionContext, hominem: HominemResource) -> dg.MaterializeResult:
    # Imported here: the trainer pulls in scipy, and every step's process imports the definitions.
    from hominem_pipeline.reward_model.pipeline import train_and_publish

    settings = hominem.settings()
    with hominem.open_db() as db:
        imported = db.get_imported_preferences()
    run = train_and_publish(settings, imported=imported, log_fn=context.log.info)
    meta = run.result.metadata
    summary = meta["metrics"]["validation"]["summary"]
    verdict = meta["metrics"]["verdict"]
    return dg.MaterializeResult(
        metadata={
            "unchanged": run.reused,  # the inputs had not changed since this version: nothing trained
            "version": run.published.version,
            "path": dg.MetadataValue.path(str(run.published.path)),
            "accepted_as_current": run.published.accepted,
            "new_version": run.published.new,
            "training_data_hash": meta["training_data"]["hash"],
            "samples_train": meta["training_data"]["samples_train"],
            "samples_validation": meta["training_data"]["samples_validation"],
            "pairs_imported": meta["training_data"]["pairs_imported"],
            "pairs_teacher": meta["training_data"]["pairs_teacher"],
            "pairs_by_source": dg.MetadataValue.json(meta["training_data"]["pairs_by_source"]),
            "verdict": describe_verdict(verdict),
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
    description=(
        "With >= [check] min_validation_pairs held-out imported pairs: pairwise accuracy whose 95% interval "
        "lies above 0.5 (training-mean baseline) and above 'the longer answer wins'; otherwise the teacher "
        "labels' out-of-fold MAE below the training mean's"
    ),
)
def reward_model_beats_baseline(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    event = context.instance.get_latest_materialization_event(reward_model.key)
    if event is None or event.asset_materialization is None:
        return dg.AssetCheckResult(passed=False, description="reward_model has not been materialised")
    folder = Path(str(event.asset_materialization.metadata["path"].value))
    metadata = json.loads((folder / METADATA_FILE).read_text())
    verdict = metadata["metrics"]["verdict"]
    return dg.AssetCheckResult(
        passed=bool(verdict["passed"]),
        description=describe_verdict(verdict),
        metadata={
            "version": metadata["version"],
            **{
                k: v
                for k, v in verdict.items()
                if isinstance(v, (int, float, str)) and not isinstance(v, bool)
            },
            **(
                {"accuracy_ci95": dg.MetadataValue.json(verdict["accuracy_ci95"])}
                if "accuracy_ci95" in verdict
                else {}
            ),
        },
    )


REWARD_MODEL_ASSETS = [reward_model]
REWARD_MODEL_CHECKS = [reward_model_beats_baseline]
