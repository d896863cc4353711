"""Where the dedup rule's "highest reward intensity" comes from, in order of preference:
1. the published reward model (`hominem_pipeline.reward_model.load_current`), when there is one;
2. the teacher's label of that assistant turn (`conversation_labels`, kind "reward");
3. nothing: then seed 002's fallback applies (no loss exists at extraction time, so the first draft wins).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)


class IntensitySource(Protocol):
    name: str

    def intensities(
        self, prompt: str, responses: Sequence[str], message_ids: Sequence[str]
    ) -> list[float | None]: ...


class NoIntensity:
    name = "none"

    def intensities(
        self, prompt: str, responses: Sequence[str], message_ids: Sequence[str]
    ) -> list[float | None]:
        return [None] * len(responses)


class TeacherLabelIntensity:
    """The teacher's reward_intensity / safety_score per assistant message id (labels are few: one per
    rated turn, so they are held in memory)."""

    def __init__(self, labels: dict[str, tuple[float, float]]):
        self.labels = labels
        self.name = "teacher_labels"

    def intensities(
        self, prompt: str, responses: Sequence[str], message_ids: Sequence[str]
    ) -> list[float | None]:
        return [self.labels[m][0] if m in self.labels else None for m in message_ids]

    def safety(self, message_id: str) -> float | None:
        return self.labels[message_id][1] if message_id in self.labels else None


class RewardModelIntensity:
    def __init__(self, model: Any, fallback: TeacherLabelIntensity | None = None):
        self.model = model
        self.fallback = fallback
        self.name = f"reward_model:{getattr(model, 'version', '?')}"

    def intensities(
        self, prompt: str, responses: Sequence[str], message_ids: Sequence[str]
    ) -> list[float | None]:
        outputs = self.model.score_batch([(prompt, r) for r in responses])
        return [float(o.reward_intensity) for o in outputs]

    def safety(self, message_id: str) -> float | None:
        return self.fallback.safety(message_id) if self.fallback else None


def best_intensity_source(
    db: Any, artifacts_dir: Path | None, use_reward_model: bool = True
) -> IntensitySource:
    labels = {
        r["message_id"]: (r["reward_intensity"], r["safety_score"])
        for r in db.query(
            "SELECT message_id, reward_intensity, safety_score FROM conversation_labels WHERE kind = 'reward'"
        )
    }
    teacher = TeacherLabelIntensity(labels)
    if use_reward_model and artifacts_dir is not None:
        from hominem_pipeline.reward_model import load_current

        model = load_current(Path(artifacts_dir))
        if model is not None:
            log.info("dedup ranks drafts with the reward model %s", getattr(model, "version", "?"))
            return RewardModelIntensity(model, teacher)
    return teacher
