"""Processes killed with SIGKILL (not exceptions) at chosen or random points: during `hominem import
conversations` of a large file, during ingestion into DuckDB, during a training cycle, during adapter and
reward-model publication and during a pointer move. Afterwards nothing is lost or stored twice, every
pointer names an intact version, no torn file is visible, and the next run sweeps the leftovers (saying
so) and succeeds. The bounded form (in `make test`) uses a few named kill points; `make faults` draws many
at random (see `faults.py`)."""

from __future__ import annotations

import json
import logging
import shutil
from datetime import date, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from hominem_pipeline.cli import main as hominem
from hominem_pipeline.events.importers import read_chat_file
from hominem_pipeline.events.ingest import ingest_day
from hominem_pipeline.events.log import EventLog
from hominem_pipeline.events.schema import MessageEvent
from hominem_pipeline.store import TrainingDatabase
from hominem_pipeline_tests.fault_driver import build_models, publish_models
from hominem_pipeline_tests.faults import (
    FULL,
    FULL_POINTS,
    assert_artifacts_consistent,
    calibrate,
    leftovers,
    rng,
    run_driver,
)
from hominem_pipeline_tests.serving_fixtures import home_env, make_home, registry_of
from hominem_pipeline_tests.test_training_faces import _seed_data

pytestmark = pytest.mark.faults


def _swept(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The sweep's report lines logged since the last `caplog.clear()`."""
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("swept ")]


def _cli(*args: str) -> str:
    """The next run, in this process (the killed one was a real child process)."""
    result = CliRunner().invoke(hominem, list(args))
    assert result.exit_code == 0, result.output
    return result.output


# -- the event log: import and ingestion ---------------------------------------------------------------
def _chat_file(path: Path, conversations: int) -> Path:
    with path.open("w") as fh:
        for i in range(conversations):
            fh.write(
                json.dumps(
                    {
                        "messages": [
                            {"role": "user", "content": f"Question {i}: what is {i} times {i + 7}?"},
                            {"role": "assistant", "content": f"{i} times {i + 7} is {i * (i + 7)}."},
                            {"role": "user", "content": f"Thanks! Remember that my locker number is {i}."},
                            {"role": "assistant", "content": f"Noted: your locker number is {i}."},
                        ]
                    }
                )
                + "\n"
            )
    return path


def _log_ids(home: Path) -> tuple[list[str], int]:
    """Every event id of complete lines in the home's log (repeats kept), and the rejected lines."""
    log = EventLog(home / "data" / "events")
    ids, rejected = [], 0
    for day in log.days():
        read = log.read_day(day)
        ids += [e.event_id for e in read.events]
        rejected += len(read.rejected)
    return ids, rejected


def _stored_once(home: Path, db_path: Path) -> list[str]:
    log = EventLog(home / "data" / "events")
    with TrainingDatabase(db_path) as db:
        for day in log.days():
            ingest_day(db, log, day)
        return [r["event_id"] for r in db.query("SELECT event_id FROM conversation_messages")]


