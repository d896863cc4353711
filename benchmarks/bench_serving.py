"""What the chat server costs over calling the model in-process, how fast it takes feedback under many
clients, and how long a hot-swap takes, with requests running, on the embedded SmolLM2-135M.

    PYTHONPATH=. python benchmarks/bench_serving.py [--runs 3] [--prompts 4] [--max-tokens 32]
        [--clients 50] [--events-per-client 40] [--swaps 3] [--model tiny|smollm2]

1. Generation: the same prompts, greedy, the same token budget, through `Engine.generate` in-process
   (the baseline), `POST /generate` and `POST /v1/chat/completions` (real HTTP on loopback, uvicorn in this
   process; each request also appends its two events to the log and scores the reply when a reward model
   is served: none is here). Median of `--runs` passes; overhead = HTTP latency / in-process latency.
2. Feedback: `--clients` concurrent clients post `--events-per-client` emoji labels each, all distinct;
   baseline: the same number of `EventLog.append` calls from as many threads in-process. Then every label
   is looked for in the log: each must be there exactly once.
3. Swap: 4 clients send requests without pause while the `current` pointer moves between two adapters;
   time from the pointer change to /health showing the new adapter, and the failed requests meanwhile.
The machine may be shared: the ratios measured in one run matter more than the absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx

from hominem_pipeline.events.log import EventLog
from hominem_pipeline.events.schema import FeedbackEvent, MessageEvent
from hominem_pipeline.records import content_hash
from hominem_pipeline.serving.server import BackgroundServer, build
from hominem_pipeline.settings import REPO_ROOT, Settings

PROMPTS = [
    "What is the capital of France?",
    "Give me one tip for sleeping better.",
    "Explain what a rainbow is in two sentences.",
    "Write a short greeting for a new colleague.",
    "Why is the sky blue?",
    "Name three fruits that are red.",
]
EMOJIS = ["😊+2", "😊+1", "😟-1", "😟-2", "🚀", "💔", "⏳", "🪞", "🤗", "🎭"]


def make_bench_home(root: Path, model: str, max_tokens: int) -> Path:
    """The repository's config in a fresh home; converted models are shared with the repository's cache."""
    import shutil

    from hominem_pipeline_tests.serving_fixtures import _set_line, write_config

    home = root / "home"
    shutil.copytree(REPO_ROOT / "config", home / "config")
    write_config(home / "config", inference={"student.model": model})
    text = (home / "config" / "serving.toml").read_text()
    for key, value in (("max_new_tokens", max_tokens), ("temperature", 0.0), ("watch_interval_s", 0.05)):
        text = _set_line(text, key, value)
    text = text.replace('reward_model = "current"', 'reward_model = "none"')
    (home / "config" / "serving.toml").write_text(text)
    (REPO_ROOT / "artifacts" / "models").mkdir(parents=True, exist_ok=True)
    (home / "artifacts").mkdir(parents=True)
    (home / "artifacts" / "models").symlink_to(REPO_ROOT / "artifacts" / "models")
    return home


BASELINE = "in-process Engine.generate (baseline)"
PATHS = [BASELINE, "POST /generate", "POST /v1/chat/completions"]


def bench_generation(
    url: str, built, prompts: list[str], runs: int
) -> list[tuple[str, float, float, int, float, float]]:  # noqa: ANN001
    """Per path: (name, median s/request, tokens/s, tokens per pass, paired overhead). The three paths
    answer each prompt back to back (order rotating), so a load spike on a shared box hits all three;
    the overhead is the median over (run, prompt) of path latency / baseline latency for that pair."""
    engine = built.engine
    samp = engine.sampling()
    seconds: dict[str, dict[tuple[int, int], float]] = {p: {} for p in PATHS}
    # Per HTTP request: wall time minus the generation time the server measured inside that same request,
    # i.e. what the server adds (HTTP, validation, reward scoring, two fsync'd log appends). Paired within
    # one request, so a load spike on a shared box barely moves it.
    added: dict[str, list[float]] = {p: [] for p in PATHS}
    tokens: dict[str, dict[int, int]] = {p: {} for p in PATHS}
    with httpx.Client(timeout=600) as http:
        http.post(url + "/generate", json={"prompt": "warm up"})
        for run in range(runs):
            for i, prompt in enumerate(prompts):
                k = (run * len(prompts) + i) % len(PATHS)
                for name in PATHS[k:] + PATHS[:k]:
                    t0 = time.perf_counter()
                    if name == BASELINE:
                        n = engine.generate([{"role": "user", "content": prompt}], samp).completion_tokens
                    elif name == "POST /generate":
                        body = http.post(url + "/generate", json={"prompt": prompt}).json()
                        n, inside = body["completion_tokens"], body["latency_s"]
                    else:
                        body = http.post(
                            url + "/v1/chat/completions",
                            json={"model": "hominem", "messages": [{"role": "user", "content": prompt}]},
                        ).json()
                        n, inside = body["usage"]["completion_tokens"], body["hominem"]["latency_s"]
                    seconds[name][(run, i)] = time.perf_counter() - t0
                    if name != BASELINE:
                        added[name].append(seconds[name][(run, i)] - inside)
                    tokens[name][i] = n
    out = []
    for name in PATHS:
        per_run = [sum(seconds[name][(r, i)] for i in range(len(prompts))) for r in range(runs)]
        total_tokens = sum(tokens[name].values())
        median_pass = statistics.median(per_run)
        ratio = statistics.median(seconds[name][key] / seconds[BASELINE][key] for key in seconds[name])
        added_ms = 1000 * statistics.median(added[name]) if added[name] else 0.0
        out.append(
            (name, median_pass / len(prompts), total_tokens / median_pass, total_tokens, ratio, added_ms)
        )
    return out


def seed_messages(log: EventLog, n: int) -> list[str]:
    """n assistant messages in the log (as if replied earlier), for the feedback clients to label."""
    events = []
    for i in range(n):
        user = MessageEvent.create(f"bench-{i}", "user", f"question {i}", seq=0)
        events += [
            user,
            MessageEvent.create(f"bench-{i}", "assistant", f"answer {i}", seq=1, parent_id=user.event_id),
        ]
    log.append(events)
    return [e.event_id for e in events if e.role == "assistant"]


async def _post_feedback(url: str, jobs: list[list[tuple[str, str]]]) -> list[int]:
    limits = httpx.Limits(max_connections=len(jobs), max_keepalive_connections=len(jobs))
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:

        async def client(job: list[tuple[str, str]]) -> list[int]:
            codes = []
            for message_id, emoji in job:
                r = await http.post(url + "/feedback", json={"message_id": message_id, "labels": [emoji]})
                codes.append(r.status_code)
            return codes

        results = await asyncio.gather(*(client(j) for j in jobs))
    return [c for codes in results for c in codes]


def bench_feedback(
    root: Path, model: str, clients: int, per_client: int, runs: int
) -> list[tuple[str, float, str]]:
    server_rates, baseline_rates, checks = [], [], []
    total = clients * per_client
    for run in range(runs):
        home = make_bench_home(root / f"feedback-{run}", model, 8)
        os.environ["HOMINEM_HOME"], os.environ["HOMINEM_CONFIG_DIR"] = str(home), str(home / "config")
        settings = Settings()
        log = EventLog(settings.data_dir / "events")
        message_ids = seed_messages(log, (total + len(EMOJIS) - 1) // len(EMOJIS))
        labels = [(m, e) for m in message_ids for e in EMOJIS][:total]
        jobs = [labels[i::clients] for i in range(clients)]
        built = build(settings, "127.0.0.1", watch=False)
        with BackgroundServer(built) as url:
            t0 = time.perf_counter()
            codes = asyncio.run(_post_feedback(url, jobs))
            server_rates.append(total / (time.perf_counter() - t0))
        logged = [e for d in log.days() for e in log.read_day(d).events if isinstance(e, FeedbackEvent)]
        per_label = Counter((e.message_id, e.emoji) for e in logged)
        lost = sum(1 for lab in labels if per_label[lab] == 0)
        duplicated = sum(n - 1 for n in per_label.values() if n > 1)
        checks.append((Counter(codes).get(200, 0), len(logged), lost, duplicated))

        base_log = EventLog(root / f"baseline-{run}")

        def appender(job: list[tuple[str, str]], log: EventLog = base_log) -> None:
            for message_id, emoji in job:
                now = time.time()
                log.append(
                    [
                        FeedbackEvent(
                            event_id=content_hash("b", message_id, emoji, str(now)),
                            conversation_id="b",
                            timestamp=datetime.now(UTC),
                            kind="emoji",
                            message_id=message_id,
                            emoji=emoji,
                        )
                    ]
                )

        threads = [threading.Thread(target=appender, args=(j,)) for j in jobs]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        baseline_rates.append(total / (time.perf_counter() - t0))
    verdicts = ", ".join(
        f"run {i + 1}: {ok}/{total} HTTP 200, {n} in log, lost {lost}, duplicated {dup}"
        for i, (ok, n, lost, dup) in enumerate(checks)
    )
    return [
        (f"in-process EventLog.append, {clients} threads (baseline)", statistics.median(baseline_rates), ""),
        (f"POST /feedback, {clients} concurrent clients", statistics.median(server_rates), verdicts),
    ]


def bench_swap(root: Path, model: str, swaps: int) -> tuple[list[float], list[float], int, int]:
    from hominem_pipeline.adapters import AdapterRegistry, model_name_for_spec
    from hominem_pipeline.models import resolve_model
    from hominem_pipeline_tests.adapter_helpers import lora_model, perturb, publish

    home = make_bench_home(root / "swap", model, 8)
    os.environ["HOMINEM_HOME"], os.environ["HOMINEM_CONFIG_DIR"] = str(home), str(home / "config")
    settings = Settings()
    base = Path(resolve_model(model, settings.models_cache_dir))
    registry = AdapterRegistry(settings.artifacts_dir, model_name_for_spec(model))
    versions = []
    for seed in (1, 2):
        peft_model, _ = lora_model(base, seed=seed)
        perturb(peft_model, scale=0.01, seed=seed)
        versions.append(publish(registry, peft_model, base))
    registry.promote(versions[0])
    built = build(settings, "127.0.0.1", watch_interval_s=0.05)
    to_health, load_seconds, requests, failed = [], [], 0, 0
    with BackgroundServer(built) as url:
        stop = threading.Event()
        codes: list[int] = []

        def client() -> None:
            with httpx.Client(timeout=600) as http:
                while not stop.is_set():
                    codes.append(
                        http.post(url + "/generate", json={"prompt": "Say hi.", "max_tokens": 4}).status_code
                    )

        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            for i in range(swaps):
                target = versions[(i + 1) % 2]
                time.sleep(0.5)
                t0 = time.perf_counter()
                registry.promote(target)
                while httpx.get(url + "/health").json()["serving"]["adapter_version"] != target:
                    time.sleep(0.01)
                to_health.append(time.perf_counter() - t0)
                load_seconds.append(built.engine.last_swap.seconds)  # type: ignore[union-attr]
        finally:
            stop.set()
            for t in threads:
                t.join()
        requests, failed = len(codes), sum(1 for c in codes if c != 200)
    return to_health, load_seconds, requests, failed


def report_generation(root: Path, args: argparse.Namespace) -> None:
    home = make_bench_home(root / "generation", args.model, args.max_tokens)
    os.environ["HOMINEM_HOME"], os.environ["HOMINEM_CONFIG_DIR"] = str(home), str(home / "config")
    built = build(Settings(), "127.0.0.1", watch=False)
    with BackgroundServer(built) as url:
        gen = bench_generation(url, built, PROMPTS[: args.prompts], args.runs)
    print(
        f"\n1. Generation: {args.prompts} prompts, greedy, max {args.max_tokens} new tokens, {args.runs} runs; "
        "s/request and tokens/s: median pass; overhead: median of paired per-request ratios; added ms: "
        "median of (wall time - the server's own generation time) per request"
    )
    print(
        f"{'path':42s} {'s/request':>10s} {'tokens/s':>9s} {'tokens':>7s} {'overhead':>9s} {'added ms':>9s} "
        f"{'1 + added/baseline':>19s}"
    )
    base_latency = gen[0][1]
    for name, latency, tps, n_tokens, ratio, added_ms in gen:
        print(
            f"{name:42s} {latency:10.3f} {tps:9.1f} {n_tokens:7d} {ratio:8.3f}x {added_ms:9.1f} "
            f"{1 + added_ms / 1000 / base_latency:18.4f}x"
        )


def report_feedback(root: Path, args: argparse.Namespace) -> None:
    fb = bench_feedback(root, args.model, args.clients, args.events_per_client, args.runs)
    print(
        f"\n2. Feedback: {args.clients * args.events_per_client} distinct emoji labels, median of {args.runs} runs"
    )
    print(f"{'path':52s} {'events/s':>9s}")
    for name, rate, _ in fb:
        print(f"{name:52s} {rate:9.1f}")
    print("every label in the log exactly once? " + fb[1][2])


def report_swap(root: Path, args: argparse.Namespace) -> None:
    to_health, load_s, requests, failed = bench_swap(root, args.model, args.swaps)
    print(
        f"\n3. Swap under load (4 clients), {args.swaps} swaps between two adapters, pointer polled every 0.05 s"
    )
    print(
        f"pointer change -> /health shows the new adapter: median {statistics.median(to_health):.3f} s "
        f"(each: {', '.join(f'{s:.3f}' for s in to_health)})"
    )
    print(f"load + probe of the new set (engine): median {statistics.median(load_s):.3f} s")
    print(f"requests during the swaps: {requests}, failed: {failed}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--events-per-client", type=int, default=40)
    ap.add_argument("--swaps", type=int, default=3)
    ap.add_argument("--model", default="embedded:smollm2-135m-instruct")
    ap.add_argument(
        "--only",
        choices=["generation", "feedback", "swap"],
        action="append",
        help="run only these parts (repeatable; default: all)",
    )
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    print(
        f"load average before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}; "
        f"cpus: {os.cpu_count()}; model: {args.model}"
    )
    parts = set(args.only or ["generation", "feedback", "swap"])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if "generation" in parts:
            report_generation(root, args)
        if "feedback" in parts:
            report_feedback(root, args)
        if "swap" in parts:
            report_swap(root, args)
    print(f"\nload average after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
