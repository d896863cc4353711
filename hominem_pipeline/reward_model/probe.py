"""Looking inside a reward model: how candidates differ, and predictions next to the teacher's labels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hominem_pipeline.reward_model.dataset import Sample, load_samples, split_data
from hominem_pipeline.reward_model.model import RewardModel, RewardOutput


@dataclass(frozen=True)
class Difference:
    name: str  # a dimension, reward_intensity, safety_score or scalar_preference
    spread: float  # highest minus lowest value across candidates
    highest: int  # index of the candidate scoring highest
    lowest: int
    values: tuple[float, ...]


def _values(o: RewardOutput) -> dict[str, float]:
    return {
        **o.reward_vector,
        "reward_intensity": o.reward_intensity,
        "safety_score": o.safety_score,
        "scalar_preference": o.scalar_preference,
    }


def check_candidates(prompt: str, responses: list[str] | tuple[str, ...]) -> None:
    """Refuse what a score would mean nothing for: an empty prompt, no candidate, an empty candidate
    (ValueError naming which)."""
    if not prompt.strip():
        raise ValueError("prompt: empty text; the reward model scores a reply to a prompt")
    if not responses:
        raise ValueError("response: no candidate to score")
    for i, r in enumerate(responses, 1):
        if not r.strip():
            raise ValueError(f"response {i}: empty text; there is nothing to score")


def differences(outputs: list[RewardOutput]) -> list[Difference]:
    """Every dimension and scalar, largest spread between candidates first."""
    if len(outputs) < 2:
        return []
    rows = [_values(o) for o in outputs]
    diffs = []
    for name in rows[0]:
        vals = tuple(r[name] for r in rows)
        hi = max(range(len(vals)), key=lambda i: vals[i])
        lo = min(range(len(vals)), key=lambda i: vals[i])
        diffs.append(Difference(name, vals[hi] - vals[lo], hi, lo, vals))
    return sorted(diffs, key=lambda d: (-d.spread, d.name))


def validation_samples(model: RewardModel, samples_file: Path | str | None = None) -> list[Sample]:
    """The held-out samples of the model's own training split (same file, fraction and salt)."""
    data = model.metadata.get("training_data", {})
    path = samples_file or data.get("samples_file")
    if not path:
        raise FileNotFoundError("the model does not record its labels file; pass one")
    samples = load_samples(path, model.manifold)
    split = split_data(
        samples, [], float(data.get("validation_fraction", 0.2)), str(data.get("split_salt", ""))
    )
    return split.validation