def test_sigkill_during_a_large_import_loses_nothing_and_logs_each_message_once(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    home = make_home(tmp_path, tiny_model_dir)
    chats = _chat_file(tmp_path / "chats.jsonl", 3000 if FULL else 1500)
    _, conversations, _ = read_chat_file(chats)
    expected = {e.event_id for conv in conversations for e in conv}
    args = ("cli", "import", "conversations", str(chats))
    r = rng("import")
    if FULL:  # every traced operation is a candidate, and timers land anywhere in the parse
        ops, seconds, _ = calibrate(make_home(tmp_path / "calibration", tiny_model_dir), *args)
        kills = [{"kill_at": r.randrange(1, len(ops) + 1)} for _ in range(FULL_POINTS // 2)]
        kills += [{"kill_after_s": r.uniform(0, seconds)} for _ in range(FULL_POINTS // 2)]
    else:  # the one big append, cut part-way through a record by the kill
        kills = [{"kill_on": ".jsonl", "nth": 1}]
    for kill in kills:
        run = run_driver(home, *args, **kill)
        # A named point is always reached; a drawn one may fall after the last write.
        assert run.killed or ("kill_on" not in kill and run.returncode == 0), run.stderr[-2000:]
        ids, rejected = _log_ids(home)
        assert set(ids) <= expected and rejected <= 1  # a torn tail is never read as a record
    with home_env(home):
        _cli("import", "conversations", str(chats))
        ids, rejected = _log_ids(home)
        assert set(ids) == expected and len(ids) == len(expected)  # each message logged exactly once
        # Each kill leaves at most one torn fragment, closed into one rejected line by the next writer.
        assert rejected <= len(kills)
        stored = _stored_once(home, tmp_path / "store.duckdb")
        assert len(stored) == len(set(stored)) == len(expected)
        _cli("import", "conversations", str(chats))
        assert len(_log_ids(home)[0]) == len(ids)  # a second import appends nothing


def test_sigkill_during_ingestion_leaves_every_event_stored_exactly_once(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    home = make_home(tmp_path, tiny_model_dir)
    day = date(2026, 11, 2)
    log = EventLog(home / "data" / "events")
    n = 40_000 if FULL else 12_000
    log.append(
        [
            MessageEvent(
                event_id=f"m{i}",
                conversation_id=f"c{i // 4}",
                role="user" if i % 2 == 0 else "assistant",
                content=f"message {i}",
                timestamp=datetime(2026, 11, 2, 10),
                seq=i % 4,
            )
            for i in range(n)
        ],
        day=day,
    )
    r = rng("ingest")
    if FULL:  # how long one whole ingestion takes here, to spread the kills over it
        calibration = make_home(tmp_path / "calibration", tiny_model_dir)
        shutil.copytree(home / "data" / "events", calibration / "data" / "events")
        _, seconds, _ = calibrate(calibration, "ingest", day.isoformat())
        delays = [r.uniform(0, seconds) for _ in range(FULL_POINTS)]
    else:
        delays = [0.3, 0.8]
    for delay in delays:  # repeated crashes of the ingester, each at a random moment
        run = run_driver(home, "ingest", day.isoformat(), kill_after_s=delay)
        assert run.killed or run.returncode == 0, run.stderr[-2000:]
    final = run_driver(home, "ingest", day.isoformat())
    assert final.returncode == 0, final.stderr[-2000:]
    assert final.json()["new_messages"] + final.json()["already_stored"] == n
    with TrainingDatabase(home / "data" / "hominem.duckdb") as db:
        assert db.scalar("SELECT count(*) FROM conversation_messages") == n
        assert db.scalar("SELECT count(DISTINCT event_id) FROM conversation_messages") == n


# -- artifacts: training, publication, pointers --------------------------------------------------------
def test_sigkill_during_publication_and_pointer_moves_leaves_only_intact_versions(
    tmp_path: Path, tiny_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    home = make_home(tmp_path, tiny_model_dir)
    pointer = f"{tiny_model_dir.name}/current"
    with home_env(home) as settings:
        first = publish_models(settings, *build_models(settings, 1), seed=1)
    r = rng("publish")
    if FULL:
        ops, _, _ = calibrate(make_home(tmp_path / "calibration", tiny_model_dir), "publish", "1")
        kills = [{"kill_at": r.randrange(1, len(ops) + 1)} for _ in range(FULL_POINTS)]
    else:  # the adapter's publishing rename, then the reward model's `current` moving (its 2nd pointer)
        kills = [{"kill_on": "replace .staging-", "nth": 1}, {"kill_on": "-> current.json", "nth": 2}]
    for seed, kill in enumerate(kills, start=2):
        run = run_driver(home, "publish", str(seed), **kill)
        assert run.killed, (kill, run.stdout, run.stderr[-2000:])
        # Every pointer names what it named before or the new version, never a torn or missing one.
        seen = assert_artifacts_consistent(home, tmp_path / "check")
        assert seen[pointer] is not None  # `current` was set before the kill and still names a good version
    litter = leftovers(home)
    assert FULL or litter, "both named kill points leave a staging folder or a temp file behind"
    caplog.clear()
    with caplog.at_level(logging.WARNING), home_env(home) as settings:  # the next run, to the end
        last = publish_models(settings, *build_models(settings, len(kills) + 1), seed=len(kills) + 1)
        assert not litter or _swept(caplog)
        assert leftovers(home) == []
        assert assert_artifacts_consistent(home, tmp_path / "check") == {pointer: last["adapter"]}
        assert last["adapter"] != first["adapter"]

        flips = 7
        kill = {"kill_at": r.randrange(1, 6 * flips)} if FULL else {"kill_on": "-> current.json", "nth": 3}
        run = run_driver(home, "flip", str(flips), **kill)
        assert run.killed or ("kill_on" not in kill and run.returncode == 0)
        seen = assert_artifacts_consistent(home, tmp_path / "check")
        assert seen[pointer] in registry_of(settings).version_names()
        registry_of(settings).promote(first["adapter"])  # the next pointer move
        assert leftovers(home) == []
        assert registry_of(settings).resolve("current").name == first["adapter"]


def test_sigkill_during_a_training_cycle_publishes_nothing_torn_and_the_next_cycle_succeeds(
    tmp_path: Path, tiny_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    home = make_home(tmp_path, tiny_model_dir)
    train = ("train", "--max-steps", "3", "--set", "diversity.enabled=false", "--no-store", "--no-progress")
    with home_env(home):
        _seed_data(home)
    r = rng("train")
    if FULL:
        ops, seconds, _ = calibrate(home, "cli", *train)
        shutil.rmtree(home / "artifacts" / "lora")
        kills = [{"kill_at": r.randrange(1, len(ops) + 1)} for _ in range(FULL_POINTS // 2)]
        kills += [{"kill_after_s": r.uniform(0, seconds)} for _ in range(FULL_POINTS // 2)]
    else:  # the folder is staged and fsync'd; killed just before the rename that publishes it
        kills = [{"kill_on": "replace .staging-", "nth": 1}]
    root = home / "artifacts" / "lora" / tiny_model_dir.name
    for kill in kills:
        run = run_driver(home, "cli", *train, **kill)
        assert run.killed or ("kill_on" not in kill and run.returncode == 0), run.stderr[-2000:]
        assert_artifacts_consistent(home, tmp_path / "check")
    litter = leftovers(home)
    assert FULL or litter, "the kill before the publishing rename leaves a staging folder"
    caplog.clear()
    with caplog.at_level(logging.WARNING), home_env(home):
        output = _cli(*train)
    assert not litter or _swept(caplog)
    assert leftovers(home) == []
    version = output.split("adapter ", 1)[1].split()[0]
    assert (root / version / "adapter_model.safetensors").is_file()
    assert_artifacts_consistent(home, tmp_path / "check")
