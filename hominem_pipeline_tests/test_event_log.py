"""The event log, its ingestion into DuckDB, and `hominem import conversations`: appends survive,
ingesting twice or after a crash stores every record exactly once, and bad input names line and field."""

from __future__ import annotations

import json
import multiprocessing
import shutil
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from hominem_pipeline.cli import main
from hominem_pipeline.events import EventLog, FeedbackEvent, MessageEvent, parse_event
from hominem_pipeline.events.importers import ChatImportError, import_conversations, read_chat_file
from hominem_pipeline.events.ingest import ingest_day
from hominem_pipeline.settings import REPO_ROOT
from hominem_pipeline.store import TrainingDatabase

DAY = date(2026, 3, 1)
EXAMPLES = REPO_ROOT / "examples" / "conversations"


def _conversation(cid: str, n_turns: int = 2) -> list[MessageEvent]:
    events = []
    for t in range(n_turns):
        events.append(MessageEvent.create(cid, "user", f"question {t} of {cid}", seq=2 * t))
        events.append(MessageEvent.create(cid, "assistant", f"answer {t} of {cid}", seq=2 * t + 1))
    return events


def _append_many(root: str, worker: int) -> None:
    log = EventLog(root)
    for i in range(25):
        log.append(_conversation(f"w{worker}-c{i}", 1), day=DAY)


