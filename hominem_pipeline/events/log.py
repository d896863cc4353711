"""Append-only, fsync'd, one-file-per-day JSONL event log that any process may append to.

Appends take an exclusive `flock` on the day's file, write whole lines with O_APPEND, and fsync before
returning, so concurrent writers never interleave and an acknowledged event survives a crash. An append
that fails (disk full, an I/O error) is cut back off the file before the error is raised. A writer
that finds the file ending mid-line (a crashed writer's torn tail) first terminates that fragment, so the
torn bytes become one rejected line instead of corrupting the next record. Readers take no lock: they
only consume complete (newline-terminated) lines and leave a torn tail for a later read.

Writers that must not log an id twice (imports) use `append_new`: it holds a log-wide lock
(`root/.append_new.lock`) while it reads the ids already logged and appends the rest, so two such writers
running at once cannot both find an id missing and both append it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from pydantic import ValidationError

from hominem_pipeline import clock
from hominem_pipeline.atomic import AppendError, append_durable
from hominem_pipeline.events.schema import FeedbackEvent, MessageEvent, parse_event


def today_utc() -> date:
    return clock.now().date()


# An append failed (disk full, I/O error): `atomic.append_durable` cut it back off the file; the message
# names the file and says what was kept.
EventLogWriteError = AppendError


@dataclass
class RejectedLine:
    line_no: int
    reason: str


@dataclass
class DayRead:
    """What one pass over a day's file found."""

    events: list[MessageEvent | FeedbackEvent] = field(default_factory=list)
    complete_bytes: int = 0  # bytes of newline-terminated lines read
    lines: int = 0
    torn_tail_bytes: int = 0  # bytes after the last newline (a write in progress or a crashed one)
    rejected: list[RejectedLine] = field(default_factory=list)
    digest: str = ""  # sha256 of the complete lines: the partition's data version
    torn_tail_record: MessageEvent | FeedbackEvent | None = None  # a torn tail that is a whole record


def _describe(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(x) for x in e['loc']) or 'record'}: {e['msg']}" for e in exc.errors())


class EventLog:
    """`root/YYYY-MM-DD.jsonl`, one file per UTC day."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    def path_for(self, day: date) -> Path:
        return self.root / f"{day.isoformat()}.jsonl"

    def days(self) -> list[date]:
        out = []
        for p in self.root.glob("*.jsonl"):
            try:
                out.append(date.fromisoformat(p.stem))
            except ValueError:
                continue
        return sorted(out)

    def append(self, events: Iterable[MessageEvent | FeedbackEvent], day: date | None = None) -> int:
        """Append events to the day's file (default: today, UTC). Returns how many were written."""
        data = "".join(e.to_line() for e in events).encode("utf-8")
        if not data:
            return 0
        return append_durable(self.path_for(day or today_utc()), data, what="events")

    def scan_day(self, day: date, stats: DayRead) -> Iterator[MessageEvent | FeedbackEvent]:
        """Stream the day's complete lines as events, filling `stats` (bytes, lines, torn tail, rejected
        lines, digest) as it goes; a torn tail is counted, not parsed. Memory holds one line."""
        path = self.path_for(day)
        if not path.is_file():
            return
        h = hashlib.sha256()
        with path.open("rb") as fh:
            for raw in fh:
                if not raw.endswith(b"\n"):
                    stats.torn_tail_bytes = len(raw)
                    with contextlib.suppress(ValidationError):
                        # Cut exactly at its newline: a whole record, which the next append will close.
                        stats.torn_tail_record = parse_event(raw)
                    break
                h.update(raw)
                stats.lines += 1
                stats.complete_bytes += len(raw)
                if not raw.strip():
                    continue
                try:
                    yield parse_event(raw)
                except ValidationError as exc:
                    stats.rejected.append(RejectedLine(stats.lines, _describe(exc)))
        stats.digest = h.hexdigest()[:16]

    def read_day(self, day: date) -> DayRead:
        """Every complete line of the day's file, parsed (for small days and checks; ingestion streams)."""
        result = DayRead()
        result.events = list(self.scan_day(day, result))
        return result

    def iter_event_ids(self) -> Iterator[str]:
        """Ids of every complete record in the log, and of a torn tail that holds a whole record (a
        writer killed just before its newline): the next append closes that line, so it is logged."""
        for day in self.days():
            read = self.read_day(day)
            for e in read.events:
                yield e.event_id
            if read.torn_tail_record is not None:
                yield read.torn_tail_record.event_id

    @contextmanager
    def _new_ids_lock(self) -> Iterator[None]:
        """The log-wide lock `append_new` holds across its check and its append (released on exit, also
        when the process dies: flock belongs to the open file)."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / ".append_new.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def append_new(
        self, events: Sequence[MessageEvent | FeedbackEvent], day: date | None = None
    ) -> tuple[int, int]:
        """Append the events whose ids are not in the log yet (nor earlier in `events`) to the day's file.
        Returns (appended, already in the log). The check and the append happen under one lock."""
        with self._new_ids_lock():
            known = set(self.iter_event_ids())
            fresh = []
            for e in events:
                if e.event_id not in known:
                    known.add(e.event_id)
                    fresh.append(e)
            return self.append(fresh, day), len(events) - len(fresh)
