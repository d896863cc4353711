"""How good a reward model is, always next to the trivial baseline (predict the training mean).

Per head on validation: MAE, Pearson and Spearman against the teacher; pairwise accuracy on validation
pairs (with the constant baseline and "the longer response wins" beside it); and a length-bias check,
the correlation of every score with response length, next to the teacher's own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from hominem_pipeline.reward_model.dataset import Pair, Sample


def _corr(kind: str, a: Sequence[float], b: Sequence[float]) -> float | None:
    """Pearson or Spearman; None where undefined (fewer than 3 points or a constant side)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 3 or np.ptp(a) < 1e-12 or np.ptp(b) < 1e-12:
        return None
    from scipy import stats  # here, not at import: the Dagster definitions import this module

    r = stats.pearsonr(a, b)[0] if kind == "pearson" else stats.spearmanr(a, b)[0]
    return None if not math.isfinite(r) else float(r)


def head_metrics(pred: np.ndarray, truth: np.ndarray, train_mean: float) -> dict[str, Any]:
    return {
        "n": int(len(truth)),
        "mae": float(np.mean(np.abs(pred - truth))),
        "baseline_mae": float(np.mean(np.abs(train_mean - truth))),
        "pearson": _corr("pearson", pred, truth),
        "spearman": _corr("spearman", pred, truth),
    }


def pairwise_accuracy(chosen: np.ndarray, rejected: np.ndarray) -> float:
    """Share of pairs scored the right way round; a tie counts half (so a constant scorer gets 0.5)."""
    wins = (chosen > rejected).astype(float) + 0.5 * (chosen == rejected).astype(float)
    return float(wins.mean())


def evaluate(
    scores: dict[str, np.ndarray],
    samples: list[Sample],
    heads: list[str],
    train_means: dict[str, float],
) -> dict[str, Any]:
    """Per-head regression metrics on `samples` (scores[h][i] is the model's value for samples[i])."""
    per_head: dict[str, Any] = {}
    for h in heads:
        idx = [i for i, s in enumerate(samples) if h in s.targets]
        if not idx:
            continue
        truth = np.array([samples[i].targets[h] for i in idx])
        per_head[h] = head_metrics(scores[h][idx], truth, train_means[h])
    return per_head


