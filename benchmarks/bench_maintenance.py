"""Nightly SFT maintenance at 100k and 1M rows: `run_maintenance` on a real DuckDB store against a named
baseline, the exact all-pairs near-duplicate search.

Data: synthetic rows whose embeddings cluster like sentence vectors (2,000 topics, each row its topic's
centre plus noise, unit norm, 384 dimensions), with 2% planted near-duplicates (a row's vector plus tiny
noise, text changed by one character), 1% exact content duplicates (same text, other case and
whitespace), 10% used rows older than the cleanup age and 5% used rows of re-emission age. The vectors
are stored in `sft_embeddings` beforehand under the spec `bench:synthetic`, so the measured night embeds
nothing: MiniLM's own cost per new row (~600 rows/s here) is paid once per row, when it first appears,
and is measured by bench_extraction.py.

  measured   "clustered": run_maintenance on a fresh copy of the store (first night: clusters computed),
             per step; and a second night on the result (nothing new: clusters kept);
  baseline   "all-pairs": the exact search (`all_pairs_duplicate_groups`) timed on a subsample of
             --baseline-rows and extrapolated to n by (n / subsample)^2; recall of the clustered search
             against it on that subsample (pairs of rows it finds among the exact ones).

    PYTHONPATH=. python benchmarks/bench_maintenance.py                       # 100k and 1M, 3 repeats
    PYTHONPATH=. python benchmarks/bench_maintenance.py --sizes 100000 --repeats 3

The table shows the median of --repeats runs; the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hominem_pipeline.extraction.maintenance import (  # noqa: E402
    MaintenanceConfig,
    all_pairs_duplicate_groups,
    cluster_embeddings,
    near_duplicate_groups,
    run_maintenance,
)
from hominem_pipeline.store import TrainingDatabase  # noqa: E402
from hominem_pipeline.store.maintenance import store_embeddings  # noqa: E402

SPEC = "bench:synthetic"
DIM = 384
NOW = datetime(2026, 6, 1, tzinfo=UTC)


class StoredVectors:
    """The benchmark's embedder: every row's vector is already stored, so it is never asked to embed."""

    spec = SPEC

    def embed(self, texts: list[str]) -> np.ndarray:
        raise RuntimeError(f"the benchmark stored every vector beforehand; asked to embed {len(texts)} texts")


def synthetic(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, kind) for n rows; kind: 0 plain, 1 near-duplicate of the row before, 2 exact duplicate."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(2000, DIM)).astype(np.float32)
    vectors = centres[rng.integers(0, 2000, n)] + 0.9 * rng.normal(size=(n, DIM)).astype(np.float32)
    kind = np.zeros(n, dtype=np.int8)
    roll = rng.random(n)
    kind[1:][roll[1:] < 0.02] = 1
    kind[1:][(roll[1:] >= 0.02) & (roll[1:] < 0.03)] = 2
    dup = np.flatnonzero(kind == 1)
    vectors[dup] = vectors[dup - 1] + 0.005 * rng.normal(size=(len(dup), DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors, kind


def build_store(path: Path, n: int) -> None:
    vectors, kind = synthetic(n)
    ids = [f"p{i:08d}" for i in range(n)]
    instr = [f"Question {i} about topic {i % 997}?" for i in range(n)]
    resp = [f"Answer number {i}, with some detail." for i in range(n)]
    for i in np.flatnonzero(kind == 1):
        instr[i], resp[i] = instr[i - 1], resp[i - 1] + "!"
    for i in np.flatnonzero(kind == 2):
        instr[i], resp[i] = "  " + instr[i - 1].upper(), resp[i - 1]
    rng = np.random.default_rng(1)
    roll = rng.random(n)
    age_days = np.where(roll < 0.10, 120.0, np.where(roll < 0.15, 45.0, 2.0))
    used = roll < 0.15
    created = [NOW.replace(tzinfo=None) - timedelta(days=float(a)) for a in age_days]
    with TrainingDatabase(path) as db:
        cols = [
            ids,
            instr,
            resp,
            [None] * n,
            ["conversation"] * n,
            [None] * n,
            [1.0] * n,
            rng.random(n).round(3).tolist(),
            [1.0] * n,
            [1.0] * n,
            ["c"] * n,
            [f"m{i}" for i in ids],
            [len(x) for x in instr],
            [len(x) for x in resp],
            ["{}"] * n,
            created,
            used.tolist(),
            [c if u else None for c, u in zip(created, used, strict=True)],
            [1 if u else None for u in used],
        ]
        db.con.execute("INSERT INTO sft_pairs SELECT " + ", ".join(["unnest(?)"] * len(cols)), cols)
        for s in range(0, n, 100_000):
            store_embeddings(db, ids[s : s + 100_000], vectors[s : s + 100_000], SPEC)
        db.con.execute("CHECKPOINT")


def night(path: Path) -> tuple[dict[str, float], dict, dict[str, float]]:
    """(first night's seconds per step + total, its counts, second night's seconds + total)."""
    with TrainingDatabase(path) as db:
        t = time.perf_counter()
        first = run_maintenance(db, MaintenanceConfig(), StoredVectors(), now=NOW)
        first.seconds["total"] = time.perf_counter() - t
        t = time.perf_counter()
        second = run_maintenance(db, MaintenanceConfig(), StoredVectors(), now=NOW)
        second.seconds["total"] = time.perf_counter() - t
    return first.seconds, first.counts(), second.seconds


def baseline(rows: int, repeats: int) -> tuple[float, float, float]:
    """(median all-pairs seconds, median clustered cluster+search seconds, recall) on `rows` rows."""
    vectors, _ = synthetic(rows, seed=5)
    sources = np.array(["conversation"] * rows, dtype=object)
    threshold = MaintenanceConfig().dedup.similarity
    exact_t, clustered_t = [], []
    with threadpool_limits(limits=1, user_api="blas"):  # as run_maintenance does
        for _ in range(repeats):
            t = time.perf_counter()
            exact = all_pairs_duplicate_groups(vectors, sources, threshold)
            exact_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            labels, _ = cluster_embeddings(vectors, MaintenanceConfig().dedup.cluster_size)
            found = near_duplicate_groups(vectors, labels, sources, threshold)
            clustered_t.append(time.perf_counter() - t)

    def pairs(groups: list[np.ndarray]) -> set[tuple[int, int]]:
        return {(int(a), int(b)) for g in groups for a in g for b in g if a < b}

    exact_pairs = pairs(exact)
    recall = len(pairs(found) & exact_pairs) / max(1, len(exact_pairs))
    return statistics.median(exact_t), statistics.median(clustered_t), recall


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-rows", type=int, default=20_000)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}  cores: {os.cpu_count()}")
    exact_s, clustered_s, recall = baseline(args.baseline_rows, args.repeats)
    m = args.baseline_rows
    print(
        f"\nbaseline on {m:,} rows (median of {args.repeats}): all-pairs {exact_s:.2f} s, "
        f"clustered (k-means + search) {clustered_s:.2f} s, recall of the clustered search {recall:.3f}"
    )
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-maint-"))
    steps = ["cleanup", "duplicate_content", "embed", "load", "cluster", "near_duplicate", "reemit", "total"]
    print("\n| rows | " + " | ".join(steps) + " | 2nd night total | all-pairs search (extrapolated) |")
    print("|---|" + "---|" * (len(steps) + 2))
    try:
        for n in args.sizes:
            master = work / f"master-{n}.duckdb"
            t = time.perf_counter()
            build_store(master, n)
            build_s = time.perf_counter() - t
            firsts, seconds, counts = [], [], None
            for r in range(args.repeats):
                copy = work / f"run-{n}-{r}.duckdb"
                shutil.copy(master, copy)
                f, c, s = night(copy)
                firsts.append(f)
                seconds.append(s["total"])
                counts = c
                copy.unlink()
            med = {k: statistics.median(f[k] for f in firsts) for k in steps}
            extrapolated = exact_s * (n / m) ** 2
            print(
                f"| {n:,} | "
                + " | ".join(f"{med[k]:.2f}" for k in steps)
                + f" | {statistics.median(seconds):.2f} | {extrapolated:,.0f} |",
                flush=True,
            )
            print(
                f"  (store built in {build_s:.0f} s; counts of one night: "
                f"{ {k: v for k, v in counts.items() if isinstance(v, int)} })",
                flush=True,
            )
            master.unlink()
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
