"""Teacher labels for assistant turns of one event-log day: the reward manifold and the emotion axes
(seed 000 phase 7), stored beside the user's own emoji labels.

Resumable like the foundation labels: a label id hashes (message, kind, rater, schema), so a repeated
run rates nothing twice; failures are stored with their reasons and retried next run.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from hominem_pipeline.manifold import RewardManifold
from hominem_pipeline.records import content_hash
from hominem_pipeline.settings import Settings


@dataclass
class LabelRun:
    assistant_turns: int = 0
    rated: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    reused: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    failures: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    deferred: int = 0  # over max_turns_per_run: rated on a later run
    failure_reasons: list[str] = field(default_factory=list)


def assistant_turns_of_day(db: Any, day: date) -> list[dict[str, Any]]:
    """Assistant messages logged that day, each with the user message it answers (pairing rule)."""
    out = []
    for rows in db.iter_conversation_messages(days=[day]):
        last_user = None
        for r in rows:
            if r["role"] == "user":
                last_user = r
            elif r["role"] == "assistant" and last_user is not None and r["event_day"] == day:
                out.append({**r, "prompt": last_user["content"], "user_message_id": last_user["event_id"]})
    return out


def build_emotion_teacher(settings: Settings) -> Any:
    """The configured teacher, rating on the emotion axes instead of the reward manifold (no rationale:
    the reward label already carries one)."""
    from hominem_pipeline.teacher import build_teacher

    quiet = Settings(home=settings.home, config_dir=settings.config_dir)
    quiet.__dict__["pipeline"] = settings.pipeline.model_copy(
        update={"labeling": settings.pipeline.labeling.model_copy(update={"rationale": False})}
    )
    return build_teacher(quiet)


def label_day(
    db: Any,
    day: date,
    raters: list[tuple[str, Any, RewardManifold]],
    batch_size: int = 8,
    max_turns: int = 0,
    force: bool = False,
) -> LabelRun:
    """Rate the day's assistant turns with each (kind, teacher, manifold) rater."""
    run = LabelRun()
    turns = assistant_turns_of_day(db, day)
    run.assistant_turns = len(turns)
    for kind, teacher, manifold in raters:
        schema = manifold.schema_hash
        todo = []
        existing = {r["label_id"] for r in db.get_conversation_labels(days=[day], kind=kind)}
        for t in turns:
            label_id = content_hash("conversation_label", t["event_id"], kind, teacher.rater_identity, schema)
            if label_id in existing and not force:
                run.reused[kind] += 1
            else:
                todo.append((label_id, t))
        if max_turns and len(todo) > max_turns:
            run.deferred = max(run.deferred, len(todo) - max_turns)
            todo = todo[:max_turns]
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            outcomes = teacher.rate([(t["prompt"], t["content"]) for _, t in batch], manifold)
            for (label_id, t), o in zip(batch, outcomes, strict=True):
                if o.ok:
                    lab = o.label
                    db.insert_conversation_label(
                        {
                            "label_id": label_id,
                            "message_id": t["event_id"],
                            "conversation_id": t["conversation_id"],
                            "kind": kind,
                            "rater": teacher.rater_identity,
                            "schema_hash": schema,
                            "vector": lab.reward_vector,
                            "reward_intensity": lab.reward_intensity,
                            "safety_score": lab.safety_score,
                            "scalar_preference": lab.scalar_preference,
                            "rationale": lab.rationale,
                            "confidence": lab.confidence,
                            "event_day": day,
                        }
                    )
                    run.rated[kind] += 1
                else:
                    db.record_conversation_label_failure(
                        {
                            "label_id": label_id,
                            "message_id": t["event_id"],
                            "kind": kind,
                            "rater": teacher.rater_identity,
                            "reason": o.failure or "unknown",
                            "raw_output": o.raw_output,
                            "event_day": day,
                        }
                    )
                    run.failures[kind] += 1
                    run.failure_reasons.append(f"{kind} {t['event_id']}: {o.failure}")
    return run


def label_export_rows(db: Any, day: date) -> list[dict[str, Any]]:
    """One row per assistant turn of the day: the exchange, the teacher's reward and emotion labels
    (when rated) and the user's emoji labels with the emotion axes they stand for."""
    turns = assistant_turns_of_day(db, day)
    labels: dict[tuple[str, str], dict[str, Any]] = {}
    for r in db.get_conversation_labels(message_ids=[t["event_id"] for t in turns]):
        labels[(r["message_id"], r["kind"])] = r
    emojis: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for f in db.get_feedback(kind="emoji"):
        emojis[f["message_id"]].append(f)
    rows = []
    for t in turns:
        mid = t["event_id"]
        user_axes: dict[str, float] = defaultdict(float)
        for f in emojis.get(mid, []):
            for axis, v in f["axes"].items():
                user_axes[axis] += v
        row: dict[str, Any] = {
            "message_id": mid,
            "conversation_id": t["conversation_id"],
            "user_message_id": t["user_message_id"],
            "prompt": t["prompt"],
            "response": t["content"],
            "event_day": day.isoformat(),
            "user_emoji": [f["emoji"] for f in emojis.get(mid, [])],
            "user_emotion_axes": {k: max(-1.0, min(1.0, v)) for k, v in user_axes.items()},
        }
        for kind in ("reward", "emotion"):
            lab = labels.get((mid, kind))
            row[kind] = (
                None
                if lab is None
                else {
                    "vector": lab["vector"],
                    "reward_intensity": lab["reward_intensity"],
                    "safety_score": lab["safety_score"],
                    "scalar_preference": lab["scalar_preference"],
                    "confidence": lab["confidence"],
                    "rationale": lab["rationale"],
                    "rater": lab["rater"],
                }
            )
        rows.append(row)
    return rows
