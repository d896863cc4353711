"""Which examples go into which step: the k-means diversity sampler (per channel) and the three
batch-mixing strategies that combine the two channels into a step schedule.

Diversity sampler (seed 002): k-means over sentence embeddings (MiniLM by default); each batch draws
1-2 examples from as many distinct clusters as it can, chosen within a cluster with probability
proportional to recency x intensity (normalised per draw). An epoch uses every example once, so the
weights decide what comes first (and what a step-limited run sees), while the loss applies them as gains.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from hominem_pipeline.embedding import Embedder


def kmeans_labels(embeddings: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    k = max(1, min(k, len(embeddings)))
    if k == 1:
        return np.zeros(len(embeddings), dtype=int)
    return KMeans(n_clusters=k, n_init=3, random_state=seed).fit_predict(embeddings)


def farthest_first(embeddings: np.ndarray, m: int, start: int = 0) -> list[int]:
    """Greedy farthest-point traversal: m indices that spread over the embedding space."""
    m = min(m, len(embeddings))
    chosen = [start]
    dist = np.linalg.norm(embeddings - embeddings[start], axis=1)
    while len(chosen) < m:
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(embeddings - embeddings[nxt], axis=1))
    return chosen


@dataclass
class Draw:
    """One batch of one channel: indices into the channel's examples and the probability each was drawn
    with (normalised within its cluster draw)."""

    indices: list[int]
    probabilities: list[float]
    clusters: list[int]


@dataclass
class DiversitySampler:
    weights: np.ndarray
    labels: np.ndarray  # cluster of each example
    batch_size: int
    per_cluster: int = 2
    embeddings: np.ndarray | None = None
    farthest_first_basis: bool = False
    seed: int = 0
    epoch: int = 0
    clusters_seen: set[int] = field(default_factory=set)

    @property
    def n_clusters(self) -> int:
        return int(self.labels.max()) + 1 if len(self.labels) else 0

    def batches_per_epoch(self) -> int:
        return math.ceil(len(self.weights) / self.batch_size) if len(self.weights) else 0

    def _epoch_batches(self) -> list[Draw]:
        rng = np.random.default_rng([self.seed, self.epoch])
        remaining: dict[int, list[int]] = {}
        for i, c in enumerate(self.labels):
            remaining.setdefault(int(c), []).append(i)
        draws: list[tuple[int, float, int]] = []
        if self.farthest_first_basis and self.embeddings is not None and len(self.weights) > 1:
            # The basis opens the epoch: one spread-out example per cluster's worth, drawn first.
            start = int(rng.integers(len(self.weights)))
            for i in farthest_first(self.embeddings, self.n_clusters, start):
                remaining[int(self.labels[i])].remove(i)
                draws.append((i, 1.0, int(self.labels[i])))
        while any(remaining.values()):
            order = [c for c in rng.permutation(sorted(remaining)) if remaining[int(c)]]
            for c in order:
                members = remaining[int(c)]
                take = min(self.per_cluster, len(members))
                w = self.weights[members]
                p = w / w.sum()
                picked = rng.choice(len(members), size=take, replace=False, p=p)
                for j in picked:
                    draws.append((members[j], float(p[j]), int(c)))
                for j in sorted(picked, reverse=True):
                    members.pop(j)
        out = []
        for s in range(0, len(draws), self.batch_size):
            chunk = draws[s : s + self.batch_size]
            out.append(Draw([d[0] for d in chunk], [d[1] for d in chunk], [d[2] for d in chunk]))
        return out

    def __iter__(self) -> Iterator[Draw]:
        """Endless: epoch after epoch, each with fresh cluster order and draws."""
        while True:
            for draw in self._epoch_batches():
                self.clusters_seen.update(draw.clusters)
                yield draw
            self.epoch += 1

    def coverage(self) -> float:
        return len(self.clusters_seen) / self.n_clusters if self.n_clusters else 0.0


def build_sampler(
    texts: Sequence[str],
    weights: Sequence[float],
    batch_size: int,
    *,
    diversity: bool,
    embedding_model: str | None,
    k: int,
    per_cluster: int,
    farthest_first_basis: bool,
    seed: int,
) -> DiversitySampler:
    w = np.asarray(weights, dtype=np.float64)
    if diversity and len(texts) > 1 and embedding_model:
        emb = Embedder(embedding_model).embed(texts)
        labels = kmeans_labels(emb, k, seed)
        return DiversitySampler(w, labels, batch_size, per_cluster, emb, farthest_first_basis, seed)
    # No clustering: every example is its own cluster, so the draw is a weighted shuffle.
    return DiversitySampler(w, np.arange(len(texts)), batch_size, 1, None, False, seed)


@dataclass
class Step:
    sft: Draw | None
    preference: Draw | None


def mixing_schedule(
    strategy: str,
    sft: DiversitySampler | None,
    preference: DiversitySampler | None,
    n_steps: int,
    sft_weight: float,
    seed: int,
) -> Iterator[Step]:
    """Combine the channels into steps.

    interleaved: every step holds one SFT batch and one preference batch (one loss, one update).
    alternating: steps alternate preference, SFT, preference, ... (each step one channel).
    mixed: each step's slots are filled from either channel at random in proportion to the channel
    weights, so a step may hold both channels in any ratio, or only one.
    """
    sft_it = iter(sft) if sft is not None and len(sft.weights) else None
    pref_it = iter(preference) if preference is not None and len(preference.weights) else None
    rng = np.random.default_rng([seed, 7])
    for step in range(n_steps):
        if sft_it is None or pref_it is None:
            yield Step(next(sft_it) if sft_it else None, next(pref_it) if pref_it else None)
        elif strategy == "interleaved":
            yield Step(next(sft_it), next(pref_it))
        elif strategy == "alternating":
            yield Step(None, next(pref_it)) if step % 2 == 0 else Step(next(sft_it), None)
        elif strategy == "mixed":
            slots = sft.batch_size + preference.batch_size  # type: ignore[union-attr]
            n_sft = int(rng.binomial(slots, sft_weight))
            s = _take(sft_it, n_sft)
            p = _take(pref_it, slots - n_sft)
            yield Step(s, p)
        else:
            raise ValueError(f"unknown batch_mixing {strategy!r}")


def _take(it: Iterator[Draw], n: int) -> Draw | None:
    """n examples from a channel's stream of draws (rounded up to whole draws' worth, cut to n)."""
    if n <= 0:
        return None
    idx: list[int] = []
    prob: list[float] = []
    cl: list[int] = []
    while len(idx) < n:
        d = next(it)
        idx += d.indices
        prob += d.probabilities
        cl += d.clusters
    return Draw(idx[:n], prob[:n], cl[:n])
