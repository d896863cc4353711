"""Extraction + dedup at 10k / 100k / 1M messages: time and peak memory, against a named baseline.

For each size a synthetic, realistic event log is written (conversations of 1-8 user turns, system
prompts, ~1% of user turns with 2-3 assistant drafts (regenerated replies) of which half are near-duplicate paraphrases,
~1% introspection), ingested into a fresh DuckDB store, then measured in separate processes (so each
peak RSS is that step's own):
  baseline  "scan":    stream every conversation out of the store, no extraction (the floor);
  measured  "extract": extract_and_store_sft_pairs(all_conversations=True) with the real MiniLM
                       embedder (embeddings only for user turns with more than one draft).
Peak memory: the process's peak RSS (includes torch, MiniLM and DuckDB's buffer pool, capped by
--duckdb-memory); with --tracemalloc also the peak of Python allocations (slows every step ~2x).

    PYTHONPATH=. python benchmarks/bench_extraction.py                 # 10k, 100k, 1M
    PYTHONPATH=. python benchmarks/bench_extraction.py --sizes 10000 100000 --repeats 3

Each step runs `--repeats` times on the same store (extract re-runs against a fresh copy of the ingested
store, so every run does the same work); the table shows the median seconds, and the load average is
printed before and after, so the machine's load is stated with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import date, datetime, timedelta
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DAY = date(2026, 3, 1)
TOPICS = [
    "sleep",
    "running",
    "python",
    "taxes",
    "cooking",
    "a job interview",
    "moving house",
    "learning piano",
    "a difficult friend",
    "saving money",
    "gardening",
    "a history essay",
    "climbing",
    "a new puppy",
]
OPENERS = [
    "How do I get better at",
    "Any advice about",
    "I'm worried about",
    "Can you explain",
    "What should I know about",
    "I keep struggling with",
    "Give me a plan for",
    "What's a good first step with",
]
ADVICE = [
    "start small and keep a short daily habit",
    "write down what you want and review it weekly",
    "ask someone who has done it for one concrete tip",
    "break it into three steps and do the first today",
    "notice what already works and do more of it",
    "set a time limit so it does not take over your evening",
    "keep notes so you can see your progress",
    "be patient with yourself; the first weeks are the hardest",
]


def _reply(rng: random.Random, topic: str) -> str:
    parts = rng.sample(ADVICE, 3)
    return f"With {topic}, {parts[0]}. Then {parts[1]}, and {parts[2]}. Would you like a plan for the week?"


def _paraphrase(text: str) -> str:
    return text.replace("With ", "When it comes to ").replace("Would you like", "Do you want")


class _Writer:
    def __init__(self, fh: object):
        self.fh, self.t, self.written = fh, datetime(2026, 3, 1), 0
        self.cid, self.seq = "", 0

    def start(self, cid: str) -> None:
        self.cid, self.seq = cid, 0

    def emit(self, role: str, content: str, **extra: object) -> None:
        self.t += timedelta(milliseconds=137)
        rec = {
            "type": "message",
            "event_id": f"{self.cid}-{self.seq}",
            "conversation_id": self.cid,
            "role": role,
            "content": content,
            "timestamp": self.t.isoformat() + "Z",
            "seq": self.seq,
            **extra,
        }
        self.fh.write(json.dumps(rec) + "\n")  # type: ignore[attr-defined]
        self.seq += 1
        self.written += 1


def write_log(root: Path, n_messages: int, seed: int = 0) -> int:
    """Event-log lines written straight as JSON (the records the server would write)."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    conv = 0
    with (root / f"{DAY.isoformat()}.jsonl").open("w", encoding="utf-8") as fh:
        w = _Writer(fh)
        while w.written < n_messages:
            conv += 1
            w.start(f"conv-{conv:08d}")
            if rng.random() < 0.3:
                w.emit("system", "You are a warm, practical assistant.")
            for _turn in range(rng.randint(1, 8)):
                topic = rng.choice(TOPICS)
                introspective = rng.random() < 0.01
                w.emit(
                    "user",
                    f"{rng.choice(OPENERS)} {topic}? (#{conv}.{w.seq})",
                    **({"internal_generated": True, "introspection": True} if introspective else {}),
                )
                first = _reply(rng, topic)
                r = rng.random()
                drafts = [first]
                if r < 0.005:
                    drafts.append(_paraphrase(first))  # near-duplicate draft
                elif r < 0.01:
                    drafts.append(_reply(rng, rng.choice(TOPICS)))  # a genuinely different draft
                    if rng.random() < 0.5:
                        drafts.append(_reply(rng, topic))
                for d, text in enumerate(drafts):
                    extra: dict[str, object] = {"draft_index": d} if len(drafts) > 1 else {}
                    if introspective:
                        extra.update(internal_generated=True, introspection=True)
                    w.emit("assistant", text, **extra)
    return w.written


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def step(kind: str, workdir: Path, duckdb_memory: str, threads: int = 1, trace: bool = False) -> dict:
    from hominem_pipeline.embedding import Embedder
    from hominem_pipeline.events.ingest import ingest_day
    from hominem_pipeline.events.log import EventLog
    from hominem_pipeline.extraction import extract_and_store_sft_pairs
    from hominem_pipeline.store import TrainingDatabase

    db = TrainingDatabase(workdir / "store.duckdb")
    db.con.execute(f"SET memory_limit = '{duckdb_memory}'")
    out: dict = {}
    embedder = None
    if kind == "extract":
        import torch

        # One intra-op thread: on a shared 2-core box, OpenMP threads spin against other processes
        # and a 2-thread MiniLM call was measured 2-25x slower than a 1-thread one.
        torch.set_num_threads(threads)
        embedder = Embedder()
        embedder.embed(["warm up"])  # model load is a constant, not part of the scaling
        embedder.calls = embedder.texts_embedded = 0
    rss_before = _rss_mb()
    if trace:
        tracemalloc.start()
    t0 = time.perf_counter()
    if kind == "ingest":
        r = ingest_day(db, EventLog(workdir / "events"), DAY)
        out.update(new_messages=r.new_messages)
    elif kind == "scan":
        n = sum(len(rows) for rows in db.iter_conversation_messages())
        out.update(messages=n)
    else:
        r = extract_and_store_sft_pairs(db, all_conversations=True, embedder=embedder)
        out.update(
            pairs=r.pairs_stored,
            dropped=r.stats.dropped_near_duplicates,
            embedded=embedder.texts_embedded,
            multi_draft_turns=r.stats.multi_draft_turns,
            introspection_excluded=r.stats.introspection_excluded,
        )
    out["seconds"] = time.perf_counter() - t0
    if trace:
        out["py_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    out["rss_before_mb"], out["rss_peak_mb"] = rss_before, _rss_mb()
    db.close()
    return out


def _run_step(kind: str, workdir: Path, duckdb_memory: str, threads: int, trace: bool) -> dict:
    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            "--step",
            kind,
            "--workdir",
            str(workdir),
            "--duckdb-memory",
            duckdb_memory,
            "--torch-threads",
            str(threads),
        ]
        + (["--tracemalloc"] if trace else []),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} in {workdir} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _median_of(runs: list[dict]) -> dict:
    """The run with the median time, plus every run's seconds (so the spread is visible)."""
    ordered = sorted(runs, key=lambda r: r["seconds"])
    out = dict(ordered[len(ordered) // 2])
    out["seconds"] = statistics.median(r["seconds"] for r in runs)
    out["all_seconds"] = [round(r["seconds"], 2) for r in runs]
    return out


def run_size(n: int, base: Path, duckdb_memory: str, threads: int, trace: bool, repeats: int = 1) -> dict:
    """Ingest (into a fresh store each time), scan and extract, each `repeats` times; medians."""
    workdir = base / f"n{n}"
    t0 = time.perf_counter()
    written = write_log(workdir / "events", n)
    res = {"messages": written, "generate_s": time.perf_counter() - t0}
    runs: dict[str, list[dict]] = {"ingest": [], "scan": [], "extract": []}
    pristine = workdir / "ingested.duckdb"
    for _ in range(repeats):
        (workdir / "store.duckdb").unlink(missing_ok=True)
        runs["ingest"].append(_run_step("ingest", workdir, duckdb_memory, threads, trace))
    shutil.copy(workdir / "store.duckdb", pristine)
    for _ in range(repeats):
        runs["scan"].append(_run_step("scan", workdir, duckdb_memory, threads, trace))
    for _ in range(repeats):
        shutil.copy(pristine, workdir / "store.duckdb")  # extraction writes pairs: start each run equal
        runs["extract"].append(_run_step("extract", workdir, duckdb_memory, threads, trace))
    res.update({kind: _median_of(r) for kind, r in runs.items()})
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--duckdb-memory", default="512MB", help="DuckDB memory_limit (it spills beyond it)")
    ap.add_argument("--step", choices=["ingest", "scan", "extract"])
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--json-out", type=Path)
    ap.add_argument("--torch-threads", type=int, default=1)
    ap.add_argument(
        "--tracemalloc",
        action="store_true",
        help="also record Python's allocation peak (slows every step ~2x)",
    )
    ap.add_argument("--repeats", type=int, default=3, help="runs per step; the table shows the median")
    args = ap.parse_args()
    if args.step:
        print(
            json.dumps(
                step(args.step, args.workdir, args.duckdb_memory, args.torch_threads, args.tracemalloc)
            )
        )
        return
    results = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-extraction-") as tmp:
        for n in args.sizes:
            r = run_size(n, Path(tmp), args.duckdb_memory, args.torch_threads, args.tracemalloc, args.repeats)
            results.append(r)
            print(f"done {n}: {json.dumps(r)}", file=sys.stderr, flush=True)
    load_after = os.getloadavg()
    print(
        f"cpus {os.cpu_count()}; load average (1/5/15 min) before {load_before[0]:.2f}/{load_before[1]:.2f}/"
        f"{load_before[2]:.2f}, after {load_after[0]:.2f}/{load_after[1]:.2f}/{load_after[2]:.2f}; "
        f"median of {args.repeats} run(s) per step"
    )
    header = (
        "| messages | ingest s | scan (baseline) s | extract s | extract/scan | embedded texts | pairs | "
        "dropped near-dups | extract py peak MB | extract RSS peak MB | scan RSS peak MB |"
    )
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for r in results:
        e, s, i = r["extract"], r["scan"], r["ingest"]
        print(
            f"| {r['messages']:,} | {i['seconds']:.1f} | {s['seconds']:.1f} | {e['seconds']:.1f} | "
            f"{e['seconds'] / s['seconds']:.1f} | {e['embedded']:,} | {e['pairs']:,} | {e['dropped']:,} | "
            f"{e.get('py_peak_mb', float('nan')):.0f} | {e['rss_peak_mb']:.0f} | {s['rss_peak_mb']:.0f} |"
        )
    for r in results:
        print(
            f"{r['messages']:,} messages, every run's seconds: ingest {r['ingest']['all_seconds']}, "
            f"scan {r['scan']['all_seconds']}, extract {r['extract']['all_seconds']}"
        )
    by_n = {r["messages"] // 1000 * 1000: r for r in results}
    sizes = sorted(by_n)
    for small, big in zip(sizes, sizes[1:], strict=False):
        a, b = by_n[small], by_n[big]
        print(
            f"time({big:,})/time({small:,}): extract {b['extract']['seconds'] / a['extract']['seconds']:.2f}, "
            f"scan baseline {b['scan']['seconds'] / a['scan']['seconds']:.2f}, "
            f"ingest {b['ingest']['seconds'] / a['ingest']['seconds']:.2f}; "
            f"extract RSS peak {a['extract']['rss_peak_mb']:.0f} -> {b['extract']['rss_peak_mb']:.0f} MB"
        )
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
