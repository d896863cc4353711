"""The simulation loop: simulated days of a persona chatting with the running server, the daemon ticking
the schedules and the sensor on the same simulated clock, and a measurement at the end of every simulated
week. Plain Python: the server (a URL), the daemon (anything with `tick`, `wait`) and the meter come in
from the face that wires them (`hominem simulate`), so nothing here imports Dagster or the web stack."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from hominem_pipeline.clock import SimulatedClock
from hominem_pipeline.simulation.measure import Meter, WeekMeasure
from hominem_pipeline.simulation.persona import Persona
from hominem_pipeline.simulation.user import DayLog, SimulatedUser

#: When the user chats on a chat day, and when the daemon is asked what is due (UTC, simulated).
CHAT_AT = timedelta(hours=9)
TICKS = (timedelta(hours=13), timedelta(hours=23, minutes=59))


class Daemon(Protocol):
    outcomes: list[Any]
    sensor_said: dict[str, str]

    def tick(self, moment: datetime) -> Any: ...
    def wait(self) -> None: ...


@dataclass
class WeekRow:
    week: int
    ended: str  # the simulated moment the week's measurement was taken
    chat: dict[str, int] = field(default_factory=dict)  # summed DayLog counters
    failed_requests: list[str] = field(default_factory=list)
    runs: dict[str, str] = field(default_factory=dict)  # job -> "succeeded/requested"
    run_failures: list[str] = field(default_factory=list)
    decisions: list[str] = field(default_factory=list)  # gating decisions logged this week
    rhi: float | None = (
        None  # the latest full RHI measured (cycle or nightly; online updates have a partial one)
    )
    served: list[str] = field(default_factory=list)  # adapter versions that served replies, in order
    serving: str | None = None  # the adapter the server serves at the week's end (GET /health)
    last_swap: dict[str, Any] | None = None  # the server's last swap record
    swaps: int = 0  # times the served adapter changed since the week before (the server's hot swaps)
    measure: dict[str, Any] = field(default_factory=dict)
    sensors: dict[str, str] = field(default_factory=dict)  # what each sensor said last this week
    wall_s: float = 0.0


@dataclass
class SimulationReport:
    persona: str
    preference: str
    started: str
    weeks: list[WeekRow] = field(default_factory=list)

    @property
    def failed_requests(self) -> int:
        return sum(len(w.failed_requests) for w in self.weeks)


def _sum_days(days: list[DayLog]) -> dict[str, int]:
    keys = (
        "turns",
        "replies",
        "requests",
        "labels",
        "choices",
        "corrections",
        "facts_told",
        "facts_asked",
        "facts_answered",
        "satisfied",
    )
    return {k: sum(getattr(d, k) for d in days) for k in keys}


def simulate(
    persona: Persona,
    base_url: str,
    daemon: Daemon,
    meter: Meter | None,
    clock: SimulatedClock,
    weeks: int,
    read_health: Callable[[], tuple[list[dict[str, Any]], list[dict[str, Any]]]],
    current_adapter: Callable[[], str | None],
    on_week: Callable[[WeekRow], None] = lambda row: None,
) -> SimulationReport:
    """Run `weeks` simulated weeks from the clock's current moment (which must be a UTC midnight).
    `read_health` returns (RHI history rows, gating decisions) as the health module logs them;
    `current_adapter` the version the adapter registry's `current` names."""
    start = clock.peek()
    report = SimulationReport(persona.name, persona.preference.description, start.isoformat())
    user = SimulatedUser(persona, base_url)
    served_last: str | None = None
    serving_last: str | None = "(start)"
    seen_decisions = len(read_health()[1])
    seen_outcomes = 0
    daemon.tick(start)  # schedules count from here

    def measure_row(week: int, days: list[DayLog], t0: float) -> WeekRow:
        nonlocal served_last, serving_last, seen_decisions, seen_outcomes
        daemon.wait()  # the week's runs finish before its measurement
        row = WeekRow(week, clock.peek().isoformat(), _sum_days(days))
        for d in days:
            row.failed_requests += d.failed
            for v in d.served:
                if v != served_last:
                    row.served.append(v)
                    served_last = v
        health = user.serving(current_adapter())
        row.serving = (health.get("serving") or {}).get("adapter_version") or "base"
        row.last_swap = health.get("last_swap")
        row.swaps = int(serving_last != "(start)" and row.serving != serving_last)
        serving_last = row.serving
        outcomes = daemon.outcomes[seen_outcomes:]
        seen_outcomes = len(daemon.outcomes)
        requested, ok = Counter(o.job for o in outcomes), Counter(o.job for o in outcomes if o.success)
        row.runs = {job: f"{ok[job]}/{n}" for job, n in sorted(requested.items())}
        row.run_failures = [
            f"{o.job} ({o.trigger}, {o.partition or '-'}): {o.error}" for o in outcomes if o.success is False
        ]
        history, decisions = read_health()
        row.decisions = [
            f"{d.get('loop')}: {'+'.join(d.get('actions') or [])} ({d.get('reason', '')[:120]})"
            for d in decisions[seen_decisions:]
        ]
        seen_decisions = len(decisions)
        # the full index (a cycle's or the nightly replay's), not an online update's partial one
        rhis = [r["rhi"] for r in history if r.get("rhi") is not None and r.get("kind") != "online"]
        row.rhi = rhis[-1] if rhis else None
        row.sensors = dict(daemon.sensor_said)
        if meter is not None:
            m: WeekMeasure = meter.measure()
            row.measure = m.as_dict()
        row.wall_s = round(time.perf_counter() - t0, 1)
        on_week(row)
        return row

    try:
        report.weeks.append(measure_row(0, [], time.perf_counter()))  # before any use: the starting point
        chat_day = 0
        for week in range(1, weeks + 1):
            t0, days = time.perf_counter(), []
            for weekday in range(7):
                midnight = start + timedelta(days=(week - 1) * 7 + weekday)
                if weekday < persona.habits.chat_days_per_week:
                    clock.set(midnight + CHAT_AT)
                    days.append(user.chat_day(chat_day))
                    chat_day += 1
                for at in TICKS:
                    clock.set(midnight + at)
                    daemon.tick(midnight + at)
            report.weeks.append(measure_row(week, days, t0))
    finally:
        user.close()
    return report


def start_of_simulation(weeks: int, today: datetime | None = None) -> datetime:
    """The simulated period ends yesterday (UTC): the days it writes are finished days, as the daily
    partitions expect, and no day lies in the future of the real clock."""
    today = (today or datetime.now(UTC)).astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=7 * weeks + 1)
