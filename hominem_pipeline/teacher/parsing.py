"""Turning what a teacher says into a valid `RewardLabel`, or a precise reason why not."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from pydantic import ValidationError

from hominem_pipeline.manifold import RewardLabel, RewardManifold, validate_label

SCALE = ("1", "2", "3", "4", "5")


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


def parse_json_rating(text: str, manifold: RewardManifold) -> RewardLabel:
    obj = extract_json_object(text)
    allowed = {"reward_vector", "reward_intensity", "safety_score", "scalar_preference", "rationale"}
    data = {k: v for k, v in obj.items() if k in allowed}
    try:
        return validate_label(data, manifold)
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
    expected = sum((i + 1) * p for i, p in enumerate(dist))  # in [1, 5]
    lo, hi = rng
    value = lo + (expected - 1.0) / 4.0 * (hi - lo)
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
