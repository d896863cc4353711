"""Training the reward model: per-dimension heads, a prompt-conditioned gate, calibration (ArmoRM-style).

1. Regression (multi-objective): every head (each dimension, reward_intensity, safety_score) is a ridge
   regression (scikit-learn's RidgeCV, L2 strength chosen by GroupKFold over prompts) from frozen
   features of (prompt, response) to the teacher's standardised label, on the rows that carry it.
2. Preference, per dimension: every pair says which dimension(s) it is evidence for (imported: the
   importer's choice or the source map; teacher pairs: the dimensions the teacher's labels separate; else
   inferred from the regression heads). Each dimension with pairs gets a Bradley-Terry fit on
   (chosen - rejected) features, anchored to its regression weights. With `length_debias`, the fit sees
   the log-length difference as an extra input whose weight is then dropped, so the head cannot learn
   "longer wins" (or "shorter wins") as a shortcut.
3. Gate: a multinomial logistic regression from the prompt's embedding to the dimension its pairs speak
   to; `scalar_preference` is the gate-weighted sum of dimension scores. With evidence for fewer than
   two dimensions, the gate is the manifold's fixed scalar weights.
4. Calibration: the temperature of `preference_probability` is fitted on held-out pairs; the expected
   calibration error is reported cross-fitted (fit on one half, measured on the other).
All of it is closed-form or L-BFGS over a few thousand numbers: seconds on 2 cores once texts are
embedded, and deterministic, so the same data gives the same version.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize, minimize_scalar
from scipy.special import expit

from hominem_pipeline.embedding import Embedder
from hominem_pipeline.manifold import RewardManifold
from hominem_pipeline.reward_model.config import RewardModelConfig
from hominem_pipeline.reward_model.dataset import (
    Pair,
    Sample,
    Split,
    data_hash,
    head_range,
    split_data,
)
from hominem_pipeline.reward_model.evaluate import (
    evaluate,
    length_bias,
    pair_metrics,
    summarise,
)
from hominem_pipeline.reward_model.model import FEATURES, GATE_OFF, HeadParams, RewardModel, pair_features

log = logging.getLogger(__name__)

Logger = Callable[[str], None]


class TrainingError(ValueError):
    """The data cannot train a reward model (e.g. no labels and no pairs); the message says what is missing."""


def regression_heads(manifold: RewardManifold) -> list[str]:
    """The heads a model has: one per dimension, then reward_intensity and safety_score.
    (scalar_preference is no head of its own: it is the gate-weighted sum of the dimensions.)"""
    return [*manifold.names, "reward_intensity", "safety_score"]


# -- stage 1: ridge regression heads ------------------------------------------------------------
@dataclass
class HeadFit:
    weights: np.ndarray  # in standardised-target units
    target_mean: float  # includes the intercept, so value = target_mean + target_std * (x @ weights)
    target_std: float
    alpha: float
    train_mse: float  # standardised units
    cv_mse: float | None  # standardised units, at the chosen alpha, out of fold
    cv_baseline_mse: float | None  # predicting the fold's training mean
    n: int
    oof: np.ndarray | None = None  # out-of-fold predictions in label units (for the verdict)
    oof_baseline: np.ndarray | None = None


def fit_head(x: np.ndarray, y: np.ndarray, groups: list[str], alphas: list[float], folds: int) -> HeadFit:
    """RidgeCV with GroupKFold over prompt groups; ties go to the stronger penalty (with this little data,
    the simpler head is the honest one)."""
    from sklearn.linear_model import Ridge, RidgeCV
    from sklearn.model_selection import GroupKFold

    mean, std, d = float(y.mean()), float(y.std()), x.shape[1]
    if len(y) < 2 or std < 1e-8:
        # Nothing to learn from a constant label: the head predicts the mean.
        return HeadFit(
            np.zeros(d), mean, 1.0 if std < 1e-8 else std, float(max(alphas)), 0.0, None, None, len(y)
        )
    z = (y - mean) / std
    k = min(folds, len(set(groups)))
    strongest_first = sorted(alphas, reverse=True)
    if k >= 2:
        splits = list(GroupKFold(n_splits=k).split(x, z, groups))
        alpha = float(
            RidgeCV(alphas=strongest_first, cv=splits, scoring="neg_mean_squared_error").fit(x, z).alpha_
        )
        oof = np.zeros(len(z))
        base = np.zeros(len(z))
        for tr, va in splits:
            oof[va] = Ridge(alpha=alpha).fit(x[tr], z[tr]).predict(x[va])
            base[va] = z[tr].mean()
        cv_mse, cv_base = float(((oof - z) ** 2).mean()), float(((base - z) ** 2).mean())
    else:
        alpha, oof, base, cv_mse, cv_base = float(max(alphas)), None, None, None, None
    ridge = Ridge(alpha=alpha).fit(x, z)
    train_mse = float(((ridge.predict(x) - z) ** 2).mean())
    return HeadFit(
        ridge.coef_.astype(np.float64),
        mean + std * float(ridge.intercept_),
        std,
        alpha,
        train_mse,
        cv_mse,
        cv_base,
        len(y),
        None if oof is None else mean + std * oof,
        None if base is None else mean + std * base,
    )


# -- stage 2: Bradley-Terry per dimension ----------------------------------------------------------
_BETA_PRIOR = 0.05


@dataclass
class PreferenceFit:
    weights: np.ndarray  # raw units (same units as w0)
    temperature: float
    loss_start: float
    loss_end: float
    train_accuracy: float
    n_pairs: int


def fit_preference_head(
    diff: np.ndarray,
    w0: np.ndarray,
    anchor_strength: float,
    sample_weight: np.ndarray | None = None,
    real: int | None = None,
) -> PreferenceFit:
    """Bradley-Terry on feature differences (chosen - rejected): P(chosen wins) = sigmoid(beta * w.diff),
    with beta learned in [0.1, 100] under a weak prior and w pulled towards w0 by
    anchor_strength * ||w - w0||^2. `sample_weight` weighs each pair's loss (default: all alike). The
    first `real` rows (default: all) are the data's own pairs, which `n_pairs` and `train_accuracy`
    report; rows after them are extra evidence (the refusal pairs)."""
    d = diff.shape[1]
    diff64 = diff.astype(np.float64)
    w0 = w0.astype(np.float64)
    sw = np.ones(len(diff64)) if sample_weight is None else np.asarray(sample_weight, np.float64)
    sw = sw / sw.sum() if len(sw) else sw

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, log_beta = theta[:d], theta[d]
        beta = np.exp(log_beta)
        t = beta * (diff64 @ w)
        # On separable pairs the likelihood alone sends beta to infinity; a weak prior around beta = 5
        # keeps P(chosen wins) a usable probability instead of 0 or 1.
        prior = _BETA_PRIOR * (log_beta - np.log(5.0)) ** 2
        loss = float(np.sum(sw * np.logaddexp(0.0, -t)) + anchor_strength * np.sum((w - w0) ** 2) + prior)
        g = -expit(-t) * sw  # d loss / d t
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
    own = diff64[: len(diff64) if real is None else real]
    acc = float(np.mean(own @ w > 0)) if len(own) else 0.0
    return PreferenceFit(w, beta, float(start), float(res.fun), acc, len(own))


def log_length(texts: list[str]) -> np.ndarray:
    return np.log1p(np.array([len(t) for t in texts], dtype=np.float64))


def resolve_dimensions(
    pairs: list[Pair],
    samples: list[Sample],
    dims: list[str],
    margin: float,
    inferred: np.ndarray,
) -> tuple[list[tuple[str, ...]], Counter[str]]:
    """The dimensions each pair is evidence for, and how each was decided. A pair's own dimensions win;
    a teacher pair speaks to the dimensions whose teacher labels separate chosen from rejected by more
    than `margin`; anything else to the dimension on which the regression heads (the teacher,
    distilled) separate it most in the chosen answer's favour (`inferred[i]`: chosen - rejected per
    dimension), or to every dimension if no head prefers the chosen answer."""
    labels = {(s.prompt, s.response): s.targets for s in samples}
    out: list[tuple[str, ...]] = []
    how: Counter[str] = Counter()
    for i, p in enumerate(pairs):
        if p.dimensions:
            out.append(tuple(d for d in p.dimensions if d in dims))
            how["given"] += 1
            continue
        a, b = labels.get((p.prompt, p.chosen)), labels.get((p.prompt, p.rejected))
        if a is not None and b is not None:
            found = tuple(d for d in dims if d in a and d in b and a[d] - b[d] > margin)
            if found:
                out.append(found)
                how["teacher_labels"] += 1
                continue
        best = int(np.argmax(inferred[i]))
        if inferred[i, best] > 0:
            out.append((dims[best],))
            how["inferred"] += 1
        else:
            # Nothing says which dimension: the pair is evidence of overall preference, so every
            # dimension learns from it (and the gate sees it as 1/N of each).
            out.append(tuple(dims))
            how["overall"] += 1
    return out, how


def refusal_differences(
    dimension: str,
    pairs: list[Pair],
    prompt_emb: np.ndarray,
    chosen_emb: np.ndarray,
    cfg: RewardModelConfig,
    embedder: Embedder,
) -> np.ndarray | None:
    """Feature differences (answer - refusal) for `dimension`'s imported (human) pairs: the chosen answer
    of each beats `per_answer` of the configured refusals (a stable pick by the answer's hash), or None when
    there are none (config.RefusalConfig says why they exist). The rejected answer takes no part (in a
    helpfulness set it may itself be a refusal), and neither do the teacher's pairs: the teacher rates
    its own candidates, refusals among them, so its labels already say what a refusal is worth."""
    rc = cfg.refusals
    keep = [i for i, p in enumerate(pairs) if p.imported]
    if dimension not in rc.dimensions or not rc.responses or rc.per_answer == 0 or rc.weight == 0 or not keep:
        return None
    pairs, prompt_emb, chosen_emb = [pairs[i] for i in keep], prompt_emb[keep], chosen_emb[keep]
    refusals = embedder.embed(rc.responses).astype(np.float64)
    k = min(rc.per_answer, len(rc.responses))
    prompt_rows, answers, picked = [], [], []
    for i, p in enumerate(pairs):
        start = int(hashlib.sha256(p.chosen.encode()).hexdigest(), 16) % len(rc.responses)
        for r in range(k):
            prompt_rows.append(i)
            answers.append(chosen_emb[i])
            picked.append((start + r) % len(rc.responses))
    prompts = prompt_emb[prompt_rows]
    return (pair_features(prompts, np.array(answers)) - pair_features(prompts, refusals[picked])).astype(
        np.float64
    )


# -- stage 3: the gate ------------------------------------------------------------------------------
@dataclass
class GateFit:
    weights: np.ndarray  # (N, E)
    bias: np.ndarray  # (N,)
    learned: bool
    dimensions: list[str]  # the dimensions the gate can choose between (others get no weight)
    train_accuracy: float | None


def prior_gate(manifold: RewardManifold, embedding_dim: int) -> GateFit:
    """The manifold's fixed scalar weights as a gate that ignores the prompt."""
    names = list(manifold.names)
    w = np.array([manifold.scalar_preference.weights.get(n, 1.0) for n in names], dtype=np.float64)
    bias = np.where(w > 0, np.log(np.maximum(w, 1e-300)), GATE_OFF)
    return GateFit(
        np.zeros((len(names), embedding_dim)),
        bias,
        False,
        [n for n, x in zip(names, w, strict=True) if x > 0],
        None,
    )


def fit_gate(
    prompt_emb: np.ndarray,
    pair_dims: list[tuple[str, ...]],
    manifold: RewardManifold,
    inverse_l2: float,
    min_pairs: int,
) -> GateFit:
    """Multinomial logistic regression: prompt embedding -> the dimension its pair is evidence for (a
    pair speaking to k dimensions counts 1/k towards each). Only dimensions with `min_pairs` pairs take
    part; with fewer than two such dimensions the prompt cannot choose, so the prior gate is used."""
    from sklearn.linear_model import LogisticRegression

    names = list(manifold.names)
    counts = Counter(d for ds in pair_dims for d in ds)
    classes = [d for d in names if counts[d] >= min_pairs]
    if len(classes) < 2:
        return prior_gate(manifold, prompt_emb.shape[1])
    rows, ys, ws = [], [], []
    for i, ds in enumerate(pair_dims):
        use = [d for d in ds if d in classes]
        for d in use:
            rows.append(i)
            ys.append(d)
            ws.append(1.0 / len(use))
    x = prompt_emb[rows].astype(np.float64)
    clf = LogisticRegression(C=inverse_l2, max_iter=2000).fit(x, ys, sample_weight=np.array(ws))
    weights = np.zeros((len(names), prompt_emb.shape[1]))
    bias = np.full(len(names), GATE_OFF)
    labels = [str(c) for c in clf.classes_]
    coef, intercept = clf.coef_, clf.intercept_
    if len(labels) == 2:  # scikit-learn stores one row for two classes: logit of the second
        coef = np.vstack([-coef[0] / 2, coef[0] / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    for j, d in enumerate(labels):
        weights[names.index(d)] = coef[j]
        bias[names.index(d)] = intercept[j]
    acc = float(np.mean(clf.predict(x) == np.array(ys)))
    return GateFit(weights, bias, True, labels, acc)


# -- stage 4: calibration -----------------------------------------------------------------------------
def fit_temperature(margins: np.ndarray) -> float:
    """The T in [1e-3, 1e3] maximising the likelihood of sigmoid(T * margin) (margin = chosen - rejected)."""
    if len(margins) == 0 or not np.any(margins):
        return 1.0
    res = minimize_scalar(
        lambda lt: float(np.mean(np.logaddexp(0.0, -np.exp(lt) * margins))),
        bounds=(np.log(1e-3), np.log(1e3)),
        method="bounded",
    )
    return float(np.exp(res.x))


def _half(pair: Pair) -> int:
    return int(hashlib.sha256(pair.prompt.encode()).hexdigest(), 16) % 2


def calibrate(margins: np.ndarray, pairs: list[Pair]) -> dict[str, Any]:
    """Temperature on all held-out pairs; ECE cross-fitted over two prompt-grouped halves, so the error
    reported is measured on pairs the temperature was not fitted on."""
    halves = np.array([_half(p) for p in pairs])
    probs = np.zeros(len(pairs))
    for h in (0, 1):
        t = fit_temperature(margins[halves != h])
        probs[halves == h] = expit(t * margins[halves == h])
    return {"temperature": fit_temperature(margins), "probabilities": probs}


# -- training ----------------------------------------------------------------------------------
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
    def verdict(self) -> dict[str, Any]:
        return self.metrics["verdict"]

    @property
    def beats_baseline(self) -> bool:
        return bool(self.verdict["passed"])


def _texts(embedder: Embedder, prompts: list[str], responses: list[str]) -> tuple[np.ndarray, np.ndarray]:
    return embedder.embed(prompts).astype(np.float64), embedder.embed(responses).astype(np.float64)


def verdict(
    pairs_eval: dict[str, Any], oof_mae: float | None, oof_base: float | None, n_oof: int, min_pairs: int
) -> dict[str, Any]:
    """What decides acceptance (and the blocking check). With at least `min_pairs` held-out imported
    pairs: pairwise accuracy whose 95% interval lies above 0.5 (the training-mean baseline: a constant
    scorer ties every pair) and above "the longer answer wins". Otherwise: the teacher labels' mean
    absolute error, out of fold over every training prompt plus validation, below the training-mean's."""
    imported = pairs_eval.get("imported", {"n": 0})
    if imported.get("n", 0) >= min_pairs:
        lo = imported["accuracy_ci95"][0]
        passed = lo > 0.5 and imported["accuracy"] > imported["longer_wins_accuracy"]
        return {
            "basis": "held-out imported pairs",
            "passed": bool(passed),
            "n": imported["n"],
            "accuracy": imported["accuracy"],
            "accuracy_ci95": imported["accuracy_ci95"],
            "longer_wins_accuracy": imported["longer_wins_accuracy"],
            "baseline_accuracy": 0.5,
            "mae": oof_mae,
            "baseline_mae": oof_base,
        }
    return {
        "basis": "teacher labels, out of fold",
        "passed": bool(oof_mae is not None and oof_base is not None and oof_mae < oof_base),
        "n": n_oof,
        "mae": oof_mae,
        "baseline_mae": oof_base,
        "imported_pairs_held_out": imported.get("n", 0),
    }


def train_reward_model(
    samples: list[Sample],
    pairs: list[Pair],
    manifold: RewardManifold,
    embedder: Embedder,
    cfg: RewardModelConfig,
    log_fn: Logger | None = None,
) -> TrainingResult:
    """Split, fit every head, refine dimensions on pairs, fit the gate and the temperature, evaluate."""
    lines: list[str] = []

    def say(msg: str) -> None:
        lines.append(msg)
        log.info(msg)
        if log_fn:
            log_fn(msg)

    if not samples and not pairs:
        raise TrainingError("no labelled samples and no preference pairs: materialise reward_labels first")
    split = split_data(samples, pairs, cfg.split.validation_fraction, cfg.split.salt)
    if samples and not split.train:
        raise TrainingError("every sample landed in validation; add prompts or lower validation_fraction")
    dims = list(manifold.names)
    heads = regression_heads(manifold)
    labelled = {h for h in heads if any(h in s.targets for s in split.train)}
    if samples:
        for required in heads:
            if required not in labelled:
                raise TrainingError(f"no training sample has a label for {required!r}")
    say(
        f"training on {len(split.train)} samples ({len({s.group for s in split.train})} prompts), "
        f"validating on {len(split.validation)} ({len({s.group for s in split.validation})} prompts); "
        f"pairs: {len(split.train_pairs)} train, {len(split.validation_pairs)} validation"
    )
    dim_e = embedder.dim

    # Stage 1: regression heads on the teacher's labels.
    ep, er = _texts(embedder, [s.prompt for s in split.train], [s.response for s in split.train])
    x_train = pair_features(ep, er).astype(np.float64) if samples else np.zeros((0, 4 * dim_e))
    tp = split.train_pairs
    cp_e, cc_e = _texts(embedder, [p.prompt for p in tp], [p.chosen for p in tp])
    cr_e = embedder.embed([p.rejected for p in tp]).astype(np.float64)
    xc = pair_features(cp_e, cc_e).astype(np.float64) if tp else np.zeros((0, 4 * dim_e))
    xr = pair_features(cp_e, cr_e).astype(np.float64) if tp else np.zeros((0, 4 * dim_e))
    # Centre on everything the heads will see, so a pairs-only model has a sensible origin too.
    feature_mean = np.concatenate([x_train, xc, xr]).mean(axis=0)
    fits: dict[str, HeadFit] = {}
    for h in heads:
        idx = np.array([i for i, s in enumerate(split.train) if h in s.targets], dtype=int)
        if len(idx) == 0:
            lo, hi = head_range(manifold, h)
            fits[h] = HeadFit(np.zeros(4 * dim_e), (lo + hi) / 2, (hi - lo) / 2, 0.0, 0.0, None, None, 0)
            say(f"head {h}: no labels; predicts the middle of its range unless pairs teach it")
            continue
        y = np.array([split.train[i].targets[h] for i in idx], float)
        fit = fit_head(
            x_train[idx] - feature_mean,
            y,
            [split.train[i].group for i in idx],
            cfg.regression.alphas,
            cfg.regression.cv_folds,
        )
        fits[h] = fit
        cv = "n/a" if fit.cv_mse is None else f"{fit.cv_mse:.4f} (baseline {fit.cv_baseline_mse:.4f})"
        say(
            f"head {h}: n={fit.n} alpha={fit.alpha:g} train loss (mse, std units) {fit.train_mse:.4f}, cv loss {cv}"
        )

    # Stage 2: which dimensions each pair speaks to, then Bradley-Terry per dimension.
    dcx, dcr = xc - feature_mean, xr - feature_mean
    reg_w = np.stack([fits[d].weights * fits[d].target_std for d in dims])  # raw units, (N, D)
    inferred = (dcx - dcr) @ reg_w.T if tp else np.zeros((0, len(dims)))
    pair_dims, how = resolve_dimensions(
        tp, split.train, dims, cfg.preferences.teacher_pair_min_margin, inferred
    )
    if tp:
        say("pair dimensions: " + ", ".join(f"{k} {v}" for k, v in sorted(how.items())))
    length_diff = (log_length([p.chosen for p in tp]) - log_length([p.rejected for p in tp])) if tp else None
    preference: dict[str, Any] = {}
    for j, d in enumerate(dims):
        idx = np.array([i for i, ds in enumerate(pair_dims) if d in ds], dtype=int)
        if len(idx) == 0:
            continue
        diff = dcx[idx] - dcr[idx]
        w0 = reg_w[j]
        lengths = length_diff[idx]
        refusal = refusal_differences(d, [tp[i] for i in idx], cp_e[idx], cc_e[idx], cfg, embedder)
        n_real = len(idx)
        weight = np.ones(n_real)
        if refusal is not None:
            diff = np.concatenate([diff, refusal])
            # A refusal is short: zero length difference, so the content, not the length term, learns it.
            lengths = np.concatenate([lengths, np.zeros(len(refusal))])
            weight = np.concatenate(
                [weight, np.full(len(refusal), cfg.refusals.weight * n_real / len(refusal))]
            )
        if cfg.preferences.length_debias:
            diff = np.concatenate([diff, lengths[:, None]], axis=1)
            w0 = np.concatenate([w0, [0.0]])
        pf = fit_preference_head(diff, w0, cfg.preferences.anchor_strength, weight, real=n_real)
        length_weight = None
        if cfg.preferences.length_debias:
            length_weight = float(pf.weights[-1] * pf.temperature)
            pf.weights = pf.weights[:-1]
        fits[d].weights = pf.weights / fits[d].target_std
        preference[d] = {
            "pairs": pf.n_pairs,
            "temperature": pf.temperature,
            "loss_start": pf.loss_start,
            "loss_end": pf.loss_end,
            "train_accuracy": pf.train_accuracy,
            # Answer-beats-refusal pairs that taught this head beside its real pairs (config [refusals]).
            "refusal_pairs": 0 if refusal is None else len(refusal),
            # Logit per unit of log-length difference the fit attributed to length and then dropped.
            "length_logit_dropped": length_weight,
        }
        say(
            f"dimension {d}: Bradley-Terry on {pf.n_pairs} pairs, loss {pf.loss_start:.4f} -> "
            f"{pf.loss_end:.4f}, train accuracy {pf.train_accuracy:.3f}"
            + (f", plus {len(refusal)} answer-beats-refusal pairs" if refusal is not None else "")
            + (f", length logit dropped {length_weight:+.3f}" if length_weight is not None else "")
        )

    # Stage 3: the gate.
    gate = fit_gate(cp_e, pair_dims, manifold, cfg.gate.inverse_l2, cfg.gate.min_pairs) if tp else None
    gate = gate or prior_gate(manifold, dim_e)
    say(
        f"gate: {'learned from the prompts of ' + str(len(tp)) + ' pairs' if gate.learned else 'fixed manifold weights'}"
        f" over {gate.dimensions}"
    )
    params = HeadParams(
        heads=heads,
        feature_mean=feature_mean,
        weights=np.stack([fits[h].weights for h in heads]),
        target_mean=np.array([fits[h].target_mean for h in heads]),
        target_std=np.array([fits[h].target_std for h in heads]),
        gate_weights=gate.weights,
        gate_bias=gate.bias,
    )
    model = RewardModel(manifold, params, embedder.spec, embedder=embedder, embedding_dim=dim_e)

    # Stage 4: evaluation and calibration on held-out data.
    judged = [h for h in [*heads, "scalar_preference"] if any(h in s.targets for s in split.train)]
    train_means = {h: float(np.mean([s.targets[h] for s in split.train if h in s.targets])) for h in judged}
    validation: dict[str, Any] = {"heads": {}, "summary": summarise({})}
    if split.validation:
        vs = model.score_items([(s.prompt, s.response) for s in split.validation])
        values = {**model.clipped(vs)}
        validation["heads"] = evaluate(values, split.validation, judged, train_means)
        validation["summary"] = summarise(validation["heads"])
    vp = split.validation_pairs
    pairs_eval: dict[str, Any] = {"n": 0, "imported": {"n": 0}}
    calibration: dict[str, Any] = {"temperature": 1.0, "fitted_on": "nothing (no held-out pairs)"}
    if vp:
        sc = model.score_items([(p.prompt, p.chosen) for p in vp]).scalar
        sr = model.score_items([(p.prompt, p.rejected) for p in vp]).scalar
        cal = calibrate(sc - sr, vp)
        model.params.temperature = cal["temperature"]
        model.params = model.params.rounded()
        calibration = {"temperature": model.params.temperature, "fitted_on": f"{len(vp)} held-out pairs"}
        pairs_eval = pair_metrics(sc, sr, vp, cal["probabilities"])
        imp = [i for i, p in enumerate(vp) if p.imported]
        pairs_eval["imported"] = (
            pair_metrics(sc[imp], sr[imp], [vp[i] for i in imp], cal["probabilities"][imp])
            if imp
            else {"n": 0}
        )
        say(
            f"validation pairs: accuracy {pairs_eval['accuracy']:.3f} "
            f"[{pairs_eval['accuracy_ci95'][0]:.3f}, {pairs_eval['accuracy_ci95'][1]:.3f}] on {pairs_eval['n']} "
            f"(constant 0.5, longer-wins {pairs_eval['longer_wins_accuracy']:.3f}); temperature "
            f"{model.params.temperature:.3f}, cross-fitted ECE {pairs_eval['ece']:.3f}"
        )
        for source, m in pairs_eval["by_source"].items():
            say(
                f"  {source}: {m['accuracy']:.3f} [{m['accuracy_ci95'][0]:.3f}, {m['accuracy_ci95'][1]:.3f}] "
                f"on {m['n']}, longer-wins {m['longer_wins_accuracy']:.3f}"
            )

    # The teacher-label verdict: out-of-fold predictions on training prompts plus validation.
    errs, base_errs = [], []
    for h in heads:
        f = fits[h]
        if f.oof is not None:
            idx = [i for i, s in enumerate(split.train) if h in s.targets]
            truth = np.array([split.train[i].targets[h] for i in idx])
            errs.append(np.abs(f.oof - truth))
            base_errs.append(np.abs(f.oof_baseline - truth))
    for h, m in validation["heads"].items():
        if h in heads:
            idx = [i for i, s in enumerate(split.validation) if h in s.targets]
            truth = np.array([split.validation[i].targets[h] for i in idx])
            errs.append(np.full(len(idx), m["mae"]))
            base_errs.append(np.full(len(idx), m["baseline_mae"]))
    oof_mae = float(np.concatenate(errs).mean()) if errs else None
    oof_base = float(np.concatenate(base_errs).mean()) if base_errs else None
    n_judged = len(split.validation) + (
        len(split.train) if any(f.oof is not None for f in fits.values()) else 0
    )
    decision = verdict(pairs_eval, oof_mae, oof_base, n_judged, cfg.check.min_validation_pairs)
    say(
        f"verdict ({decision['basis']}, n={decision['n']}): "
        + ("passes" if decision["passed"] else "does NOT pass")
        + (
            f"; accuracy {decision['accuracy']:.3f} [{decision['accuracy_ci95'][0]:.3f}, "
            f"{decision['accuracy_ci95'][1]:.3f}] vs longer-wins {decision['longer_wins_accuracy']:.3f} and 0.5"
            if "accuracy" in decision
            else (
                f"; MAE {oof_mae:.4f} vs training-mean baseline {oof_base:.4f}" if oof_mae is not None else ""
            )
        )
    )

    all_samples = split.train + split.validation
    all_values = (
        model.clipped(model.score_items([(s.prompt, s.response) for s in all_samples])) if all_samples else {}
    )
    metrics = {
        "verdict": decision,
        "validation": validation,
        "pairs": pairs_eval,
        "length_bias": length_bias(all_values, all_samples, [h for h in heads if h in labelled])
        if all_samples
        else {},
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
    metadata = {
        "dimensions": dims,
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
            "semantics": "gate-weighted sum of the dimension scores (the gate reads the prompt)",
        },
        "embedder": {"spec": embedder.spec, "dim": dim_e},
        "features": FEATURES,
        "calibration": {
            h: {
                "method": "standardise (target_mean, target_std), ridge, clip to range",
                "target_mean": fits[h].target_mean,
                "target_std": fits[h].target_std,
                "train_label_mean": train_means.get(h),
                "alpha": fits[h].alpha,
                "clip_range": list(head_range(manifold, h)),
            }
            for h in heads
        },
        "calibration_pairs": {**calibration, "ece_cross_fitted": pairs_eval.get("ece")},
        "preference": {
            "per_dimension": preference,
            "pair_dimensions": dict(how),
            "length_debias": cfg.preferences.length_debias,
            "anchor_strength": cfg.preferences.anchor_strength,
        },
        "gate": {
            "learned": gate.learned,
            "dimensions": gate.dimensions,
            "train_accuracy": gate.train_accuracy,
        },
        "training_data": {
            "hash": data_hash(samples, pairs),
            "samples": len(samples),
            "samples_train": len(split.train),
            "samples_validation": len(split.validation),
            "prompts_train": len({x.group for x in split.train}),
            "prompts_validation": len({x.group for x in split.validation}),
            "pairs_imported": sum(1 for p in pairs if p.imported),
            "pairs_teacher": sum(1 for p in pairs if not p.imported),
            "pairs_by_source": dict(sorted(Counter(p.source for p in pairs).items())),
            "validation_fraction": cfg.split.validation_fraction,
            "split_salt": cfg.split.salt,
        },
        "config": cfg.model_dump(mode="json"),
        "metrics": metrics,
    }
    model.metadata = metadata
    return TrainingResult(model=model, metadata=metadata, split=split, log_lines=lines)
