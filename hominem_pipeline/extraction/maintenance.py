"""Nightly maintenance of the memory channel's store (seed 002 section 7): age out used rows, merge
duplicates (same normalised text, then near-duplicates by embedding similarity, compared only within
k-means clusters so the work grows near-linearly), re-emit a curated subset of valuable older rows for
training, and keep row embeddings and clusters current (recomputed when the embedding model changes).

Removed rows move to `sft_pairs_removed` whole, with the reason and the row they were merged into;
extraction never re-creates them. Settings: `config/maintenance.toml`. Plain Python; the Dagster asset
and schedule are `defs/maintenance.py`.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from pydantic import Field
from threadpoolctl import threadpool_limits

from hominem_pipeline import clock
from hominem_pipeline.settings import CronExpression, Settings, StrictModel, TimeZoneName, load_toml_model
from hominem_pipeline.store import maintenance as store


class ScheduleConfig(StrictModel):
    enabled: bool = True
    cron: CronExpression = "30 3 * * *"  # minute hour day month weekday
    timezone: TimeZoneName = "UTC"


class CleanupConfig(StrictModel):
    max_age_days: float = Field(90.0, ge=0.0)  # used rows older than this are removed; 0 = never


class DedupConfig(StrictModel):
    content_hash: bool = True
    similarity: float = Field(0.95, gt=0.0, le=1.0)  # cosine at or above: near-duplicates (1.0 = off)
    cluster_size: int = Field(256, ge=8, le=20000)  # target rows per k-means cluster
    embed_batch: int = Field(2048, ge=1)  # rows embedded and stored per batch


class ReemitConfig(StrictModel):
    min_age_days: float = Field(30.0, ge=0.0)  # only rows at least this old
    min_score: float = Field(0.5, ge=0.0, le=1.0)  # reward_intensity x confidence
    max_rows: int = Field(50, ge=0)  # per night; 0 = off


class MaintenanceConfig(StrictModel):
    schedule: ScheduleConfig = ScheduleConfig()
    cleanup: CleanupConfig = CleanupConfig()
    dedup: DedupConfig = DedupConfig()
    reemit: ReemitConfig = ReemitConfig()
    seed: int = 17


def load_maintenance_config(settings: Settings) -> MaintenanceConfig:
    """`config/maintenance.toml` (defaults when absent); a bad value names the file and field."""
    path = settings.config_dir / "maintenance.toml"
    return load_toml_model(path, MaintenanceConfig, defaults_if_absent=True)


# -- clustering and the near-duplicate search (pure numpy / scikit-learn) ------------------------------
def cluster_embeddings(vectors: np.ndarray, target_size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(labels, unit-norm centroids): recursive k-means (at most 64 parts per split) until every cluster
    holds at most 2 x `target_size` rows. Each split costs O(rows x parts), and there are O(log rows)
    levels, so the whole is near-linear in the number of rows."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(len(vectors), dtype=np.int64)
    leaves: list[np.ndarray] = []
    todo = [np.arange(len(vectors))]
    while todo:
        idx = todo.pop()
        if len(idx) <= 2 * target_size:
            leaves.append(idx)
            continue
        k = min(64, math.ceil(len(idx) / target_size))
        parts = spherical_kmeans(vectors[idx], k, rng)
        groups = [idx[parts == p] for p in range(k) if np.any(parts == p)]
        if len(groups) == 1:  # identical vectors cannot be split: cut into chunks
            groups = [idx[s : s + target_size] for s in range(0, len(idx), target_size)]
            leaves.extend(groups)
            continue
        todo.extend(groups)
    centres = np.zeros((len(leaves), vectors.shape[1] if len(vectors) else 0), np.float32)
    for c, idx in enumerate(leaves):
        labels[idx] = c
        centre = vectors[idx].mean(axis=0)
        centres[c] = centre / max(float(np.linalg.norm(centre)), 1e-12)
    return labels, centres


def spherical_kmeans(
    vectors: np.ndarray, k: int, rng: np.random.Generator, iterations: int = 10
) -> np.ndarray:
    """Labels of k-means on unit vectors by cosine (Lloyd's iterations from k distinct random rows; an
    emptied cluster restarts from a random row). Plain numpy: one matrix product per iteration."""
    from scipy import sparse

    centres = vectors[rng.choice(len(vectors), size=k, replace=False)].copy()
    labels = np.zeros(len(vectors), dtype=np.int64)
    for _ in range(iterations):
        labels = nearest_centroid(vectors, centres)
        counts = np.bincount(labels, minlength=k)
        # Per-cluster sums as one sparse (k x rows) product: np.add.at / reduceat are 10-50x slower.
        sums = np.asarray(
            sparse.csr_matrix(
                (np.ones(len(labels), np.float32), (labels, np.arange(len(labels)))), shape=(k, len(labels))
            )
            @ vectors
        )
        empty = counts == 0
        sums[empty] = vectors[rng.choice(len(vectors), size=int(empty.sum()))]
        centres = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    return nearest_centroid(vectors, centres)


def nearest_centroid(vectors: np.ndarray, centres: np.ndarray, chunk: int = 8192) -> np.ndarray:
    out = np.empty(len(vectors), dtype=np.int64)
    for s in range(0, len(vectors), chunk):
        out[s : s + chunk] = np.argmax(vectors[s : s + chunk] @ centres.T, axis=1)
    return out


def _components(n: int, left: list[int], right: list[int]) -> list[list[int]]:
    """Connected components (size >= 2, sorted members) of the graph on range(n) with these edges."""
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in zip(left, right, strict=True):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    comps: dict[int, list[int]] = {}
    for x in sorted(set(left) | set(right)):
        comps.setdefault(find(x), []).append(x)
    return [c for c in comps.values() if len(c) > 1]


def near_duplicate_groups(
    vectors: np.ndarray, labels: np.ndarray, sources: np.ndarray, threshold: float
) -> list[np.ndarray]:
    """Groups (index arrays, size >= 2) of rows linked by cosine >= threshold, same source, same cluster
    (connected components: a chain of near-duplicates is one group)."""
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    groups: list[np.ndarray] = []
    for members in np.split(order, bounds):
        if len(members) < 2:
            continue
        sims = vectors[members] @ vectors[members].T
        same = sources[members][:, None] == sources[members][None, :]
        i, j = np.nonzero(np.triu((sims >= threshold) & same, k=1))
        if len(i) == 0:
            continue
        comps = _components(len(members), i.tolist(), j.tolist())
        groups += [members[np.array(c)] for c in comps]
    return groups


def all_pairs_duplicate_groups(
    vectors: np.ndarray, sources: np.ndarray, threshold: float, block: int = 1024
) -> list[np.ndarray]:
    """The exact search (every pair compared, in blocks of rows): the baseline the clustered search is
    measured against. O(rows^2)."""
    left: list[int] = []
    right: list[int] = []
    for s in range(0, len(vectors), block):
        sims = vectors[s : s + block] @ vectors.T
        i, j = np.nonzero((sims >= threshold) & (sources[s : s + block, None] == sources[None, :]))
        keep = j > i + s
        left += (i[keep] + s).tolist()
        right += j[keep].tolist()
    return [np.array(c) for c in _components(len(vectors), left, right)]


# -- one night -----------------------------------------------------------------------------------------
@dataclass
class MaintenanceReport:
    rows_before: int = 0
    rows_after: int = 0
    removed_aged_out: int = 0
    merged_duplicate_content: int = 0
    merged_near_duplicate: int = 0
    near_duplicate_groups: int = 0
    embedded_now: int = 0
    embeddings_replaced: int = 0  # vectors of another embedding model dropped (and recomputed)
    clusters: int = 0
    clusters_recomputed: bool = False
    rows_assigned_to_clusters: int = 0
    reemitted: int = 0
    embedding_model: str = ""
    seconds: dict[str, float] = field(default_factory=dict)

    def counts(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "seconds"}


def run_maintenance(
    db: Any, config: MaintenanceConfig, embedder: Any, now: datetime | None = None, log: Any = None
) -> MaintenanceReport:
    """One night: aged-out rows, exact then near duplicates, embeddings and clusters, re-emission, in that
    order (rows removed first are neither embedded nor re-emitted). `embedder` has `.spec` and
    `.embed(texts)` (unit-norm rows), e.g. `embedding.Embedder`."""
    now = now or clock.now()  # the simulated clock's now under `hominem simulate`
    say = log or (lambda _m: None)
    report = MaintenanceReport(embedding_model=embedder.spec)
    report.rows_before = int(db.scalar("SELECT count(*) FROM sft_pairs"))

    def timed(step: str, start: float) -> None:
        report.seconds[step] = round(time.perf_counter() - start, 3)

    t = time.perf_counter()
    if config.cleanup.max_age_days > 0:
        old = store.aged_out_ids(db, now - timedelta(days=config.cleanup.max_age_days))
        report.removed_aged_out = store.remove_rows(db, [(i, "aged_out", None) for i in old], now)
    timed("cleanup", t)

    t = time.perf_counter()
    if config.dedup.content_hash:
        dups = store.duplicate_content(db)
        report.merged_duplicate_content = store.remove_rows(
            db, [(d, "duplicate_content", k) for d, k in dups], now
        )
    timed("duplicate_content", t)

    t = time.perf_counter()
    report.embeddings_replaced = store.forget_other_models(db, embedder.spec)
    missing = store.rows_without_embedding(db)
    for s in range(0, len(missing), config.dedup.embed_batch):
        batch = missing[s : s + config.dedup.embed_batch]
        report.embedded_now += store.store_embeddings(
            db, [b[0] for b in batch], embedder.embed([b[1] for b in batch]), embedder.spec
        )
    timed("embed", t)
    if report.embedded_now:
        say(f"maintenance: embedded {report.embedded_now} rows with {embedder.spec}")

    t = time.perf_counter()
    cols, vectors = store.embedded_rows(db)
    timed("load", t)
    # Many small matrix products follow: one BLAS thread each is faster than two contending ones (measured
    # 8 s against 22 s for clustering 100k rows on the 2-core box under load).
    with threadpool_limits(limits=1, user_api="blas"):
        t = time.perf_counter()
        labels = cols["cluster"].astype(np.int64) if len(vectors) else np.zeros(0, np.int64)
        _, centres = store.centroids(db, embedder.spec)
        sizes = np.bincount(labels[labels >= 0]) if np.any(labels >= 0) else np.zeros(0, np.int64)
        if len(vectors) and (
            len(centres) == 0 or (len(sizes) and sizes.max() > 4 * config.dedup.cluster_size)
        ):
            # No clusters for this model yet (first night, or the model changed), or one grew past twice
            # its bound: recluster everything.
            labels, centres = cluster_embeddings(vectors, config.dedup.cluster_size, config.seed)
            store.replace_clusters(db, list(cols["pair_id"]), labels, centres, embedder.spec)
            report.clusters_recomputed = True
        elif len(vectors):
            new = np.flatnonzero(labels < 0)
            if len(new):
                labels[new] = nearest_centroid(vectors[new], centres)
                report.rows_assigned_to_clusters = store.assign_clusters(
                    db, list(cols["pair_id"][new]), labels[new], embedder.spec
                )
        report.clusters = len(centres)
        timed("cluster", t)

        t = time.perf_counter()
        if len(vectors) and config.dedup.similarity < 1.0:
            # Knowledge rows are exempt: one fact is taught on purpose under several phrasings of its
            # question (extraction/knowledge.py), and those phrasings are near-duplicates by design.
            keys = np.where(
                cols["source"] == "knowledge_update",
                np.char.add("knowledge:", cols["pair_id"].astype(str)),
                cols["source"].astype(str),
            )
            groups = near_duplicate_groups(vectors, labels, keys, config.dedup.similarity)
            removals = []
            for g in groups:
                # Keeper: the highest score; pair ids are sorted, so ties go to the smallest id.
                keeper = g[int(np.argmax(cols["score"][g]))]
                removals += [
                    (str(cols["pair_id"][i]), "near_duplicate", str(cols["pair_id"][keeper]))
                    for i in g
                    if i != keeper
                ]
            report.near_duplicate_groups = len(groups)
            report.merged_near_duplicate = store.remove_rows(db, removals, now)
        timed("near_duplicate", t)

    t = time.perf_counter()
    picked = store.reemission_candidates(
        db, now - timedelta(days=config.reemit.min_age_days), config.reemit.min_score, config.reemit.max_rows
    )
    report.reemitted = store.reemit(db, picked, now)
    timed("reemit", t)
    report.rows_after = int(db.scalar("SELECT count(*) FROM sft_pairs"))
    return report
