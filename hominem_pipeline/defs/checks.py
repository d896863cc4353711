"""Asset checks: each reads the asset's published export and says what is wrong, by row and field."""

from collections import Counter

import dagster as dg

from hominem_pipeline.data.prompts import SEED_CATEGORIES, load_seed_prompts
from hominem_pipeline.defs.assets.foundation import reward_labels, seed_prompts, trajectories
from hominem_pipeline.defs.resources import STORE_POOL, HominemResource
from hominem_pipeline.validation import label_row_problems, read_jsonl


@dg.asset_check(asset=seed_prompts, blocking=True, description="Every seed category present; 50-100 prompts")
def seed_prompts_cover_categories(hominem: HominemResource) -> dg.AssetCheckResult:
    prompts = load_seed_prompts(hominem.settings().seed_prompts_path)
    per_cat = Counter(p.category for p in prompts)
    missing = [c for c in SEED_CATEGORIES if per_cat.get(c, 0) == 0]
    ok = not missing and 50 <= len(prompts) <= 100
    return dg.AssetCheckResult(
        passed=ok,
        metadata={"count": len(prompts), "missing_categories": dg.MetadataValue.json(missing)},
        description=None if ok else f"missing categories {missing} or count {len(prompts)} outside 50-100",
    )


@dg.asset_check(asset=trajectories, blocking=True, description="No empty candidate; every prompt has all N")
def trajectories_complete(hominem: HominemResource) -> dg.AssetCheckResult:
    rows = read_jsonl(hominem.settings().trajectories_export)
    empty = [r["trajectory_id"] for r in rows if not str(r.get("response", "")).strip()]
    per_prompt = Counter(r["prompt_id"] for r in rows)
    expected = max(per_prompt.values(), default=0)
    short = sorted(p for p, c in per_prompt.items() if c < expected)
    ok = bool(rows) and not empty and not short
    return dg.AssetCheckResult(
        passed=ok,
        metadata={
            "rows": len(rows),
            "empty": len(empty),
            "prompts_short_of_candidates": dg.MetadataValue.json(short),
        },
    )


@dg.asset_check(
    asset=reward_labels,
    blocking=True,
    description="Every label matches the manifold: fields present, values in range",
)
def reward_labels_schema_valid(hominem: HominemResource) -> dg.AssetCheckResult:
    rows = read_jsonl(hominem.settings().reward_samples_export)
    problems = label_row_problems(rows, hominem.manifold())
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={
            "rows": len(rows),
            "problems": len(problems),
            "first_problems": dg.MetadataValue.json(problems[:10]),
        },
    )


@dg.asset_check(
    asset=reward_labels,
    pool=STORE_POOL,  # it reads label_failures from the store
    description="Every trajectory has a label or a recorded failure; warns when failures exceed 20%",
)
def reward_labels_coverage(hominem: HominemResource) -> dg.AssetCheckResult:
    settings = hominem.settings()
    trajectory_ids = {r["trajectory_id"] for r in read_jsonl(settings.trajectories_export)}
    labelled = {r["trajectory_id"] for r in read_jsonl(settings.reward_samples_export)}
    with hominem.open_db() as db:
        failed = {
            r["trajectory_id"]
            for r in db.query(
                "SELECT trajectory_id FROM label_failures WHERE trajectory_id IN (SELECT unnest(?))",
                [sorted(trajectory_ids)],
            )
        } - labelled
    unaccounted = trajectory_ids - labelled - failed
    failure_rate = len(failed) / len(trajectory_ids) if trajectory_ids else 0.0
    ok = not unaccounted and failure_rate <= 0.2
    return dg.AssetCheckResult(
        passed=ok,
        severity=dg.AssetCheckSeverity.ERROR if unaccounted else dg.AssetCheckSeverity.WARN,
        metadata={
            "trajectories": len(trajectory_ids),
            "labelled": len(labelled & trajectory_ids),
            "failed": len(failed),
            "unaccounted": len(unaccounted),
            "failure_rate": round(failure_rate, 4),
        },
    )


FOUNDATION_CHECKS = [
    seed_prompts_cover_categories,
    trajectories_complete,
    reward_labels_schema_valid,
    reward_labels_coverage,
]
