"""Durability of publication: every file and folder of a version is fsync'd before the rename that
publishes it, and the leftovers of killed writers (staging folders, temp files) are swept by the next
writer or reader, while those of writers still at work are left alone."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from pathlib import Path

import pytest

from hominem_pipeline.atomic import open_atomic, publish_version, staging_dir, sweep_leftovers, verify_version
from hominem_pipeline.events.log import EventLog

pytestmark = pytest.mark.faults


def test_every_file_and_folder_is_fsynced_before_the_publishing_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: str, dst: str) -> None:
        calls.append(("replace", f"{src} -> {dst}"))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)

    def write(folder: Path) -> None:  # what save_pretrained does: plain writes, no fsync of its own
        (folder / "adapter_model.safetensors").write_bytes(b"w" * 1000)
        (folder / "nested").mkdir()
        (folder / "nested" / "tokenizer.json").write_text("{}")

    published = publish_version(tmp_path / "root", write, lambda v: {"note": "test"})
    [publish_at] = [
        i for i, (op, what) in enumerate(calls) if op == "replace" and what.endswith(published.version)
    ]
    staged = calls[publish_at][1].split(" -> ")[0]
    synced_before = {what for op, what in calls[:publish_at] if op == "fsync"}
    for rel in ("adapter_model.safetensors", "nested/tokenizer.json", "METADATA.json", "nested", ""):
        assert os.path.normpath(os.path.join(staged, rel)) in synced_before, rel
    # ... and the folder holding the new name afterwards, so the rename itself is durable.
    assert ("fsync", str(tmp_path / "root")) in calls[publish_at:]
    verify_version(published.path)


def _hold(parent: str, ready: multiprocessing.synchronize.Event) -> None:
    """A writer mid-publication: a staging folder with a file in it and a temp file beside a pointer."""
    with staging_dir(Path(parent)) as staged, open_atomic(Path(parent) / "current.json") as fh:
        (staged / "adapter_model.safetensors").write_bytes(b"x" * 4096)
        fh.write(b'{"version": "half')
        ready.set()
        signal.pause()


def test_leftovers_of_a_killed_writer_are_swept_and_reported_but_a_live_writers_are_not(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    writer = ctx.Process(target=_hold, args=(str(tmp_path), ready))
    writer.start()
    try:
        assert ready.wait(60)
        litter = sorted(p.name for p in tmp_path.iterdir())
        assert any(n.startswith(".staging-") for n in litter) and any(n.endswith(".tmp") for n in litter)
        assert sweep_leftovers(tmp_path).count == 0  # its writer is alive: work in progress, not litter
        assert sorted(p.name for p in tmp_path.iterdir()) == litter
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.join()
    with caplog.at_level(logging.WARNING):
        swept = sweep_leftovers(tmp_path)
    assert swept.count == 2 and swept.bytes >= 4096
    assert list(tmp_path.iterdir()) == []
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith(f"swept 2 leftover(s) of interrupted writes ({swept.bytes} bytes) from {tmp_path}")


def test_a_record_cut_exactly_at_its_newline_is_logged_once_after_the_retry(tmp_path: Path) -> None:
    from hominem_pipeline_tests.test_event_log import DAY, _conversation

    log = EventLog(tmp_path / "events")
    first, second = _conversation("c1"), _conversation("c2")
    log.append(first, day=DAY)
    with log.path_for(DAY).open("ab") as fh:  # a writer killed after the record's last byte, before "\n"
        fh.write(second[0].to_line().encode().rstrip(b"\n"))
    assert log.append_new(second, day=DAY) == (len(second) - 1, 1)  # the import's retry
    read = log.read_day(DAY)
    assert [e.event_id for e in read.events] == [e.event_id for e in first + second]
    assert not read.rejected and not read.torn_tail_bytes


def test_a_conversation_label_and_the_clearing_of_its_failure_land_together_or_not_at_all(
    tmp_path: Path,
) -> None:
    from hominem_pipeline.store import TrainingDatabase

    row = {
        "label_id": "l1",
        "message_id": "m1",
        "conversation_id": "c1",
        "kind": "reward",
        "rater": "t",
        "schema_hash": "s",
        "vector": {"empathy": 0.5},
        "reward_intensity": 0.5,
        "safety_score": 1.0,
        "event_day": "2026-11-22",
    }
    with TrainingDatabase(tmp_path / "store.duckdb") as db:
        db.record_conversation_label_failure({**row, "reason": "timeout"})
        # The second statement fails (its table is gone): the first must not stay behind on its own.
        db.con.execute("ALTER TABLE conversation_label_failures RENAME TO failures_elsewhere")
        with pytest.raises(Exception, match="conversation_label_failures"):
            db.insert_conversation_label(row)
        assert db.scalar("SELECT count(*) FROM conversation_labels") == 0
        db.con.execute("ALTER TABLE failures_elsewhere RENAME TO conversation_label_failures")
        db.insert_conversation_label(row)
        assert db.scalar("SELECT count(*) FROM conversation_labels") == 1
        assert db.scalar("SELECT count(*) FROM conversation_label_failures") == 0
