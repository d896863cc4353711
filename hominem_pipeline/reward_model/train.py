"""Training the reward model: ridge heads per dimension and scalar, then a Bradley-Terry scalar head.

Stage 1 (ArmoRM's multi-objective regression): every head is a ridge regression from frozen features of
(prompt, response) to the teacher's standardised label, fitted on the rows that carry that label (so
missing labels cost nothing), its L2 strength chosen by cross-validation grouped by prompt. Stage 2: where
preference pairs exist, the scalar_preference head is refined with a Bradley-Terry loss on
(chosen - rejected), anchored to its regression weights so a handful of pairs cannot throw it off. Both
are closed-form or L-BFGS on a few thousand numbers: seconds on 2 CPU cores, and deterministic, so the
same data gives the same version.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

from hominem_pipeline.manifold import RewardManifold
from hominem_pipeline.reward_model.config import RewardModelConfig
from hominem_pipeline.reward_model.dataset import (
    Pair,
    Sample,
    Split,
    data_hash,
    head_names,
    head_range,
    split_data,
)
from hominem_pipeline.reward_model.embedder import Embedder, pair_features
from hominem_pipeline.reward_model.evaluate import evaluate, length_bias, pair_metrics, summarise
from hominem_pipeline.reward_model.model import HeadParams, RewardModel

log = logging.getLogger(__name__)

Logger = Callable[[str], None]


class TrainingError(ValueError):
    """The data cannot train a reward model (e.g. no labelled samples); the message says what is missing."""


def _ridge_solve(x: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    """argmin ||x w - y||^2 + alpha ||w||^2 for centred x. Dual form when there are fewer rows than
    features (the usual case: tens of samples, 1,536 features)."""
    n, d = x.shape
    if n <= d:
        gram = x @ x.T
        return x.T @ np.linalg.solve(gram + alpha * np.eye(n), y)
    return np.linalg.solve(x.T @ x + alpha * np.eye(d), x.T @ y)


def _group_folds(groups: list[str], k: int) -> list[np.ndarray]:
    """Validation index sets, each a disjoint set of whole prompt groups (deterministic: sorted order)."""
    uniq = sorted(set(groups))
    k = min(k, len(uniq))
    fold_of = {g: i % k for i, g in enumerate(uniq)}
    return [np.array([i for i, g in enumerate(groups) if fold_of[g] == f]) for f in range(k)]


@dataclass
class HeadFit:
    weights: np.ndarray  # in standardised-target units
    target_mean: float
    target_std: float
    alpha: float
    train_mse: float  # standardised units
    cv_mse: float | None  # standardised units, at the chosen alpha
    cv_baseline_mse: float | None  # predicting the fold's training mean
    n: int


def fit_head(x: np.ndarray, y: np.ndarray, groups: list[str], alphas: list[float], folds: int) -> HeadFit:
    mean = float(y.mean())
    std = float(y.std())
    d = x.shape[1]
    if len(y) < 2 or std < 1e-8:
        # Nothing to learn from a constant label: the head predicts the mean.
        return HeadFit(
            np.zeros(d), mean, 1.0 if std < 1e-8 else std, float(max(alphas)), 0.0, None, None, len(y)
        )
    z = (y - mean) / std
    cv: dict[float, float] = {}
    baseline = None
    fold_sets = _group_folds(groups, folds) if len(set(groups)) >= 2 else []
    if fold_sets:
        errs = {a: [] for a in alphas}
        base_errs = []
        for val_idx in fold_sets:
            tr = np.setdiff1d(np.arange(len(y)), val_idx)
            xm = x[tr].mean(axis=0)
            zm = z[tr].mean()
            for a in alphas:
                w = _ridge_solve(x[tr] - xm, z[tr] - zm, a)
                errs[a].append(((x[val_idx] - xm) @ w + zm - z[val_idx]) ** 2)
            base_errs.append((zm - z[val_idx]) ** 2)
        cv = {a: float(np.concatenate(e).mean()) for a, e in errs.items()}
        baseline = float(np.concatenate(base_errs).mean())
        # Ties go to the stronger penalty: with this little data, the simpler head is the honest one.
        alpha = min(alphas, key=lambda a: (round(cv[a], 12), -a))
    else:
        alpha = float(max(alphas))
    w = _ridge_solve(x, z, alpha)
    train_mse = float(((x @ w - z) ** 2).mean())
    return HeadFit(w, mean, std, float(alpha), train_mse, cv.get(alpha), baseline, len(y))


_BETA_PRIOR = 0.05


@dataclass
class PreferenceFit:
    weights: np.ndarray  # raw units
    bias: float
    temperature: float
    loss_start: float
    loss_end: float
    train_accuracy: float
    n_pairs: int


def fit_preference_head(
    diff: np.ndarray, w0: np.ndarray, bias: float, anchor_strength: float, log_fn: Logger
) -> PreferenceFit:
    """Bradley-Terry on feature differences (chosen - rejected): P(chosen wins) = sigmoid(beta * w.diff),
    with beta (the preference temperature) learned in [0.1, 100] under a weak prior and w pulled towards the regression
    head w0 by anchor_strength * ||w - w0||^2."""
    d = diff.shape[1]
    diff64 = diff.astype(np.float64)
    w0 = w0.astype(np.float64)

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, log_beta = theta[:d], theta[d]
        beta = np.exp(log_beta)
        m = diff64 @ w
        t = beta * m
        # On separable pairs the likelihood alone sends beta to infinity; a weak prior around beta = 5
        # keeps P(chosen wins) a usable probability instead of 0 or 1.
        prior = _BETA_PRIOR * (log_beta - np.log(5.0)) ** 2
        loss = float(np.mean(np.logaddexp(0.0, -t)) + anchor_strength * np.sum((w - w0) ** 2) + prior)
        g = -expit(-t) / len(t)  # d loss / d t
        grad_w = beta * (diff64.T @ g) + 2.0 * anchor_strength * (w - w0)
        grad_lb = float(np.sum(g * t)) + 2.0 * _BETA_PRIOR * (log_beta - np.log(5.0))
        return loss, np.concatenate([grad_w, [grad_lb]])

    theta0 = np.concatenate([w0, [np.log(5.0)]])
    start, _ = objective(theta0)
    res = minimize(
        objective,
        theta0,
        jac=True,
        method="L-BFGS-B",
        bounds=[(None, None)] * d + [(np.log(0.1), np.log(100.0))],
        options={"maxiter": 500},
    )
    w, beta = res.x[:d], float(np.exp(res.x[d]))
    acc = float(np.mean(diff64 @ w > 0)) if len(diff64) else 0.0
    log_fn(
        f"preference head: {len(diff)} pairs, Bradley-Terry loss {start:.4f} -> {float(res.fun):.4f}, "
        f"temperature {beta:.2f}, train accuracy {acc:.3f}"
    )
    return PreferenceFit(w, bias, beta, float(start), float(res.fun), acc, len(diff))


@dataclass
class TrainingResult:
    model: RewardModel
    metadata: dict[str, Any]
    split: Split
    log_lines: list[str] = field(default_factory=list)

    @property
    def metrics(self) -> dict[str, Any]:
        return self.metadata["metrics"]

    @property
    def beats_baseline(self) -> bool:
        return bool(self.metrics["validation"]["summary"]["beats_baseline"])


def _pair_features(embedder: Embedder, pairs: list[Pair]) -> tuple[np.ndarray, np.ndarray]:
    p = embedder.embed([x.prompt for x in pairs])
    return pair_features(p, embedder.embed([x.chosen for x in pairs])), pair_features(
        p, embedder.embed([x.rejected for x in pairs])
    )


def _sample_features(embedder: Embedder, samples: list[Sample]) -> np.ndarray:
    return pair_features(
        embedder.embed([s.prompt for s in samples]), embedder.embed([s.response for s in samples])
    )


def train_reward_model(
    samples: list[Sample],
    pairs: list[Pair],
    manifold: RewardManifold,
    embedder: Embedder,
    cfg: RewardModelConfig,
    log_fn: Logger | None = None,
) -> TrainingResult:
    """Split, fit every head, refine the scalar head on pairs, and evaluate on validation."""
    lines: list[str] = []

    def say(msg: str) -> None:
        lines.append(msg)
        log.info(msg)
        if log_fn:
            log_fn(msg)

    if not samples:
        raise TrainingError("no labelled samples: materialise reward_labels (or pass a labels file) first")
    split = split_data(samples, pairs, cfg.split.validation_fraction, cfg.split.salt)
    if not split.train:
        raise TrainingError("every sample landed in validation; add prompts or lower validation_fraction")
    heads = [h for h in head_names(manifold) if any(h in s.targets for s in split.train)]
    for required in ("reward_intensity", "safety_score", *manifold.names):
        if required not in heads:
            raise TrainingError(f"no training sample has a label for {required!r}")
    say(
        f"training on {len(split.train)} samples ({len({s.group for s in split.train})} prompts), "
        f"validating on {len(split.validation)} ({len({s.group for s in split.validation})} prompts); "
        f"pairs: {len(split.train_pairs)} train, {len(split.validation_pairs)} validation"
    )

    x_train = _sample_features(embedder, split.train).astype(np.float64)
    feature_mean = x_train.mean(axis=0)
    xc = x_train - feature_mean
    fits: dict[str, HeadFit] = {}
    for h in heads:
        idx = np.array([i for i, s in enumerate(split.train) if h in s.targets])
        y = np.array([split.train[i].targets[h] for i in idx], float)
        groups = [split.train[i].group for i in idx]
        xh = xc[idx]
        # Re-centre on the rows this head sees, and fold the offset into its mean, so a head trained on a
        # subset still predicts centred on its own data.
        offset = xh.mean(axis=0)
        fit = fit_head(xh - offset, y, groups, cfg.regression.alphas, cfg.regression.cv_folds)
        fit.target_mean -= float(offset @ fit.weights) * fit.target_std
        fits[h] = fit
        cv = "n/a" if fit.cv_mse is None else f"{fit.cv_mse:.4f} (baseline {fit.cv_baseline_mse:.4f})"
        say(
            f"head {h}: n={fit.n} alpha={fit.alpha:g} train loss (mse, std units) {fit.train_mse:.4f}, cv loss {cv}"
        )

    params = HeadParams(
        heads=heads,
        feature_mean=feature_mean,
        weights=np.stack([fits[h].weights for h in heads]),
        target_mean=np.array([fits[h].target_mean for h in heads]),
        target_std=np.array([fits[h].target_std for h in heads]),
    )

    preference: dict[str, Any] = {"source": "regression", "pairs_train": len(split.train_pairs)}
    if split.train_pairs and "scalar_preference" in fits:
        cf, rf = _pair_features(embedder, split.train_pairs)
        sp = fits["scalar_preference"]
        w0 = sp.weights * sp.target_std
        pf = fit_preference_head(cf - rf, w0, sp.target_mean, cfg.preferences.anchor_strength, say)
        params.preference_weights = pf.weights
        params.preference_bias = pf.bias
        preference = {
            "source": "bradley_terry",
            "pairs_train": pf.n_pairs,
            "temperature": pf.temperature,
            "anchor_strength": cfg.preferences.anchor_strength,
            "loss_start": pf.loss_start,
            "loss_end": pf.loss_end,
            "train_accuracy": pf.train_accuracy,
        }

    model = RewardModel(manifold, params, embedder.spec, embedder=embedder, embedding_dim=embedder.dim)

    # Evaluation, always beside the trivial baseline (each head's training mean).
    train_means = {h: float(np.mean([s.targets[h] for s in split.train if h in s.targets])) for h in heads}
    validation: dict[str, Any] = {"heads": {}, "summary": summarise({})}
    if split.validation:
        val_scores = model.clipped_scores(_sample_features(embedder, split.validation))
        validation["heads"] = evaluate(val_scores, split.validation, heads, train_means)
        validation["summary"] = summarise(validation["heads"])
    pairs_eval: dict[str, Any] = {"n": 0}
    if split.validation_pairs:
        cf, rf = _pair_features(embedder, split.validation_pairs)
        pairs_eval = pair_metrics(
            model.clipped_scores(cf)["scalar_preference"]
            if "scalar_preference" in heads
            else _scalar(model, cf),
            model.clipped_scores(rf)["scalar_preference"]
            if "scalar_preference" in heads
            else _scalar(model, rf),
            split.validation_pairs,
        )
    all_samples = split.train + split.validation
    all_scores = model.clipped_scores(_sample_features(embedder, all_samples))
    metrics = {
        "validation": validation,
        "pairs": pairs_eval,
        "length_bias": length_bias(all_scores, all_samples, heads),
        "training": {
            h: {
                "alpha": f.alpha,
                "train_mse": f.train_mse,
                "cv_mse": f.cv_mse,
                "cv_baseline_mse": f.cv_baseline_mse,
            }
            for h, f in fits.items()
        },
    }
    s = validation["summary"]
    if s["mae_mean"] is None:
        say("validation: no held-out samples, so the model cannot be shown to beat the baseline")
    else:
        say(
            f"validation: mean MAE {s['mae_mean']:.4f} vs baseline {s['baseline_mae_mean']:.4f} "
            f"({'beats' if s['beats_baseline'] else 'does NOT beat'} the baseline)"
        )
    if pairs_eval.get("n"):
        say(
            f"validation pairs: accuracy {pairs_eval['accuracy']:.3f} on {pairs_eval['n']} "
            f"(constant baseline 0.5, longer-wins {pairs_eval['longer_wins_accuracy']:.3f})"
        )

    metadata = {
        "dimensions": list(manifold.names),
        "heads": heads,
        "manifold_schema_hash": manifold.schema_hash,
        "reward_intensity": {
            "range": list(manifold.reward_intensity.range),
            "semantics": manifold.reward_intensity.description,
        },
        "safety_score": {
            "range": list(manifold.safety_score.range),
            "semantics": manifold.safety_score.description,
        },
        "scalar_preference": {
            "range": list(manifold.scalar_preference.range),
            "semantics": manifold.scalar_preference.description,
            "source": preference["source"],
        },
        "embedder": {"spec": embedder.spec, "dim": embedder.dim},
        "features": ["prompt", "response", "prompt*response", "|prompt-response|"],
        "calibration": {
            h: {
                "method": "standardise (target_mean, target_std), ridge, clip to range",
                "target_mean": fits[h].target_mean,
                "target_std": fits[h].target_std,
                "train_label_mean": train_means[h],
                "alpha": fits[h].alpha,
                "clip_range": list(head_range(manifold, h)),
            }
            for h in heads
        },
        "preference": preference,
        "training_data": {
            "hash": data_hash(samples, pairs),
            "samples": len(samples),
            "samples_train": len(split.train),
            "samples_validation": len(split.validation),
            "prompts_train": len({x.group for x in split.train}),
            "prompts_validation": len({x.group for x in split.validation}),
            "pairs_imported": sum(1 for p in pairs if p.source == "import"),
            "pairs_teacher": sum(1 for p in pairs if p.source == "teacher"),
            "validation_fraction": cfg.split.validation_fraction,
            "split_salt": cfg.split.salt,
        },
        "config": cfg.model_dump(mode="json"),
        "metrics": metrics,
    }
    model.metadata = metadata
    return TrainingResult(model=model, metadata=metadata, split=split, log_lines=lines)


def _scalar(model: RewardModel, x: np.ndarray) -> np.ndarray:
    """scalar_preference when the manifold has no scalar head: the manifold's weighted mean of dimensions."""
    scores = model.clipped_scores(x)
    return np.array(
        [
            model.manifold.scalar_preference_of({d: float(scores[d][i]) for d in model.manifold.names})
            for i in range(len(x))
        ]
    )
