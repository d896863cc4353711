"""The child process of the fault suite: runs one real hominem operation, and can SIGKILL itself at the
N-th file-system operation it makes (or be killed from outside on a timer by the test).

    python -m hominem_pipeline_tests.fault_driver [--kill-at N | --kill-on TEXT [--nth K]] [--trace FILE]
        SCENARIO [ARGS...]

Scenarios: `cli ARGS...` (the real `hominem` command line), `ingest DAY` (one day of the event log into
the store), `publish SEED` (a tiny-model adapter published and promoted to `current`, then a reward model
published), `flip N` (the adapter `current` pointer moved N times between two versions), `fill DIR
[LIMIT]` (events appended until the disk, or a file-size limit, refuses).

The kill is a real SIGKILL of this process (no exception, no `finally`, no atexit): the counted operations
are `os.write`, `os.fsync`, `os.replace`, `os.rename`, `os.mkdir`, `os.unlink`, `os.rmdir` and
`os.ftruncate`, counted from the moment the scenario's imports are done ("ready"). At a counted
`os.write` the process first writes a seeded part of the buffer, as a kill in the middle of a kernel write
would leave. `--trace FILE` records every counted operation (a calibration run), so a test can pick kill
points among them and say which operation each one interrupted; `--kill-on TEXT --nth K` kills at the
K-th operation whose description (as traced, e.g. `replace .staging-x -> 0f3a...`) contains TEXT, a
named kill point that needs no calibration run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
from pathlib import Path

_COUNTED = ("write", "fsync", "replace", "rename", "mkdir", "unlink", "rmdir", "ftruncate")


class _KillSwitch:
    def __init__(self, kill_at: int | None, trace: Path | None, kill_on: str | None = None, nth: int = 1):
        self.kill_at = kill_at
        self.kill_on = kill_on
        self.nth = nth
        self.matches = 0
        self.trace_path = trace
        self.trace: list[str] = []
        self.armed = False
        self.count = 0

    def install(self) -> None:
        for name in _COUNTED:
            setattr(os, name, self._wrap(name, getattr(os, name)))

    def _describe(self, name: str, args: tuple) -> str:
        if name in ("write", "fsync", "ftruncate"):
            try:
                target = os.readlink(f"/proc/self/fd/{args[0]}")
            except OSError:
                target = "?"
            extra = f" {len(args[1])}B" if name == "write" else ""
            return f"{name} {Path(target).name}{extra}"
        return f"{name} " + " -> ".join(
            Path(str(a)).name for a in args[:2] if isinstance(a, str | os.PathLike)
        )

    def _wrap(self, name: str, real):  # noqa: ANN001, ANN202 (wraps os functions of several signatures)
        def counted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            if self.armed:
                self.count += 1
                described = self._describe(name, args) if self.trace_path or self.kill_on else ""
                if self.trace_path is not None:
                    self.trace.append(described)
                if self.kill_on is not None and self.kill_on in described:
                    self.matches += 1
                if self.count == self.kill_at or (self.kill_on is not None and self.matches == self.nth):
                    if name == "write" and len(args[1]) > 1:
                        cut = random.Random(self.count).randrange(1, len(args[1]))
                        real(args[0], memoryview(args[1])[:cut])
                    os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)

        return counted

    def ready(self) -> None:
        print("READY", flush=True)
        self.armed = True

    def done(self) -> None:
        self.armed = False
        if self.trace_path is not None:
            self.trace_path.write_text(json.dumps(self.trace))


def _cli(switch: _KillSwitch, args: list[str]) -> None:
    from hominem_pipeline.cli import main

    switch.ready()
    try:
        main(args=args, prog_name="hominem", standalone_mode=False)
    finally:
        switch.done()


def _ingest(switch: _KillSwitch, day: str) -> None:
    from datetime import date

    from hominem_pipeline.events.ingest import ingest_day
    from hominem_pipeline.events.log import EventLog
    from hominem_pipeline.settings import Settings
    from hominem_pipeline.store import TrainingDatabase

    settings = Settings()
    switch.ready()
    with TrainingDatabase(settings.database_path) as db:
        r = ingest_day(db, EventLog(settings.data_dir / "events"), date.fromisoformat(day), batch_size=2000)
    switch.done()
    print(json.dumps({"new_messages": r.new_messages, "already_stored": r.already_stored}))


def _reward_model_result(settings, seed: int):  # noqa: ANN001, ANN202 (a TrainingResult's shape)
    """A reward model with seeded random heads in the shape `registry.publish` takes: what is attacked
    here is the publication, and training a real one would cost most of the run."""
    from types import SimpleNamespace

    import numpy as np

    from hominem_pipeline.manifold import load_manifold
    from hominem_pipeline.reward_model.model import FEATURES, HeadParams, RewardModel

    manifold = load_manifold(settings.manifold_path)
    dims = list(manifold.names)
    heads, emb = [*dims, "reward_intensity", "safety_score"], 384
    g = np.random.default_rng(seed)
    params = HeadParams(
        heads=heads,
        feature_mean=g.normal(size=len(FEATURES) * emb),
        weights=g.normal(size=(len(heads), len(FEATURES) * emb)),
        target_mean=np.zeros(len(heads)),
        target_std=np.ones(len(heads)),
        gate_weights=g.normal(size=(len(dims), emb)),
        gate_bias=np.zeros(len(dims)),
    )
    model = RewardModel(manifold, params, "embedded:all-minilm-l6-v2", embedding_dim=emb)
    metadata = {"training_data": {"hash": f"fault-suite-{seed}"}}
    return SimpleNamespace(model=model, metadata=metadata, beats_baseline=True)


def build_models(settings, seed: int):  # noqa: ANN001, ANN201 (a PEFT model and a TrainingResult's shape)
    """A tiny-model adapter with seeded weights and a reward model with seeded heads, in memory."""
    from hominem_pipeline_tests.adapter_helpers import lora_model, perturb

    model, _ = lora_model(Path(settings.inference.student.model), seed=seed)
    perturb(model, scale=3.0, seed=seed)
    return model, _reward_model_result(settings, seed)


def publish_models(settings, model, result, seed: int) -> dict:  # noqa: ANN001
    """Publish the adapter, promote it to `current`, publish the reward model (moving `latest` and
    `current`): every kind of publication and pointer move, in the order a night's cycle makes them."""
    from hominem_pipeline.reward_model.registry import publish as publish_rm
    from hominem_pipeline_tests.adapter_helpers import publish
    from hominem_pipeline_tests.serving_fixtures import registry_of

    registry = registry_of(settings)
    version = publish(registry, model, Path(settings.inference.student.model), seed=seed)
    registry.promote(version)
    rm = publish_rm(result, settings.artifacts_dir)
    return {"adapter": version, "reward_model": rm.version, "accepted": rm.accepted}