def summarise(per_head: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers and the verdict the blocking asset check uses."""
    if not per_head:
        return {"mae_mean": None, "baseline_mae_mean": None, "beats_baseline": False, "heads_evaluated": 0}
    mae = float(np.mean([m["mae"] for m in per_head.values()]))
    base = float(np.mean([m["baseline_mae"] for m in per_head.values()]))
    better = sorted(h for h, m in per_head.items() if m["mae"] < m["baseline_mae"])
    return {
        "mae_mean": mae,
        "baseline_mae_mean": base,
        # Mean MAE over every head with validation labels, strictly below the baseline's.
        "beats_baseline": bool(mae < base),
        "heads_evaluated": len(per_head),
        "heads_better_than_baseline": better,
    }


def wilson_interval(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a proportion (ties counted as half a success)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def expected_calibration_error(prob_chosen: np.ndarray, bins: int = 10) -> float | None:
    """ECE of P(chosen wins) over both orientations of every pair (p with outcome 1, 1 - p with 0), in
    equal-width bins: the mean gap between stated probability and observed frequency."""
    if len(prob_chosen) == 0:
        return None
    p = np.concatenate([prob_chosen, 1.0 - prob_chosen])
    y = np.concatenate([np.ones(len(prob_chosen)), np.zeros(len(prob_chosen))])
    idx = np.minimum((p * bins).astype(int), bins - 1)
    ece = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            ece += m.mean() * abs(p[m].mean() - y[m].mean())
    return float(ece)


def _accuracy_block(chosen: np.ndarray, rejected: np.ndarray, pairs: list[Pair]) -> dict[str, Any]:
    n = len(pairs)
    acc = pairwise_accuracy(chosen, rejected)
    lo, hi = wilson_interval(acc * n, n)
    lc = np.array([len(p.chosen) for p in pairs], float)
    lr = np.array([len(p.rejected) for p in pairs], float)
    longer = np.where(lc >= lr, chosen, rejected) > np.where(lc >= lr, rejected, chosen)
    return {
        "n": n,
        "accuracy": acc,
        "accuracy_ci95": [lo, hi],
        "longer_wins_accuracy": pairwise_accuracy(lc, lr),
        # Length bias: how often the model prefers the longer answer, next to how often people did.
        "model_prefers_longer": float(longer[lc != lr].mean()) if (lc != lr).any() else None,
        "human_prefers_longer": float((lc > lr)[lc != lr].mean()) if (lc != lr).any() else None,
    }


def pair_metrics(
    chosen_scores: np.ndarray,
    rejected_scores: np.ndarray,
    pairs: list[Pair],
    prob_chosen: np.ndarray | None = None,
) -> dict[str, Any]:
    """Pairwise accuracy (95% interval) beside the constant baseline (0.5) and "the longer answer wins",
    overall and per source, with expected calibration error where probabilities are given."""
    if not pairs:
        return {"n": 0}
    out: dict[str, Any] = {**_accuracy_block(chosen_scores, rejected_scores, pairs), "baseline_accuracy": 0.5}
    if prob_chosen is not None:
        out["ece"] = expected_calibration_error(prob_chosen)
    by_source: dict[str, Any] = {}
    for source in sorted({p.source for p in pairs}):
        idx = [i for i, p in enumerate(pairs) if p.source == source]
        block = _accuracy_block(chosen_scores[idx], rejected_scores[idx], [pairs[i] for i in idx])
        if prob_chosen is not None:
            block["ece"] = expected_calibration_error(prob_chosen[idx])
        by_source[source] = block
    out["by_source"] = by_source
    return out


def length_bias(scores: dict[str, np.ndarray], samples: list[Sample], heads: list[str]) -> dict[str, Any]:
    """Pearson correlation of each score with response length (characters), the model's and the
    teacher's on the same samples: a model far more length-driven than its teacher learned a shortcut."""
    lengths = np.array([len(s.response) for s in samples], float)
    out: dict[str, Any] = {}
    for h in heads:
        if h not in scores:
            continue
        idx = [i for i, s in enumerate(samples) if h in s.targets]
        teacher = np.array([samples[i].targets[h] for i in idx])
        out[h] = {
            "model": _corr("pearson", scores[h], lengths),
            "teacher": _corr("pearson", teacher, lengths[idx]) if idx else None,
        }
    return out


def flat_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Nested metrics as flat `a/b/c` -> number (what the Dagster UI plots); None and text are left out."""
    out: dict[str, float] = {}
    for k, v in metrics.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat_metrics(v, key + "/"))
        elif isinstance(v, bool):
            out[key] = float(v)
        elif isinstance(v, (int, float)) and math.isfinite(v):
            out[key] = float(v)
    return out


def describe_verdict(verdict: dict[str, Any]) -> str:
    """One line for people: what the acceptance verdict was judged on and the numbers it compared."""
    head = f"{'passes' if verdict['passed'] else 'does NOT pass'} on {verdict['basis']} (n={verdict['n']})"
    if "accuracy" in verdict:
        lo, hi = verdict["accuracy_ci95"]
        return (
            f"{head}: pairwise accuracy {verdict['accuracy']:.3f} (95% CI {lo:.3f}-{hi:.3f}) vs "
            f"longer-wins {verdict['longer_wins_accuracy']:.3f} and the training-mean baseline 0.500"
        )
    if verdict.get("mae") is None:
        return f"{head}: no held-out labels, so nothing shows the model beats the baseline"
    return f"{head}: MAE {verdict['mae']:.4f} vs training-mean baseline {verdict['baseline_mae']:.4f}"
