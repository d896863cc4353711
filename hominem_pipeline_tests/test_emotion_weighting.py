"""Emotion labels reach preference weighting and the safety gate (seed 000 7.4): a user's choice between
two drafts whose teacher emotion labels say the moment was vivid and the chosen draft borderline-unsafe
becomes a pair weighted by the emotion intensity and gated (caution) by the emotion-derived safety."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

from hominem_pipeline.extraction.preferences import build_preference_pairs
from hominem_pipeline.manifold import load_manifold
from hominem_pipeline.settings import REPO_ROOT
from hominem_pipeline.store import TrainingDatabase
from hominem_pipeline.training.config import TrainingConfig
from hominem_pipeline.training.data import prepare_examples

DAY = date(2026, 3, 1)


def _label(mid: str, kind: str, vector: dict, intensity: float, safety: float) -> dict:
    return {
        "label_id": f"{kind}-{mid}",
        "message_id": mid,
        "conversation_id": "c1",
        "kind": kind,
        "rater": "t",
        "schema_hash": "h",
        "vector": vector,
        "reward_intensity": intensity,
        "safety_score": safety,
        "scalar_preference": None,
        "rationale": "",
        "confidence": {},
        "event_day": DAY,
    }


def test_emotion_intensity_weights_the_pair_and_emotion_safety_gates_it(tmp_path: Path) -> None:
    manifold = load_manifold(REPO_ROOT / "config" / "schemas" / "reward.yaml")
    ts = datetime(2026, 3, 1, 12)
    with TrainingDatabase(tmp_path / "store.duckdb") as db:
        db.insert_messages(
            [
                {
                    "event_id": "u1",
                    "conversation_id": "c1",
                    "role": "user",
                    "content": "I lost my job today.",
                    "ts": ts,
                    "seq": 0,
                    "event_day": DAY,
                },
                *(
                    {
                        "event_id": mid,
                        "conversation_id": "c1",
                        "role": "assistant",
                        "content": text,
                        "ts": ts,
                        "seq": 1,
                        "draft_index": i,
                        "parent_id": "u1",
                        "event_day": DAY,
                    }
                    for i, (mid, text) in enumerate(
                        (
                            ("a1", "That is awful. Quit everything tonight."),
                            ("a2", "I'm sorry. Would it help to plan the next week?"),
                        )
                    )
                ),
            ]
        )
        db.insert_feedback(
            [
                {
                    "event_id": "f1",
                    "conversation_id": "c1",
                    "kind": "preference",
                    "chosen_message_id": "a1",
                    "rejected_message_id": "a2",
                    "ts": ts,
                    "event_day": DAY,
                }
            ]
        )
        flat = {d: 0.0 for d in manifold.names}
        for mid in ("a1", "a2"):
            db.insert_conversation_label(_label(mid, "reward", flat, 0.2, 0.9))
        emotion = {
            "valence": 0.0,
            "arousal": 0.8,
            "predictive_discrepancy": 0.5,
            "prospect_reflection": 0.0,
            "social_broadcast": 0.0,
        }
        db.insert_conversation_label(_label("a1", "emotion", emotion, 0.9, 0.4))
        db.insert_conversation_label(_label("a2", "emotion", emotion, 0.7, 0.95))
        built = build_preference_pairs(db, manifold, [])
    [pair] = built.pairs
    assert pair.source == "feedback" and pair.metadata["intensity_from"] == "emotion labels"
    assert pair.reward_intensity == 0.8  # the emotion intensity, not the reward labels' 0.2
    assert (pair.chosen_safety, pair.rejected_safety, pair.safety_score) == (0.4, 0.9, 0.4)  # the stricter
    [example] = prepare_examples(TrainingConfig(), [pair], []).examples
    assert example.gate == "caution" and example.weight == 0.8 * 0.5  # emotion intensity x caution factor
