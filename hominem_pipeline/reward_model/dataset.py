"""Training data for the reward model: labelled samples, preference pairs, and the grouped split.

Samples come from the `reward_labels` export (`data/labeled/reward_samples.jsonl`); a label may lack some
dimensions (older schema, partial teacher output), so every target is optional and heads train on the rows
that have them. Pairs come from imported human preferences and from the teacher's best-vs-worst candidates
of one prompt. The split is grouped by prompt text: no prompt, and so no pair, is in both sets.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hominem_pipeline.manifold import RewardManifold
from hominem_pipeline.records import content_hash
from hominem_pipeline.validation import iter_jsonl

SCALAR_HEADS = ("reward_intensity", "safety_score", "scalar_preference")


class SampleRow(BaseModel):
    """One labelled exchange as the reward model reads it. Unknown extra fields are kept out of the way."""

    model_config = ConfigDict(extra="ignore")

    prompt: str = Field(min_length=1)
    response: str
    label_id: str | None = None
    prompt_id: str | None = None
    category: str | None = None
    reward_vector: dict[str, float | None] = Field(default_factory=dict)
    reward_intensity: float | None = None
    safety_score: float | None = None
    scalar_preference: float | None = None

    @field_validator("reward_vector")
    @classmethod
    def _finite(cls, v: dict[str, float | None]) -> dict[str, float | None]:
        for k, x in v.items():
            if x is not None and not math.isfinite(x):
                raise ValueError(f"reward_vector.{k}: {x} is not a finite number")
        return v


@dataclass(frozen=True)
class Sample:
    prompt: str
    response: str
    targets: dict[str, float]  # head name -> label; a missing head is simply absent
    label_id: str | None = None
    category: str | None = None

    @property
    def group(self) -> str:
        return content_hash(self.prompt)


@dataclass(frozen=True)
class Pair:
    """A preference: `chosen` beat `rejected` as an answer to `prompt`. `source` is "teacher" or the
    imported data set's name; `dimensions` the reward dimensions it is evidence for (empty: unknown,
    training infers them)."""

    prompt: str
    chosen: str
    rejected: str
    source: str
    dimensions: tuple[str, ...] = ()

    @property
    def imported(self) -> bool:
        return self.source != "teacher"

    @property
    def group(self) -> str:
        return content_hash(self.prompt)


def head_names(manifold: RewardManifold) -> list[str]:
    """Every regression head: one per dimension, then the scalars."""
    heads = list(manifold.names) + ["reward_intensity", "safety_score"]
    if manifold.scalar_preference.enabled:
        heads.append("scalar_preference")
    return heads


def head_range(manifold: RewardManifold, head: str) -> tuple[float, float]:
    if head == "reward_intensity":
        return manifold.reward_intensity.range
    if head == "safety_score":
        return manifold.safety_score.range
    if head == "scalar_preference":
        return manifold.scalar_preference.range
    return manifold.dimension(head).range


def sample_from_row(row: dict[str, Any], manifold: RewardManifold, where: str = "row") -> Sample:
    """Validate one export row; raises ValueError naming `where` and the field."""
    try:
        r = SampleRow.model_validate(row)
    except ValidationError as exc:
        errs = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"{where}: {errs}") from exc
    targets: dict[str, float] = {}
    for name in manifold.names:
        v = r.reward_vector.get(name)
        if v is not None:
            targets[name] = float(v)
    for name in SCALAR_HEADS:
        v = getattr(r, name)
        if v is not None:
            targets[name] = float(v)
    if manifold.scalar_preference.enabled and "scalar_preference" not in targets:
        if all(n in targets for n in manifold.names):
            targets["scalar_preference"] = manifold.scalar_preference_of(targets)
    for head, v in targets.items():
        if head not in head_names(manifold):
            continue
        lo, hi = head_range(manifold, head)
        if not lo <= v <= hi:
            raise ValueError(f"{where}: {head}: {v} is outside [{lo}, {hi}]")
    return Sample(r.prompt, r.response, targets, r.label_id, r.category)


def load_samples(path: Path | str, manifold: RewardManifold) -> list[Sample]:
    """Samples from a reward-labels JSONL export. Any bad line fails the load, naming file and line."""
    path = Path(path)
    return [sample_from_row(obj, manifold, f"{path}:{lineno}") for lineno, obj in iter_jsonl(path)]


def data_hash(samples: list[Sample], pairs: list[Pair]) -> str:
    """Content hash of exactly what training sees (order-independent)."""
    h = hashlib.sha256()
    for line in sorted(
        json.dumps([s.prompt, s.response, sorted(s.targets.items())], ensure_ascii=False) for s in samples
    ):
        h.update(line.encode())
        h.update(b"\n")
    h.update(b"--pairs--\n")
    for line in sorted(
        json.dumps([p.prompt, p.chosen, p.rejected, p.source, list(p.dimensions)], ensure_ascii=False)
        for p in pairs
    ):
        h.update(line.encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def teacher_pairs(samples: list[Sample], min_margin: float) -> list[Pair]:
    """Per prompt, the teacher's best vs worst candidate by scalar_preference, when they differ enough
    (the one rule, shared with the trainer's preference pairs: `extraction.preferences.select_teacher_pairs`)."""
    from hominem_pipeline.extraction.preferences import select_teacher_pairs

    selected, _ = select_teacher_pairs(
        [s for s in samples if "scalar_preference" in s.targets],
        prompt=lambda s: s.prompt,
        response=lambda s: s.response,
        scalar=lambda s: s.targets["scalar_preference"],
        min_margin=min_margin,
    )
    return [Pair(best.prompt, best.response, worst.response, "teacher") for best, worst, _ in selected]


def imported_pairs(rows: list[dict[str, Any]]) -> list[Pair]:
    """Pairs from `imported_preferences` rows (a row without a source, from before migration 0011, is
    "unknown")."""
    return [
        Pair(
            r["prompt"],
            r["chosen"],
            r["rejected"],
            r.get("source") or "unknown",
            tuple(r.get("dimensions") or ()),
        )
        for r in rows
    ]


def validation_groups(groups: set[str], fraction: float, salt: str) -> set[str]:
    """The held-out prompt groups: the first ceil(fraction * n) groups ordered by a salted hash.

    Ordering by hash (not a hash threshold) gives the exact share even on ten prompts; at least one group
    is held out whenever there are two or more and the fraction is positive.
    """
    if fraction <= 0 or len(groups) < 2:
        return set()
    ordered = sorted(groups, key=lambda g: hashlib.sha256(f"{salt}\0{g}".encode()).hexdigest())
    k = min(len(ordered) - 1, max(1, math.ceil(fraction * len(ordered))))
    return set(ordered[:k])


@dataclass
class Split:
    train: list[Sample]
    validation: list[Sample]
    train_pairs: list[Pair]
    validation_pairs: list[Pair]


def split_data(samples: list[Sample], pairs: list[Pair], fraction: float, salt: str) -> Split:
    """Grouped by prompt. Labelled samples and pairs are split separately (imported pairs usually come
    from other prompts), each so that no prompt lands on both sides."""
    val_groups = validation_groups({s.group for s in samples}, fraction, salt)
    pair_only = {p.group for p in pairs} - {s.group for s in samples}
    val_groups |= validation_groups(pair_only, fraction, salt)
    return Split(
        train=[s for s in samples if s.group not in val_groups],
        validation=[s for s in samples if s.group in val_groups],
        train_pairs=[p for p in pairs if p.group not in val_groups],
        validation_pairs=[p for p in pairs if p.group in val_groups],
    )
