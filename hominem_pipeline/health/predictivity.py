"""LRPS read from the user's own judgements: can the reward signal predict what this user says of a reply?

The adapter's preference channel learns from the user's choices directly (a regenerate-and-pick is a DPO
pair) and the reward model only weighs them, so the health question for an update is whether the user's
signal is coherent: does what a reply *is* predict how the user judges it? A reward model distilled from
the teacher cannot answer that for a user whose taste differs from the teacher's (it would hold such a
user's updates forever) and it would pass a user whose judgements are noise that happens to line up with
it. So the local reward here is the reward model **personalised to this user**: a ridge "user head" over
the reward model's own outputs for the reply (every dimension and the gated scalar) and the reply's length
(which the reward model regresses out of its general preference, docs/REWARD_MODEL.md, but a user may
care about), fitted on the user's judgements of *other* conversations and asked about this one
(cross-fitting by conversation, so a head never scores what it was fitted on).

Two judgements count, each on its own reply:
- an emoji's valence (mean over the emoji the user has on the reply): the head's prediction against it,
  Pearson over the judged replies;
- a choice between two drafts (regenerate and pick): did the head rank the chosen draft above the
  rejected one; agreement = 2 * accuracy - 1 (0 = a coin flip, 1 = always).
LRPS = max(0, mean of the measured ones). A consistent user, whatever its taste, scores high; a user who
rewards and punishes the same trait at random scores near 0. Plain numpy; no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hominem_pipeline.health.components import Component

#: Ridge penalty of the user head on standardised features (a few dozen judgements, ~10 features).
USER_HEAD_ALPHA = 10.0
#: The target margin of a choice: the chosen draft one valence unit above the rejected one.
CHOICE_MARGIN = 1.0


@dataclass
class Judgements:
    """The user's judgements of replies: message id -> emoji valence, and (chosen, rejected) message ids."""

    valence: dict[str, float] = field(default_factory=dict)
    choices: list[tuple[str, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.valence or self.choices)


def reply_features(
    heads: Mapping[str, np.ndarray], scalar: np.ndarray, responses: Sequence[str]
) -> np.ndarray:
    """(n, k) features of each reply: log(1 + words), the gated scalar and every head's raw output."""
    words = np.log1p(np.array([len(r.split()) for r in responses], dtype=float))
    columns = [words, np.asarray(scalar, dtype=float)] + [
        np.asarray(heads[h], dtype=float) for h in sorted(heads)
    ]
    return np.stack(columns, axis=1)


def fold_of(group: str, folds: int) -> int:
    """A conversation's fold: stable across runs and machines (a hash of its id, not Python's `hash`)."""
    return int(hashlib.sha1(group.encode()).hexdigest()[:8], 16) % folds


def fit_user_head(
    x: np.ndarray,
    valence: Sequence[tuple[int, float]],
    choices: Sequence[tuple[int, int]],
    alpha: float = USER_HEAD_ALPHA,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float] | None:
    """Ridge over standardised features: emoji rows fit the centred valence, choice rows fit
    w . (z_chosen - z_rejected) = CHOICE_MARGIN. Returns (mean, std, w, valence mean), or None with no rows."""
    rows = sorted({i for i, _ in valence} | {i for c in choices for i in c})
    if not rows:
        return None
    mean, std = x[rows].mean(axis=0), x[rows].std(axis=0)
    std = np.where(std > 1e-9, std, 1.0)
    z = (x - mean) / std
    offset = float(np.mean([v for _, v in valence])) if valence else 0.0
    a = alpha * np.eye(x.shape[1])
    b = np.zeros(x.shape[1])
    for i, v in valence:
        a += np.outer(z[i], z[i])
        b += z[i] * (v - offset)
    for c, r in choices:
        d = z[c] - z[r]
        a += np.outer(d, d)
        b += d * CHOICE_MARGIN
    return mean, std, np.linalg.solve(a, b), offset


def out_of_fold(
    x: np.ndarray,
    groups: Sequence[str],
    valence: Sequence[tuple[int, float]],
    choices: Sequence[tuple[int, int]],
    folds: int,
) -> np.ndarray:
    """Each reply's user-head score from a head fitted on the other folds' judgements (NaN where the
    other folds hold no judgement). A choice belongs to its chosen draft's conversation."""
    fold = np.array([fold_of(g, folds) for g in groups])
    out = np.full(len(x), np.nan)
    for k in range(folds):
        here = fold == k
        if not here.any():
            continue
        head = fit_user_head(
            x, [(i, v) for i, v in valence if fold[i] != k], [(c, r) for c, r in choices if fold[c] != k]
        )
        if head is not None:
            mean, std, w, offset = head
            out[here] = ((x[here] - mean) / std) @ w + offset
    return out


def user_lrps(
    x: np.ndarray,
    groups: Sequence[str],
    valence: Sequence[tuple[int, float]],
    choices: Sequence[tuple[int, int]],
    folds: int,
    min_judgements: int,
) -> Component:
    """LRPS from the user's judgements (module docstring); None when neither kind has `min_judgements`
    scored judgements with something to predict."""
    predicted = out_of_fold(x, groups, valence, choices, folds)
    parts: dict[str, float] = {}
    info: dict[str, Any] = {
        "reading": "user head, cross-fitted by conversation",
        "folds": folds,
        "replies_with_emoji": len(valence),
        "choices": len(choices),
    }
    scored = [(predicted[i], v) for i, v in valence if np.isfinite(predicted[i])]
    if len(scored) >= min_judgements:
        p, v = np.array(scored).T
        if p.std() > 0 and v.std() > 0:
            parts["emoji_pearson"] = float(np.corrcoef(p, v)[0, 1])
        else:
            info["emoji_note"] = (
                "the user's emoji (or the head's scores) are all the same: nothing to correlate"
            )
    decided = [
        (predicted[c], predicted[r])
        for c, r in choices
        if np.isfinite(predicted[c]) and np.isfinite(predicted[r])
    ]
    if len(decided) >= min_judgements:
        accuracy = float(np.mean([1.0 if a > b else 0.5 if a == b else 0.0 for a, b in decided]))
        info["choice_accuracy"] = round(accuracy, 6)
        parts["choice_agreement"] = 2.0 * accuracy - 1.0
    info.update({k: round(v, 6) for k, v in parts.items()})
    if not parts:
        return Component(
            "lrps",
            None,
            info,
            f"fewer than {min_judgements} user judgements the head could be asked about (or all alike)",
        )
    return Component("lrps", min(1.0, max(0.0, float(np.mean(list(parts.values()))))), info)
