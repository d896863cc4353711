"""The five Reward Health Index components as plain functions of their measured inputs, each in [0, 1]
(higher = healthier), their weighted sum and the fast loop's partial index. No I/O: `health.measure`
gathers the inputs; tests plant them. A component that the data at hand cannot measure is `None`, never
a made-up number; the index is then the weighted mean of the components that were measured, and the
report names the missing ones (docs/REWARD_HEALTH.md).
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hominem_pipeline.health.config import COMPONENTS, PARTIAL_COMPONENTS, Weights


@dataclass
class Component:
    """One component's value (None = not measurable here) and what it was computed from."""

    name: str
    value: float | None
    inputs: dict[str, Any] = field(default_factory=dict)
    note: str = ""


def _unit(x: float) -> float:
    return float(min(1.0, max(0.0, x)))


# -- DCS: dimensional coherence ---------------------------------------------------------------------
def dcs(gda: Mapping[str, float], left_out: Iterable[str] = ()) -> Component:
    """Mean over dimension pairs of max(0, GDA(i, j)), the cosine between the gradients each dimension's
    preferences pull the adapter with: 2/(N(N-1)) * sum_{i<j} (the seed's 1/(N(N-1)) caps it at 0.5)."""
    left = sorted(left_out)
    if not gda:
        return Component("dcs", None, {"left_out": left}, "fewer than two dimensions drove a probe pair")
    value = sum(max(0.0, float(v)) for v in gda.values()) / len(gda)
    worst = min(gda, key=lambda k: gda[k])
    return Component(
        "dcs",
        _unit(value),
        {
            "pairs": len(gda),
            "most_opposed": worst,
            "most_opposed_gda": round(float(gda[worst]), 6),
            "left_out": left,
        },
    )


def mean_gda(probes: Sequence[Mapping[str, Any]]) -> tuple[dict[str, float], list[str]]:
    """The trainer's gradient probes (`training.probe`) of one window -> GDA per dimension pair averaged
    over the probes, and the dimensions no probe pair drove."""
    sums: dict[str, list[float]] = defaultdict(list)
    left: set[str] = set()
    for p in probes:
        for k, v in (p.get("gda") or {}).items():
            sums[k].append(float(v))
        left.update(p.get("left_out") or [])
    measured = {d for k in sums for d in k.split("|")}
    return {k: float(np.mean(v)) for k, v in sums.items()}, sorted(left - measured)


# -- GVS: gradient variance stability ---------------------------------------------------------------
def gvi(grad_norms: Sequence[float]) -> float | None:
    """Coefficient of variation std/mean of the total gradient norm; None for fewer than 2 steps."""
    x = np.asarray(grad_norms, dtype=float)
    if x.size < 2 or not np.all(np.isfinite(x)) or x.mean() <= 0:
        return None
    return float(x.std() / x.mean())


def gvi_reference(grad_norms: Sequence[float], window: int, percentile: float) -> float | None:
    """GVI_max calibration: the `percentile` of GVI over every window of `window` consecutive steps of
    a reference run (the whole run when it is shorter)."""
    x = list(grad_norms)
    w = min(window, len(x))
    values = [v for i in range(len(x) - w + 1) if (v := gvi(x[i : i + w])) is not None]
    return float(np.percentile(values, percentile)) if values else None


def gvs(grad_norms: Sequence[float], gvi_max: float | None, window: int) -> Component:
    """1 - min(1, GVI / GVI_max) over the last `window` steps."""
    tail = list(grad_norms)[-window:]
    value = gvi(tail)
    if value is None:
        return Component(
            "gvs", None, {"steps": len(tail)}, "fewer than two training steps with gradient norms"
        )
    if gvi_max is None:
        return Component("gvs", None, {"gvi": value}, "no GVI_max_reference calibrated for this adapter")
    ratio = value / gvi_max if gvi_max > 0 else (0.0 if value == 0 else math.inf)
    return Component(
        "gvs",
        _unit(1.0 - min(1.0, ratio)),
        {"gvi": round(value, 6), "gvi_max_reference": gvi_max, "steps": len(tail)},
    )


# -- MSS: manifold stability ------------------------------------------------------------------------
def rdm(vectors: Sequence[Sequence[float]]) -> list[float]:
    """Representational dissimilarity: 1 - cosine between every two reward vectors (upper triangle)."""
    v = np.asarray(vectors, dtype=float)
    norms = np.linalg.norm(v, axis=1)
    out = []
    for i, j in itertools.combinations(range(len(v)), 2):
        denom = norms[i] * norms[j]
        out.append(float(1.0 - (v[i] @ v[j]) / denom) if denom > 0 else 1.0)
    return out


def rdm_drift(before: Sequence[float], after: Sequence[float]) -> float:
    """clip(1 - spearman(before, after), 0, 1); identical RDMs drift 0 (even constant ones)."""
    from scipy.stats import spearmanr

    a, b = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    if a.shape != b.shape or a.size < 2:
        raise ValueError(f"RDMs differ in size ({a.size} vs {b.size}) or have fewer than 2 entries")
    if np.allclose(a, b):
        return 0.0
    rho = spearmanr(a, b).statistic
    return _unit(1.0 - float(rho)) if math.isfinite(float(rho)) else 1.0


def curvature_variance(sequences: Sequence[Sequence[float]], min_turns: int = 3) -> tuple[float | None, int]:
    """Per conversation, the variance of the second differences of its per-turn scalar reward divided
    by 6x the reward's variance (what an uncorrelated sequence gives), clipped to [0, 1]; mean over the
    conversations with at least `min_turns` turns. (value or None, conversations used)."""
    values = []
    for seq in sequences:
        r = np.asarray(seq, dtype=float)
        if r.size < max(3, min_turns):
            continue
        var = r.var()
        values.append(0.0 if var <= 1e-12 else _unit(np.diff(r, n=2).var() / (6.0 * var)))
    return (float(np.mean(values)) if values else None), len(values)


