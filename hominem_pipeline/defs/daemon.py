"""The Dagster daemon's part, done in one process on a clock it is given: at each `tick(moment)` every
schedule of the definitions is evaluated at each of its cron times since the last tick, then every sensor
once, and the runs they request are executed one at a time on a worker thread (the run queue with a
limit of one), against a real on-disk Dagster instance. What `hominem simulate` uses so that the
schedules' and the sensor's notion of time is the simulated clock's; the schedule and sensor functions
themselves are the ones `make dev`'s daemon runs. Thin: it decides nothing, it only calls and records.

`dagster._utils.schedules.cron_string_iterator` is the daemon's own cron reader (private to Dagster; the
version is pinned in constraints.txt).
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import dagster as dg
from dagster._utils.schedules import cron_string_iterator

from hominem_pipeline.defs.jobs import RETRAINING_TAG

#: Run config every run gets: the console logger at WARNING (a simulation prints its own report).
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass
class RunOutcome:
    job: str
    trigger: str  # "schedule:<name>" or "sensor:<name>"
    at: str  # the simulated moment it was requested
    partition: str | None
    run_id: str | None = None
    success: bool | None = None  # None while queued or running
    error: str | None = None
    seconds: float | None = None
    tags: dict[str, str] = field(default_factory=dict)
    training: bool = False  # a run of a job tagged RETRAINING_TAG (a cycle or an online update)


@dataclass
class TickLog:
    moment: str
    requested: list[RunOutcome] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # "schedule:x" / "sensor:y" -> its skip reason


class InProcessDaemon:
    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance, resources: dict[str, Any]):
        self.defs, self.instance, self.resources = defs, instance, resources
        self.repository = defs.get_repository_def()
        self.cursors: dict[str, str | None] = {}
        self.sensor_said: dict[str, str] = {}  # sensor -> what its last evaluation said
        self._running: RunOutcome | None = None
        self._keys: set[tuple[str, str]] = set()
        self.last: datetime | None = None
        self.outcomes: list[RunOutcome] = []
        self._queue: queue.Queue[tuple[RunOutcome, dg.RunRequest] | None] = queue.Queue()
        self._worker = threading.Thread(target=self._work, name="hominem-daemon-runs", daemon=True)
        self._worker.start()

    # -- runs ----------------------------------------------------------------------------------------
    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            outcome, request = item
            self._running = outcome
            t0 = time.perf_counter()
            try:
                job = self.defs.resolve_job_def(outcome.job)
                result = job.execute_in_process(
                    instance=self.instance,
                    partition_key=request.partition_key,
                    tags=outcome.tags,
                    run_config={**(request.run_config or {}), **QUIET},
                    raise_on_error=False,
                )
                outcome.run_id, outcome.success = result.run_id, result.success
                if not result.success:
                    failures = [e.message for e in result.all_events if e.is_failure]
                    outcome.error = "; ".join(m for m in failures if m)[:2000] or "failed"
            except Exception as exc:  # a run that cannot start is a failed run, recorded, not fatal
                outcome.success, outcome.error = False, f"{type(exc).__name__}: {exc}"
            outcome.seconds = round(time.perf_counter() - t0, 1)
            self._running = None
            self._queue.task_done()
        self._queue.task_done()

    def _submit(
        self,
        log: TickLog,
        trigger: str,
        job: str,
        moment: datetime,
        request: dg.RunRequest,
        origin_tag: tuple[str, str],
    ) -> None:
        tags = {**(request.tags or {}), origin_tag[0]: origin_tag[1]}
        if request.run_key:
            # As the daemon does: a run key already launched by this schedule or sensor is not launched again.
            if (trigger, request.run_key) in self._keys:
                log.skipped[f"{trigger}:{request.run_key}"] = "run key already launched"
                return
            self._keys.add((trigger, request.run_key))
            tags["dagster/run_key"] = request.run_key
        training = RETRAINING_TAG in (self.defs.resolve_job_def(job).tags or {})
        outcome = RunOutcome(
            job, trigger, moment.isoformat(), request.partition_key, tags=tags, training=training
        )
        self.outcomes.append(outcome)
        log.requested.append(outcome)
        self._queue.put((outcome, request))

    def wait(self) -> None:
        """Until every requested run has finished."""
        self._queue.join()

    def settle(self) -> None:
        """Until the queue is empty or the run in progress is a training run (which does not hold the
        simulated clock: see `tick`)."""
        while self._queue.unfinished_tasks:
            running = self._running
            if running is not None and running.training:
                return
            time.sleep(0.05)

    def close(self) -> None:
        self._queue.put(None)
        self._worker.join(timeout=3600)

    # -- ticks ---------------------------------------------------------------------------------------
    def _due(self, moment: datetime) -> list[tuple[datetime, Any]]:
        if self.last is None:
            return []
        due = []
        for schedule in self.defs.schedules or []:
            for t in cron_string_iterator(
                self.last.timestamp(), schedule.cron_schedule, schedule.execution_timezone
            ):
                if t.timestamp() > moment.timestamp():
                    break
                if t.timestamp() > self.last.timestamp():
                    due.append((t, schedule))
        return sorted(due, key=lambda x: (x[0], x[1].name))

    def tick(self, moment: datetime) -> TickLog:
        """Evaluate what is due up to `moment` (schedules at their own cron times, then each sensor once)
        and queue the runs they request. The first tick only sets where the schedules count from."""
        log = TickLog(moment.isoformat())
        for at, schedule in self._due(moment):
            with dg.build_schedule_context(
                instance=self.instance,
                scheduled_execution_time=at,
                resources=self.resources,
                repository_def=self.repository,
            ) as ctx:
                data = schedule.evaluate_tick(ctx)
            reqs, skip = list(data.run_requests or []), data.skip_message
            name = f"schedule:{schedule.name}"
            if skip:
                log.skipped[f"{name}@{at.isoformat()}"] = skip
            for r in reqs:
                self._submit(
                    log,
                    name,
                    r.job_name or schedule.job_name,
                    at,
                    r,
                    ("dagster/schedule_name", schedule.name),
                )
        # Runs take time the simulated clock does not: what the schedules requested (labels, maintenance)
        # finishes before the sensors look at its output. A training run does not hold the clock: the user
        # keeps talking while a cycle trains, and the server swaps the new adapter in when it is promoted.
        self.settle()
        for sensor in self.defs.sensors or []:
            with dg.build_sensor_context(
                instance=self.instance,
                cursor=self.cursors.get(sensor.name),
                resources=self.resources,
                repository_def=self.repository,
            ) as ctx:
                data = sensor.evaluate_tick(ctx)
            reqs, skip, name = list(data.run_requests or []), data.skip_message, f"sensor:{sensor.name}"
            if data.cursor is not None:
                self.cursors[sensor.name] = data.cursor
            if skip:
                log.skipped[name] = skip
            self.sensor_said[sensor.name] = skip or f"requested {len(reqs)} run(s) at {moment.isoformat()}"
            for r in reqs:
                self._submit(
                    log, name, r.job_name or sensor.job_name, moment, r, ("dagster/sensor_name", sensor.name)
                )
        self.last = moment
        return log
