"""The reward manifold: dimensions, scalars and label validation, loaded from config/schemas/reward.yaml.

Everything that touches a reward vector (teacher prompts, label validation, reward-model heads, preference
deltas, reports) asks a `RewardManifold` for its dimensions instead of hard-coding them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_range(v: tuple[float, float]) -> tuple[float, float]:
    lo, hi = v
    if not lo < hi:
        raise ValueError(f"range must be [low, high] with low < high, got {list(v)}")
    return v


class Dimension(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    range: tuple[float, float] = (-1.0, 1.0)
    description: str
    rubric: str = ""

    _range = field_validator("range")(_check_range)


class ScalarSpec(_Strict):
    range: tuple[float, float] = (0.0, 1.0)
    description: str
    rubric: str = ""

    _range = field_validator("range")(_check_range)


class ScalarPreferenceSpec(_Strict):
    enabled: bool = True
    range: tuple[float, float] = (-1.0, 1.0)
    description: str = ""
    weights: dict[str, float] = Field(default_factory=dict)

    _range = field_validator("range")(_check_range)


class RewardManifold(_Strict):
    version: int = 1
    dimensions: tuple[Dimension, ...]
    reward_intensity: ScalarSpec
    safety_score: ScalarSpec
    scalar_preference: ScalarPreferenceSpec = ScalarPreferenceSpec()

    @model_validator(mode="after")
    def _consistent(self) -> RewardManifold:
        names = [d.name for d in self.dimensions]
        if not names:
            raise ValueError("dimensions: at least one dimension is required")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"dimensions: duplicate names {dupes}")
        unknown = sorted(set(self.scalar_preference.weights) - set(names))
        if unknown:
            raise ValueError(f"scalar_preference.weights: unknown dimensions {unknown}")
        return self

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.dimensions]

    def dimension(self, name: str) -> Dimension:
        for d in self.dimensions:
            if d.name == name:
                return d
        raise KeyError(name)

    @property
    def schema_hash(self) -> str:
        """Changes whenever anything a label depends on changes (names, ranges, rubrics)."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def scalar_preference_of(self, reward_vector: dict[str, float]) -> float:
        """Weighted mean of the dimensions, each first mapped to [-1, 1], then into the scalar's range."""
        weights = {n: self.scalar_preference.weights.get(n, 1.0) for n in self.names}
        total = sum(weights.values()) or 1.0
        acc = 0.0
        for d in self.dimensions:
            lo, hi = d.range
            unit = 2.0 * (reward_vector[d.name] - lo) / (hi - lo) - 1.0
            acc += weights[d.name] * unit
        unit_mean = acc / total
        lo, hi = self.scalar_preference.range
        return lo + (unit_mean + 1.0) * (hi - lo) / 2.0

    def json_schema_for_rating(self) -> dict[str, Any]:
        """JSON schema a teacher's structured output must satisfy (used for response_format)."""
        dims = {
            d.name: {"type": "number", "minimum": d.range[0], "maximum": d.range[1]} for d in self.dimensions
        }
        return {
            "type": "object",
            "properties": {
                "reward_vector": {
                    "type": "object",
                    "properties": dims,
                    "required": self.names,
                    "additionalProperties": False,
                },
                "reward_intensity": {
                    "type": "number",
                    "minimum": self.reward_intensity.range[0],
                    "maximum": self.reward_intensity.range[1],
                },
                "safety_score": {
                    "type": "number",
                    "minimum": self.safety_score.range[0],
                    "maximum": self.safety_score.range[1],
                },
                "rationale": {"type": "string"},
            },
            "required": ["reward_vector", "reward_intensity", "safety_score", "rationale"],
            "additionalProperties": False,
        }


def load_manifold(path: Path | str) -> RewardManifold:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise ValueError(f"reward manifold schema not found: {path}") from exc
    try:
        return RewardManifold.model_validate(raw)
    except Exception as exc:
        raise ValueError(f"{path}: invalid reward manifold: {exc}") from exc


def _in_range(name: str, value: float, rng: tuple[float, float]) -> float:
    lo, hi = rng
    if value != value:  # NaN
        raise ValueError(f"{name}: NaN is not a score")
    if not lo <= value <= hi:
        raise ValueError(f"{name}: {value} is outside [{lo}, {hi}]")
    return float(value)


class RewardLabel(BaseModel):
    """One teacher rating of a (prompt, response). Validate with `context={"manifold": m}`.

    `confidence` holds, per dimension and scalar, how sure the teacher was (1 - normalised entropy of its
    score distribution where the backend exposes one; absent otherwise).
    """

    model_config = ConfigDict(extra="forbid")

    reward_vector: dict[str, float]
    reward_intensity: float
    safety_score: float
    scalar_preference: float | None = None
    rationale: str = ""
    confidence: dict[str, float] = Field(default_factory=dict)

    @field_validator("reward_vector")
    @classmethod
    def _vector(cls, v: dict[str, float], info: ValidationInfo) -> dict[str, float]:
        m: RewardManifold | None = (info.context or {}).get("manifold")
        if m is None:
            return v
        missing = [n for n in m.names if n not in v]
        if missing:
            raise ValueError(f"missing dimensions {missing}")
        extra = [k for k in v if k not in m.names]
        if extra:
            raise ValueError(f"unknown dimensions {extra}")
        return {d.name: _in_range(f"reward_vector.{d.name}", v[d.name], d.range) for d in m.dimensions}

    @field_validator("reward_intensity")
    @classmethod
    def _intensity(cls, v: float, info: ValidationInfo) -> float:
        m: RewardManifold | None = (info.context or {}).get("manifold")
        return _in_range("reward_intensity", v, m.reward_intensity.range) if m else v

    @field_validator("safety_score")
    @classmethod
    def _safety(cls, v: float, info: ValidationInfo) -> float:
        m: RewardManifold | None = (info.context or {}).get("manifold")
        return _in_range("safety_score", v, m.safety_score.range) if m else v

    @field_validator("confidence")
    @classmethod
    def _confidence(cls, v: dict[str, float]) -> dict[str, float]:
        for k, c in v.items():
            _in_range(f"confidence.{k}", c, (0.0, 1.0))
        return v

    @model_validator(mode="after")
    def _scalar(self, info: ValidationInfo) -> RewardLabel:
        m: RewardManifold | None = (info.context or {}).get("manifold")
        if m is not None and m.scalar_preference.enabled:
            if self.scalar_preference is None:
                self.scalar_preference = m.scalar_preference_of(self.reward_vector)
            else:
                _in_range("scalar_preference", self.scalar_preference, m.scalar_preference.range)
        return self


def validate_label(data: dict[str, Any], manifold: RewardManifold) -> RewardLabel:
    return RewardLabel.model_validate(data, context={"manifold": manifold})
