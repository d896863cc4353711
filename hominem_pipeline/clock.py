"""The one "now" of the code that stamps events: the server's messages and feedback and the event log's
day files. Real UTC time, unless a simulation (`hominem simulate`) installs its own clock, so that a
simulated user's days land in their own day files and the schedules that read them see simulated days.
Plain Python; the simulated clock is process-wide, so only a process that runs a simulation installs one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

_source: Callable[[], datetime] | None = None


def now() -> datetime:
    """The current time, timezone-aware UTC."""
    return _source() if _source is not None else datetime.now(UTC)


class SimulatedClock:
    """A clock moved by hand: `set` jumps to a moment, `advance` moves forward. Every reading is a
    microsecond later than the one before, so two events stamped in one step still come in order."""

    def __init__(self, start: datetime):
        if start.tzinfo is None:
            raise ValueError("start: a simulated clock needs a timezone-aware time")
        self._t = start.astimezone(UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            self._t += timedelta(microseconds=1)
            return self._t

    def set(self, moment: datetime) -> None:
        with self._lock:
            if moment.astimezone(UTC) < self._t:
                raise ValueError(f"a simulated clock only moves forward: {moment} is before {self._t}")
            self._t = moment.astimezone(UTC)

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._t += delta
            return self._t

    def peek(self) -> datetime:
        with self._lock:
            return self._t


@contextmanager
def installed(clock: Callable[[], datetime]) -> Iterator[Callable[[], datetime]]:
    """Make `clock` this process's "now" for the block; the real clock comes back after it."""
    global _source
    previous, _source = _source, clock
    try:
        yield clock
    finally:
        _source = previous
