"""Teacher reward labels for trajectories: stored in DuckDB, resumable, failures recorded with reasons.

A label's id hashes the trajectory, the rating method and the manifold schema, so changing the manifold
re-labels everything while a re-run with nothing changed does nothing. A rating the teacher could not
give is stored in `label_failures` with its reason and retried on the next run; it is never replaced by
an invented number.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hominem_pipeline.manifold import RewardManifold
from hominem_pipeline.store import TrainingDatabase
from hominem_pipeline.teacher.base import Teacher


def label_id(trajectory_id: str, rater: str, schema_hash: str) -> str:
    return hashlib.sha256(f"{trajectory_id}\0{rater}\0{schema_hash}".encode()).hexdigest()[:24]


@dataclass
class LabelRun:
    label_ids: list[str] = field(default_factory=list)
    labelled: int = 0
    reused: int = 0
    failed: int = 0
    failure_reasons: dict[str, int] = field(default_factory=dict)


def label_trajectories(
    db: TrainingDatabase,
    teacher: Teacher,
    manifold: RewardManifold,
    trajectory_ids: list[str],
    batch_size: int = 8,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> LabelRun:
    run = LabelRun()
    schema_hash = manifold.schema_hash
    ids = {t: label_id(t, teacher.rater_identity, schema_hash) for t in trajectory_ids}
    run.label_ids = list(ids.values())
    if force:
        db.con.execute("DELETE FROM reward_labels WHERE label_id IN (SELECT unnest(?))", [run.label_ids])
    existing = db.existing_ids("reward_labels", "label_id", run.label_ids)
    run.reused = len(existing)
    todo = [t for t in trajectory_ids if ids[t] not in existing]
    for start in range(0, len(todo), batch_size):
        batch = db.get_trajectories(todo[start : start + batch_size])
        outcomes = teacher.rate([(t["prompt"], t["response"]) for t in batch], manifold)
        for traj, outcome in zip(batch, outcomes, strict=True):
            lid = ids[traj["trajectory_id"]]
            base: dict[str, Any] = {
                "label_id": lid,
                "trajectory_id": traj["trajectory_id"],
                "rater": teacher.rater_identity,
                "schema_hash": schema_hash,
            }
            if outcome.label is not None:
                db.insert_label({**base, **outcome.label.model_dump()})
                run.labelled += 1
            else:
                reason = outcome.failure or "unknown failure"
                db.record_label_failure(
                    {**base, "reason": reason, "raw_output": outcome.raw_output, "attempts": outcome.attempts}
                )
                run.failed += 1
                key = reason.split(":")[0]
                run.failure_reasons[key] = run.failure_reasons.get(key, 0) + 1
        if progress:
            progress(min(start + batch_size, len(todo)), len(todo))
    return run


def label_rows(db: TrainingDatabase, label_ids: list[str]) -> list[dict[str, Any]]:
    """Export rows for `data/labeled/reward_samples.jsonl`: the exchange plus its label."""
    rows = []
    for r in db.get_labels(label_ids):
        rows.append(
            {
                "label_id": r["label_id"],
                "trajectory_id": r["trajectory_id"],
                "prompt_id": r["prompt_id"],
                "category": r["category"],
                "prompt": r["prompt"],
                "response": r["response"],
                "reward_vector": r["reward_vector"],
                "reward_intensity": r["reward_intensity"],
                "safety_score": r["safety_score"],
                "scalar_preference": r["scalar_preference"],
                "rationale": r["rationale"],
                "confidence": r["confidence"],
                "rater": r["rater"],
                "schema_hash": r["schema_hash"],
            }
        )
    return rows


def label_summary(rows: list[dict[str, Any]], manifold: RewardManifold) -> dict[str, float]:
    """Per-dimension means and mean confidence, for asset metadata."""
    out: dict[str, float] = {}
    if not rows:
        return out
    for name in manifold.names:
        out[f"mean_{name}"] = sum(r["reward_vector"][name] for r in rows) / len(rows)
    out["mean_reward_intensity"] = sum(r["reward_intensity"] for r in rows) / len(rows)
    out["mean_safety_score"] = sum(r["safety_score"] for r in rows) / len(rows)
    confs = [c for r in rows for c in r["confidence"].values()]
    if confs:
        out["mean_confidence"] = sum(confs) / len(confs)
    return out
