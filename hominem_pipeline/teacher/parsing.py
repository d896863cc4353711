"""Turning what a teacher says into a valid `RewardLabel`, or a precise reason why not.

Teachers rate on one fixed scale, the integers 1 to 5 that every rubric in `config/schemas/reward.yaml`
is written in (UltraFeedback-style raters work the same way). A JSON rating carries one integer per
dimension and scalar; `rating_schema` states that scale as enums, which llama.cpp's grammar and OpenAI's
strict structured outputs both enforce while decoding. The parser still checks every value and refuses
anything off the scale (never clamped), then maps the scale linearly onto the manifold's ranges
(`scale_to_range`), the same mapping G-Eval's probability-weighted digits use.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from pydantic import ValidationError

from hominem_pipeline.manifold import RewardLabel, RewardManifold, validate_label

SCALE = ("1", "2", "3", "4", "5")
#: The integer ratings a JSON answer may hold, low to high.
SCALE_VALUES = tuple(int(d) for d in SCALE)


class RatingParseError(ValueError):
    pass


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def extract_json_object(text: str) -> dict[str, Any]:
    """The first JSON object in `text` (tolerates code fences and chatter around it)."""
    if not text or not text.strip():
        raise RatingParseError("empty output")
    fenced = _FENCE.search(text)
    candidates = [fenced.group(1)] if fenced else []
    start = text.find("{")
    if start >= 0:
        candidates.append(text[start:])
    decoder = json.JSONDecoder()
    for cand in candidates:
        cand = cand.strip()
        try:
            obj, _ = decoder.raw_decode(cand)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            return obj
    raise RatingParseError(f"no JSON object found in output: {text[:120]!r}")


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "label"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def rating_schema(
    manifold: RewardManifold, rationale: bool = True, rationale_max_chars: int | None = None
) -> dict[str, Any]:
    """The JSON schema of a rating answer: one integer on the 1-5 scale per dimension and scalar (an enum,
    which llama.cpp's grammar converter and strict OpenAI structured outputs enforce), then an optional
    one-sentence rationale (bounded by `rationale_max_chars` where the server supports maxLength). Every
    key is required and nothing else is allowed."""
    on_scale = {"type": "integer", "enum": list(SCALE_VALUES)}
    properties: dict[str, Any] = {
        "reward_vector": {
            "type": "object",
            "properties": {name: dict(on_scale) for name in manifold.names},
            "required": list(manifold.names),
            "additionalProperties": False,
        },
    }
    properties["reward_intensity"] = dict(on_scale)
    properties["safety_score"] = dict(on_scale)
    if rationale:
        properties["rationale"] = {"type": "string"}
        if rationale_max_chars is not None:
            properties["rationale"]["maxLength"] = rationale_max_chars
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def scale_to_range(score: float, rng: tuple[float, float]) -> float:
    """A score on the 1-5 scale mapped linearly onto `rng` (1 -> low end, 5 -> high end)."""
    lo, hi = rng
    first, last = SCALE_VALUES[0], SCALE_VALUES[-1]
    return lo + (score - first) / (last - first) * (hi - lo)


def _on_scale(value: Any, field: str) -> int:
    """`value` if it is one of the scale's integers (4.0 counts as 4); otherwise a parse error naming `field`."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value != int(value)
    ):
        raise RatingParseError(f"{field}: {value!r} is not an integer on the rating scale 1-5")
    if int(value) not in SCALE_VALUES:
        raise RatingParseError(f"{field}: {value!r} is outside the rating scale 1-5")
    return int(value)


def parse_json_rating(text: str, manifold: RewardManifold) -> RewardLabel:
    """A JSON rating on the 1-5 scale (see `rating_schema`) as a label in the manifold's ranges.

    Every missing or off-scale value is reported, each naming its field; nothing is clamped or filled in.
    """
    obj = extract_json_object(text)
    problems: list[str] = []
    vector_in = obj.get("reward_vector")
    if not isinstance(vector_in, dict):
        vector_in = {}
        problems.append("reward_vector: missing or not an object")
    extra = sorted(set(vector_in) - set(manifold.names))
    if extra:
        problems.append(f"reward_vector: unknown dimensions {extra}")

    def scaled(value: Any, field: str, rng: tuple[float, float]) -> float | None:
        if value is None:
            problems.append(f"{field}: missing")
            return None
        try:
            return scale_to_range(_on_scale(value, field), rng)
        except RatingParseError as exc:
            problems.append(str(exc))
            return None

    vector = {
        d.name: scaled(vector_in.get(d.name), f"reward_vector.{d.name}", d.range) for d in manifold.dimensions
    }
    intensity = scaled(obj.get("reward_intensity"), "reward_intensity", manifold.reward_intensity.range)
    safety = scaled(obj.get("safety_score"), "safety_score", manifold.safety_score.range)
    rationale = obj.get("rationale", "")
    if not isinstance(rationale, str):
        problems.append("rationale: not a string")
    if problems:
        raise RatingParseError("; ".join(problems))
    try:
        return validate_label(
            {
                "reward_vector": vector,
                "reward_intensity": intensity,
                "safety_score": safety,
                "rationale": rationale,
            },
            manifold,
        )
    except ValidationError as exc:
        raise RatingParseError(_describe(exc)) from exc


def scale_distribution(logprob_by_token: dict[str, float]) -> tuple[list[float], float]:
    """From {token: logprob}, the renormalised distribution over the digits 1-5 and the probability mass
    the teacher put on the scale at all."""
    probs = []
    for digit in SCALE:
        lp = logprob_by_token.get(digit)
        probs.append(math.exp(lp) if lp is not None and math.isfinite(lp) else 0.0)
    mass = sum(probs)
    if mass <= 0.0:
        raise RatingParseError("no probability on any digit 1-5")
    return [p / mass for p in probs], min(1.0, mass)


def geval_score(dist: list[float], mass: float, rng: tuple[float, float]) -> tuple[float, float]:
    """Probability-weighted score (G-Eval) mapped into `rng`, and a confidence in [0, 1]:
    (probability mass on the scale) x (1 - normalised entropy of the distribution)."""
    expected = sum(v * p for v, p in zip(SCALE_VALUES, dist, strict=True))  # in [1, 5]
    lo, hi = rng
    value = scale_to_range(expected, rng)
    entropy = -sum(p * math.log(p) for p in dist if p > 0)
    confidence = mass * (1.0 - entropy / math.log(len(dist)))
    return min(hi, max(lo, value)), min(1.0, max(0.0, confidence))


def label_from_geval(
    manifold: RewardManifold,
    scores: dict[str, tuple[list[float], float]],
    rationale: str,
) -> RewardLabel:
    """Assemble a label from per-criterion (distribution, mass)."""
    vector, confidence = {}, {}
    for d in manifold.dimensions:
        vector[d.name], confidence[d.name] = geval_score(*scores[d.name], d.range)
    intensity, confidence["reward_intensity"] = geval_score(
        *scores["reward_intensity"], manifold.reward_intensity.range
    )
    safety, confidence["safety_score"] = geval_score(*scores["safety_score"], manifold.safety_score.range)
    return validate_label(
        {
            "reward_vector": vector,
            "reward_intensity": intensity,
            "safety_score": safety,
            "rationale": rationale,
            "confidence": confidence,
        },
        manifold,
    )
