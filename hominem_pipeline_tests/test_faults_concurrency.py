"""Concurrency: 50 writer processes appending to the event log, and the server's `/feedback` under load,
while ingestion runs over and over in its own processes. Zero events lost or duplicated; a second
process opening the store while an ingester holds it gets the clear "busy, retry" error and nothing else."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest

from hominem_pipeline.events.ingest import ingest_day
from hominem_pipeline.events.log import EventLog
from hominem_pipeline.events.schema import MessageEvent
from hominem_pipeline.serving.server import BackgroundServer, build
from hominem_pipeline.settings import REPO_ROOT
from hominem_pipeline.store import TrainingDatabase
from hominem_pipeline.store.connection import StoreBusy
from hominem_pipeline_tests.faults import FULL, driver_env
from hominem_pipeline_tests.serving_fixtures import home_env, make_home

pytestmark = pytest.mark.faults

WRITERS = 50
BATCHES = 20 if FULL else 4
PER_BATCH = 5
FEEDBACK_REQUESTS = 400 if FULL else 60
DAY = date(2026, 11, 4)


def _writer(events_dir: str, writer: int, start: multiprocessing.synchronize.Event) -> None:
    """One writer process: most append as the server does, every fifth as an import does (`append_new`,
    which re-reads the log's ids under its lock on every call, so it is kept to the imports' share)."""
    log = EventLog(events_dir)
    start.wait()
    for b in range(BATCHES):
        events = [
            MessageEvent(
                event_id=f"w{writer}-{b}-{i}",
                conversation_id=f"w{writer}",
                role="user",
                seq=b * PER_BATCH + i,
                content=f"writer {writer} batch {b} line {i}",
                timestamp=datetime(2026, 11, 4, 12),
            )
            for i in range(PER_BATCH)
        ]
        if writer % 5:
            log.append(events, day=DAY)
        else:
            log.append_new(events, day=DAY)


def test_fifty_writer_processes_and_feedback_under_load_while_ingesting_lose_and_duplicate_nothing(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    home = make_home(tmp_path, tiny_model_dir)
    with home_env(home) as settings:
        events_dir = settings.data_dir / "events"
        built = build(settings, "127.0.0.1", watch=False)
        with BackgroundServer(built) as url, httpx.Client(timeout=120) as client:
            replies = [
                client.post(f"{url}/generate", json={"prompt": f"Say hello number {i}."}).json()
                for i in range(3)
            ]
            targets = [r["message_id"] for r in replies]
            acknowledged = [eid for r in replies for eid in (r["user_message_id"], r["message_id"])]

            ctx = multiprocessing.get_context("fork")
            start = ctx.Event()
            writers = [ctx.Process(target=_writer, args=(str(events_dir), w, start)) for w in range(WRITERS)]
            for p in writers:
                p.start()
            stop = threading.Event()
            busy: list[str] = []
            others: list[BaseException] = []
            ingests = [0]

            def ingest_loop() -> None:  # the pipeline's ingestion, in its own processes, again and again
                while not stop.is_set():
                    for day in (DAY.isoformat(), datetime.now(UTC).date().isoformat()):
                        run = subprocess.run(
                            [sys.executable, "-m", "hominem_pipeline_tests.fault_driver", "ingest", day],
                            env=driver_env(home),
                            cwd=REPO_ROOT,
                            capture_output=True,
                            text=True,
                            timeout=300,
                        )
                        if run.returncode != 0 and "StoreBusy" in run.stderr and "retry" in run.stderr:
                            busy.append("ingester: " + run.stderr.strip().splitlines()[-1])
                            continue  # the second writer held the store: the ingester retries, as asked
                        assert run.returncode == 0, run.stderr[-2000:]
                        ingests[0] += 1

            def second_writer_loop() -> None:  # another process's view: the store is busy, or free
                while not stop.is_set():
                    try:
                        TrainingDatabase(settings.database_path).close()
                    except StoreBusy as exc:
                        busy.append(str(exc))
                    except BaseException as exc:  # noqa: BLE001 (anything else is the failure asserted below)
                        others.append(exc)
                    stop.wait(0.05)

            def feedback(i: int) -> list[str]:
                r = client.post(
                    f"{url}/feedback",
                    json={"message_id": targets[i % len(targets)], "correction": f"Correction number {i}."},
                )
                assert r.status_code == 200, r.text
                return r.json()["event_ids"]

            background = [threading.Thread(target=ingest_loop), threading.Thread(target=second_writer_loop)]
            for t in background:
                t.start()
            start.set()
            with ThreadPoolExecutor(max_workers=8) as pool:
                acknowledged += [eid for ids in pool.map(feedback, range(FEEDBACK_REQUESTS)) for eid in ids]
            for p in writers:
                p.join(timeout=600)
                assert p.exitcode == 0
            stop.set()
            for t in background:
                t.join(timeout=600)

    assert ingests[0] >= 1 and not others, others
    assert all("busy" in m and "retry" in m for m in busy)
    expected = {f"w{w}-{b}-{i}" for w in range(WRITERS) for b in range(BATCHES) for i in range(PER_BATCH)}
    expected |= set(acknowledged)
    log = EventLog(events_dir)
    logged = Counter(e.event_id for day in log.days() for e in log.read_day(day).events)
    assert set(logged) == expected and max(logged.values()) == 1
    assert all(not log.read_day(day).rejected and not log.read_day(day).torn_tail_bytes for day in log.days())
    with TrainingDatabase(settings.database_path) as db:
        for day in log.days():
            ingest_day(db, log, day)
        stored = [
            r["event_id"]
            for r in db.query(
                "SELECT event_id FROM conversation_messages UNION ALL SELECT event_id FROM feedback_events"
            )
        ]
    assert len(stored) == len(set(stored)) == len(expected)


def test_models_loaded_from_many_threads_at_once_all_load(tiny_model_dir: Path) -> None:
    """The server's hot swap, the daemon's runs and the simulation's meter load models in threads of one
    process. transformers' loading is not thread-safe on its own (a model built beside another could come
    out with meta tensors: a simulated day's teacher labels failed so); every load holds one lock."""
    import torch

    from hominem_pipeline.adapters import AdapterRegistry
    from hominem_pipeline.models import load_causal_lm
    from hominem_pipeline_tests.adapter_helpers import lora_model, publish

    registry = AdapterRegistry(tiny_model_dir.parent / "race-artifacts", "tiny")
    version = publish(registry, lora_model(tiny_model_dir)[0], tiny_model_dir)

    def load(i: int) -> bool:
        model = (
            load_causal_lm(str(tiny_model_dir))[0]
            if i % 2
            else registry.load(version, base_model_path=str(tiny_model_dir))[0]
        )
        return all(p.device.type != "meta" and bool(torch.isfinite(p).all()) for p in model.parameters())

    with ThreadPoolExecutor(6) as pool:
        assert all(pool.map(load, range(12)))