def test_concurrent_writers_never_interleave(tmp_path: Path) -> None:
    procs = [multiprocessing.Process(target=_append_many, args=(str(tmp_path), w)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    read = EventLog(tmp_path).read_day(DAY)
    assert read.rejected == [] and read.torn_tail_bytes == 0
    assert len(read.events) == 3 * 25 * 2


def test_record_format_is_validated_naming_the_field() -> None:
    with pytest.raises(ValidationError, match="role"):
        parse_event(
            json.dumps(
                {
                    "type": "message",
                    "event_id": "e1",
                    "conversation_id": "c",
                    "role": "robot",
                    "content": "hi",
                    "timestamp": "2026-03-01T10:00:00Z",
                }
            )
        )
    with pytest.raises(ValidationError, match="emoji"):
        FeedbackEvent(
            event_id="f",
            conversation_id="c",
            timestamp="2026-03-01T10:00:00Z",
            kind="emoji",
            message_id="m",
            emoji="👍",
        )
    with pytest.raises(ValidationError, match="same message"):
        FeedbackEvent(
            event_id="f",
            conversation_id="c",
            timestamp="2026-03-01T10:00:00Z",
            kind="preference",
            chosen_message_id="m",
            rejected_message_id="m",
        )
    ok = FeedbackEvent(
        event_id="f",
        conversation_id="c",
        timestamp="2026-03-01T10:00:00Z",
        kind="emoji",
        message_id="m",
        emoji="😟-2",
    )
    assert ok.axes == {"valence": -1.0}


def test_ingest_twice_adds_nothing_twice(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events")
    events = _conversation("c1") + _conversation("c2")
    log.append(events, day=DAY)
    log.append(
        [
            FeedbackEvent(
                event_id="fb1",
                conversation_id="c1",
                timestamp="2026-03-01T10:00:00Z",
                kind="emoji",
                message_id=events[1].event_id,
                emoji="😊+2",
            )
        ],
        day=DAY,
    )
    with TrainingDatabase(tmp_path / "db.duckdb") as db:
        first = ingest_day(db, log, DAY)
        again = ingest_day(db, log, DAY)
        assert (first.new_messages, first.new_feedback) == (8, 1)
        assert (again.new_messages, again.new_feedback, again.already_stored) == (0, 0, 9)
        assert db.scalar("SELECT count(*) FROM conversation_messages") == 8
        assert db.get_feedback()[0]["axes"] == {"valence": 1.0}


def test_a_label_the_user_turned_off_no_longer_counts_even_a_day_later(tmp_path: Path) -> None:
    # The chat page toggles labels: set 😊+2, turn it off the next day, set 😟-1 twice (a double tap), and
    # set, clear and set again 🚀. What training reads is the labels as they stand: 😟-1 once, 🚀 once.
    log = EventLog(tmp_path / "events")
    events = _conversation("c1", 1)
    reply = events[1].event_id
    log.append(events, day=DAY)

    def fb(eid: str, kind: str, emoji: str, when: str) -> FeedbackEvent:
        return FeedbackEvent(
            event_id=eid, conversation_id="c1", timestamp=when, kind=kind, message_id=reply, emoji=emoji
        )

    log.append(
        [
            fb("f1", "emoji", "😊+2", "2026-03-01T10:00:00Z"),
            fb("f2", "emoji", "😟-1", "2026-03-01T10:01:00Z"),
            fb("f3", "emoji", "😟-1", "2026-03-01T10:02:00Z"),
            fb("f4", "emoji", "🚀", "2026-03-01T10:03:00Z"),
            fb("f5", "emoji_retracted", "🚀", "2026-03-01T10:04:00Z"),
            fb("f6", "emoji", "🚀", "2026-03-01T10:05:00Z"),
        ],
        day=DAY,
    )
    next_day = date(2026, 3, 2)
    log.append([fb("f7", "emoji_retracted", "😊+2", "2026-03-02T09:00:00Z")], day=next_day)
    with TrainingDatabase(tmp_path / "db.duckdb") as db:
        ingest_day(db, log, DAY)
        ingest_day(db, log, next_day)
        for rows in (
            db.get_feedback(kind="emoji"),
            db.get_feedback(kind="emoji", days=[DAY]),
            db.get_feedback(),
        ):
            assert sorted((r["event_id"], r["emoji"]) for r in rows) == [("f3", "😟-1"), ("f6", "🚀")]


def test_crash_mid_file_loses_nothing_and_stores_nothing_twice(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events")
    log.append(_conversation("c1"), day=DAY)
    path = log.path_for(DAY)
    complete = path.read_bytes()
    # A writer crashed half-way through a record: the torn tail is left alone, not half-ingested.
    torn = _conversation("c2")[0].to_line().encode()
    with path.open("ab") as fh:
        fh.write(torn[: len(torn) // 2])
    with TrainingDatabase(tmp_path / "db.duckdb") as db:
        r = ingest_day(db, log, DAY)
        assert r.new_messages == 4 and r.torn_tail_bytes == len(torn) // 2 and r.rejected == []
        # The next writer closes the torn line (one rejected line) and its own records arrive whole.
        later = _conversation("c3")
        log.append(later, day=DAY)
        r = ingest_day(db, log, DAY)
        assert r.new_messages == 4 and r.torn_tail_bytes == 0
        assert [x.line_no for x in r.rejected] == [5]
        stored = {row["event_id"] for row in db.query("SELECT event_id FROM conversation_messages")}
        assert {e.event_id for e in later} <= stored and len(stored) == 8

    # The ingester crashed after storing part of a day (here: the first two lines), then ran again.
    log2 = EventLog(tmp_path / "events2")
    log2.root.mkdir()
    log2.path_for(DAY).write_bytes(b"".join(complete.splitlines(keepends=True)[:2]))
    with TrainingDatabase(tmp_path / "db2.duckdb") as db:
        assert ingest_day(db, log2, DAY).new_messages == 2
        shutil.copy(path.with_name(path.name), log2.path_for(DAY))
        r = ingest_day(db, log2, DAY)
        assert r.new_messages == 4 + 4 - 2 and r.already_stored == 2
        assert db.scalar("SELECT count(*) FROM conversation_messages") == 8


def test_import_openai_and_lmstudio_twice_adds_nothing(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events")
    first = import_conversations(EXAMPLES / "sample_conversations.jsonl", log)
    assert first.format == "openai" and first.conversations == 8 and first.appended == first.messages
    again = import_conversations(EXAMPLES / "sample_conversations.jsonl", log)
    assert again.appended == 0 and again.already_in_log == first.messages
    lm = import_conversations(EXAMPLES / "lmstudio_conversation.json", log)
    assert lm.format == "lmstudio" and lm.appended == 3
    _, [events], _ = read_chat_file(EXAMPLES / "lmstudio_conversation.json")
    # LM Studio keeps regenerated replies as versions of one message: each is a draft of that reply.
    assert [(e.role, e.draft_index) for e in events] == [("user", None), ("assistant", 0), ("assistant", 1)]


class _SlowReadLog(EventLog):
    """A real log whose reader dawdles after listing the ids already logged: the window in which, without
    one lock over check and append, a second importer finds the same ids missing."""

    def iter_event_ids(self):
        ids = list(super().iter_event_ids())
        time.sleep(0.5)
        yield from ids


def _import_into(root: str, path: str, start, results) -> None:
    start.wait()
    r = import_conversations(path, _SlowReadLog(root))
    results.put((r.appended, r.already_in_log))


def test_two_concurrent_imports_of_one_file_log_each_message_once(tmp_path: Path) -> None:
    chats = tmp_path / "chats.jsonl"
    chats.write_text(
        "".join(
            json.dumps(
                {
                    "messages": [
                        {"role": "user", "content": f"question {i}"},
                        {"role": "assistant", "content": f"answer {i}"},
                    ]
                }
            )
            + "\n"
            for i in range(200)
        )
    )
    start, results = multiprocessing.Barrier(2), multiprocessing.Queue()
    procs = [
        multiprocessing.Process(
            target=_import_into, args=(str(tmp_path / "events"), str(chats), start, results)
        )
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    reports = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join()
    log = EventLog(tmp_path / "events")
    [day] = log.days()
    events = log.read_day(day).events
    assert len(events) == len({e.event_id for e in events}) == 400  # each message once
    assert sorted(reports) == [(0, 400), (400, 0)]  # one import appended everything, the other nothing


def test_imported_messages_keep_their_time_or_share_one_import_time_in_order(tmp_path: Path) -> None:
    chats = tmp_path / "chats.jsonl"
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"question {i}"},
                {"role": "assistant", "content": f"answer {i}"},
            ]
        }
        for i in range(300)
    ]
    rows[0]["timestamp"] = "2025-06-01T10:00:00Z"  # the source knows when the conversation took place
    rows[1]["messages"][0]["timestamp"] = "2025-06-02T08:00:00+02:00"  # ... or when a message was said
    chats.write_text("".join(json.dumps(r) + "\n" for r in rows))
    before = datetime.now(UTC).replace(tzinfo=None)
    _, conversations, _ = read_chat_file(chats)
    after = datetime.now(UTC).replace(tzinfo=None)

    assert [e.timestamp for e in conversations[0]] == [datetime(2025, 6, 1, 10, 0)] * 2
    assert conversations[1][0].timestamp == datetime(2025, 6, 2, 6, 0)
    # Without a source time: one import time for the whole file (a 300-line file no longer runs 300 s into
    # the future), and `seq` keeps each conversation's order.
    rest = [e for conv in conversations[2:] for e in conv]
    assert len({e.timestamp for e in rest}) == 1 and before <= rest[0].timestamp <= after
    assert conversations[1][1].timestamp == rest[0].timestamp
    assert all(
        [e.seq for e in conv] == [0, 1] and [e.role for e in conv] == ["user", "assistant"]
        for conv in conversations
    )


def test_import_errors_name_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps(
            {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
        )
        + "\n"
        + json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "x"}]})
        + "\n"
    )
    with pytest.raises(ChatImportError, match=r"bad.jsonl:2: messages\.1\.role"):
        read_chat_file(bad)
    bad.write_text("{not json\n")
    with pytest.raises(ChatImportError, match=r"bad.jsonl:1: not valid JSON"):
        read_chat_file(bad)
    lm = tmp_path / "lm.json"
    lm.write_text(json.dumps({"messages": [{"versions": [{"role": "narrator", "content": "x"}]}]}))
    with pytest.raises(ChatImportError, match=r"messages\.0\.versions\.0\.role"):
        read_chat_file(lm)


def test_cli_import_conversations(hominem_home: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["import", "conversations", str(EXAMPLES / "sample_conversations.jsonl")])
    assert result.exit_code == 0, result.output
    assert "8 conversations" in result.output and "0 already in the log" in result.output
    again = runner.invoke(main, ["import", "conversations", str(EXAMPLES / "sample_conversations.jsonl")])
    assert "0 appended" in again.output
    assert len(list((hominem_home / "data" / "events").glob("*.jsonl"))) == 1
    bad = hominem_home / "bad.jsonl"
    bad.write_text('{"messages": []}\n')
    failed = runner.invoke(main, ["import", "conversations", str(bad)])
    assert failed.exit_code != 0 and "bad.jsonl:1: messages" in failed.output
