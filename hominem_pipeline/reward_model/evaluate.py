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
from scipy import stats

from hominem_pipeline.reward_model.dataset import Pair, Sample


def _corr(kind: str, a: Sequence[float], b: Sequence[float]) -> float | None:
    """Pearson or Spearman; None where undefined (fewer than 3 points or a constant side)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 3 or np.ptp(a) < 1e-12 or np.ptp(b) < 1e-12:
        return None
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


def pair_metrics(chosen_scores: np.ndarray, rejected_scores: np.ndarray, pairs: list[Pair]) -> dict[str, Any]:
    if not pairs:
        return {"n": 0}
    longer = np.array([len(p.chosen) for p in pairs], float)
    shorter = np.array([len(p.rejected) for p in pairs], float)
    out: dict[str, Any] = {
        "n": len(pairs),
        "accuracy": pairwise_accuracy(chosen_scores, rejected_scores),
        "baseline_accuracy": 0.5,
        "longer_wins_accuracy": pairwise_accuracy(longer, shorter),
    }
    for source in sorted({p.source for p in pairs}):
        idx = [i for i, p in enumerate(pairs) if p.source == source]
        out[f"accuracy_{source}"] = pairwise_accuracy(chosen_scores[idx], rejected_scores[idx])
        out[f"n_{source}"] = len(idx)
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