def mss(drift: float | None, curvature: float | None, inputs: dict[str, Any] | None = None) -> Component:
    """0.5 * (1 - RDM drift) + 0.5 * (1 - curvature variance); with one term unmeasured, the other alone."""
    terms = {k: v for k, v in (("drift", drift), ("curvature_variance", curvature)) if v is not None}
    info = {**(inputs or {}), **{k: round(v, 6) for k, v in terms.items()}}
    if not terms:
        return Component(
            "mss", None, info, "no earlier accepted reward-vector RDM and no multi-turn conversations"
        )
    note = "" if len(terms) == 2 else f"only {next(iter(terms))} measured"
    return Component("mss", _unit(float(np.mean([1.0 - v for v in terms.values()]))), info, note)


# -- CDRS: cross-domain robustness ------------------------------------------------------------------
@dataclass(frozen=True)
class ScoredPair:
    """A pair whose `chosen` the teacher (or the evaluation set) prefers, re-scored by the reward model:
    `margin` = s(chosen) - s(rejected), `variant_margin` the same after a meaning-preserving change,
    `probability` = the model's calibrated P(chosen beats rejected)."""

    domain: str
    margin: float
    variant_margin: float
    probability: float


def _binary_entropy(p: float) -> float:
    p = min(1.0 - 1e-12, max(1e-12, p))
    return -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def cdrs(pairs: Sequence[ScoredPair]) -> Component:
    """1 - (C_contradiction + C_entropy + (1 - C_consistency)) / 3 over the pairs' domains."""
    if not pairs:
        return Component("cdrs", None, {}, "no scored pairs with a known preference")
    flips = sum(1 for p in pairs if (p.margin > 0) != (p.variant_margin > 0))
    contradiction = flips / len(pairs)
    entropy = float(np.mean([_binary_entropy(p.probability) for p in pairs]))
    by_domain: dict[str, list[bool]] = defaultdict(list)
    for p in pairs:
        by_domain[p.domain].append(p.margin > 0)
    agreeing = sorted(d for d, v in by_domain.items() if sum(v) >= len(v) / 2)
    consistency = len(agreeing) / len(by_domain)
    value = 1.0 - (contradiction + entropy + (1.0 - consistency)) / 3.0
    return Component(
        "cdrs",
        _unit(value),
        {
            "pairs": len(pairs),
            "domains": len(by_domain),
            "c_contradiction": round(contradiction, 6),
            "c_entropy": round(entropy, 6),
            "c_consistency": round(consistency, 6),
            "disagreeing_domains": sorted(set(by_domain) - set(agreeing)),
        },
    )


# -- LRPS: local reward predictivity ----------------------------------------------------------------
def lrps(local_means: Sequence[float], outcomes: Sequence[float], min_conversations: int = 3) -> Component:
    """max(0, pearson(per-conversation mean local reward, conversation outcome)) across conversations."""
    x, y = np.asarray(local_means, dtype=float), np.asarray(outcomes, dtype=float)
    info: dict[str, Any] = {"conversations": int(x.size)}
    if x.size < min_conversations:
        return Component("lrps", None, info, f"fewer than {min_conversations} conversations with an outcome")
    if x.std() == 0 or y.std() == 0:
        return Component(
            "lrps", None, info, "local rewards or outcomes are constant: no correlation to measure"
        )
    r = float(np.corrcoef(x, y)[0, 1])
    return Component("lrps", _unit(max(0.0, r)), {**info, "pearson": round(r, 6)})


# -- the index --------------------------------------------------------------------------------------
def weighted_index(
    components: Mapping[str, Component], weights: Weights, names: Sequence[str] = COMPONENTS
) -> float | None:
    """sum(w_c * c) / sum(w_c) over the named components that were measured (None if none was).
    With every component measured this is the seed's RHI = 0.25 DCS + 0.15 GVS + 0.25 MSS + 0.20 CDRS
    + 0.15 LRPS."""
    used = [
        (getattr(weights, n), components[n].value)
        for n in names
        if n in components and components[n].value is not None
    ]
    total = sum(w for w, _ in used)
    if not used or total <= 0:
        return None
    return _unit(sum(w * v for w, v in used) / total)  # type: ignore[operator]


def partial_index(components: Mapping[str, Component], weights: Weights) -> float | None:
    """The fast loop's partial RHI: (w_dcs DCS + w_gvs GVS) / (w_dcs + w_gvs)."""
    return weighted_index(components, weights, PARTIAL_COMPONENTS)


def compute_rhi(
    gda: Mapping[str, float],
    grad_norms: Sequence[float],
    gvi_max: float | None,
    rdm_before: Sequence[float] | None,
    rdm_after: Sequence[float] | None,
    turn_rewards: Sequence[Sequence[float]],
    pairs: Sequence[ScoredPair],
    local_means: Sequence[float],
    outcomes: Sequence[float],
    weights: Weights | None = None,
    window: int = 20,
) -> tuple[float | None, dict[str, Component]]:
    """The seed's `compute_RHI` anchor: every input measured, the index and its components."""
    weights = weights or Weights()
    drift = rdm_drift(rdm_before, rdm_after) if rdm_before is not None and rdm_after is not None else None
    curv, _ = curvature_variance(turn_rewards)
    parts = {
        "dcs": dcs(gda),
        "gvs": gvs(grad_norms, gvi_max, window),
        "mss": mss(drift, curv),
        "cdrs": cdrs(pairs),
        "lrps": lrps(local_means, outcomes),
    }
    return weighted_index(parts, weights), parts