def _publish(switch: _KillSwitch, seed: str) -> None:
    from hominem_pipeline.settings import Settings

    settings = Settings()
    # Both models are built before the switch is armed: the kill points are in their publication.
    model, result = build_models(settings, int(seed))
    switch.ready()
    published = publish_models(settings, model, result, int(seed))
    switch.done()
    print(json.dumps(published))


def _flip(switch: _KillSwitch, times: str) -> None:
    from hominem_pipeline.settings import Settings
    from hominem_pipeline_tests.serving_fixtures import registry_of

    registry = registry_of(Settings())
    versions = registry.version_names()
    switch.ready()
    for i in range(int(times)):
        registry.promote(versions[i % len(versions)])
    switch.done()


def _fill(switch: _KillSwitch, events_dir: str, file_size_limit: str = "0") -> None:
    """Append batches of events until the disk (or, with a limit, the file-size limit the kernel enforces
    on this process) refuses; then report what was acknowledged and what the log holds."""
    import resource
    from datetime import date, datetime

    from hominem_pipeline.events.log import EventLog, EventLogWriteError
    from hominem_pipeline.events.schema import MessageEvent

    if int(file_size_limit):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # then write() fails with EFBIG instead of killing us
        resource.setrlimit(resource.RLIMIT_FSIZE, (int(file_size_limit), int(file_size_limit)))
    log, day = EventLog(events_dir), date(2026, 11, 3)
    acknowledged: list[str] = []
    errors: list[str] = []
    switch.ready()
    for batch in range(100_000):
        events = [
            MessageEvent(
                event_id=f"b{batch}-{i}",
                conversation_id=f"c{batch}",
                role="user",
                seq=i,
                content=f"batch {batch} message {i} " + "x" * 300,
                timestamp=datetime(2026, 11, 3, 9),
            )
            for i in range(7)
        ]
        try:
            log.append(events, day=day)
        except EventLogWriteError as exc:
            errors.append(str(exc))
            if len(errors) == 2:  # a second try after the first refusal: still refused, still clean
                break
            continue
        acknowledged += [e.event_id for e in events]
    switch.done()
    read = log.read_day(day)
    print(
        json.dumps(
            {
                "acknowledged": acknowledged,
                "errors": errors,
                "logged": [e.event_id for e in read.events],
                "rejected": len(read.rejected),
                "torn_tail_bytes": read.torn_tail_bytes,
            }
        )
    )


SCENARIOS = {"cli": _cli, "ingest": _ingest, "publish": _publish, "flip": _flip, "fill": _fill}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kill-at", type=int, default=None)
    parser.add_argument("--kill-on", default=None)
    parser.add_argument("--nth", type=int, default=1)
    parser.add_argument("--trace", type=Path, default=None)
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("args", nargs=argparse.REMAINDER)
    ns = parser.parse_args(argv)
    switch = _KillSwitch(ns.kill_at, ns.trace, ns.kill_on, ns.nth)
    switch.install()
    fn = SCENARIOS[ns.scenario]
    fn(switch, ns.args) if ns.scenario == "cli" else fn(switch, *ns.args)


if __name__ == "__main__":
    sys.exit(main())
