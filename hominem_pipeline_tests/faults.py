"""Shared machinery of the fault suite (`test_faults_*.py`): running the fault driver as a real child
process and killing it, choosing kill points, and the invariants every recovery must meet.

Two sizes. `make test` runs the bounded form: a few named kill points, fixed. `make faults`
(HOMINEM_FAULTS=full) runs the randomised set: a calibration run traces every file-system operation of
the scenario, and kill points are drawn among them (and on timers) with a seed that the test prints, so
`HOMINEM_FAULTS_SEED=<seed> make faults` replays a failure.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hominem_pipeline.adapters import AdapterRegistry
from hominem_pipeline.atomic import STAGING_PREFIX, TMP_SUFFIX, verify_version
from hominem_pipeline.reward_model.registry import load_current, reward_model_root
from hominem_pipeline.settings import REPO_ROOT


@contextmanager
def store_held_by_another_process(path: Path) -> Iterator[subprocess.Popen]:
    """A real second process holding the DuckDB file at `path` (DuckDB's lock is per process) until the
    block ends; yields it (its pid is what a "busy" message names)."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
            "sys.stdin.read()",
            str(path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.communicate("", timeout=30)  # closes its stdin: the holder exits and lets go


FULL = os.environ.get("HOMINEM_FAULTS") == "full"
#: How many random kill points the full run draws per scenario.
FULL_POINTS = int(os.environ.get("HOMINEM_FAULTS_POINTS", "8"))
SEED = int(os.environ.get("HOMINEM_FAULTS_SEED") or (time.time_ns() % 100_000 if FULL else 12))


def rng(name: str) -> random.Random:
    """A random source per scenario, reproducible from SEED (printed so a failure can be replayed)."""
    print(f"fault suite: scenario {name} seed {SEED} ({'full' if FULL else 'bounded'})")
    return random.Random(f"{name}:{SEED}")


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def killed(self) -> bool:
        return self.returncode == -signal.SIGKILL

    def json(self) -> dict:
        return json.loads(self.stdout.strip().splitlines()[-1])


def driver_env(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HOMINEM_HOME": str(home),
        "HOMINEM_CONFIG_DIR": str(home / "config"),
        "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


def run_driver(
    home: Path,
    scenario: str,
    *args: str,
    kill_at: int | None = None,
    kill_on: str | None = None,
    nth: int = 1,
    kill_after_s: float | None = None,
    trace: Path | None = None,
    timeout_s: float = 300,
) -> Run:
    """Run the fault driver on `home`. `kill_at` / `kill_on` make it SIGKILL itself at a file-system
    operation; `kill_after_s` SIGKILLs it from here that long after it reported ready."""
    cmd = [sys.executable, "-m", "hominem_pipeline_tests.fault_driver"]
    if kill_at is not None:
        cmd += ["--kill-at", str(kill_at)]
    if kill_on is not None:
        cmd += ["--kill-on", kill_on, "--nth", str(nth)]
    if trace is not None:
        cmd += ["--trace", str(trace)]
    proc = subprocess.Popen(
        [*cmd, scenario, *args],
        env=driver_env(home),
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if kill_after_s is not None:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # "READY", or "" if it died first
        if first.strip() == "READY":
            time.sleep(kill_after_s)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=timeout_s)
        return Run(proc.returncode, first + out, err)
    out, err = proc.communicate(timeout=timeout_s)
    return Run(proc.returncode, out, err)


def calibrate(home: Path, scenario: str, *args: str) -> tuple[list[str], float, Run]:
    """One uninterrupted run with every counted operation traced: (operations, seconds from ready to
    exit, the run)."""
    trace = home.parent / f"trace-{scenario}.json"
    t0 = time.monotonic()
    run = run_driver(home, scenario, *args, trace=trace)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(trace.read_text()), time.monotonic() - t0, run


def leftovers(home: Path) -> list[Path]:
    """Staging folders and temp files anywhere under the home's data and artifacts."""
    found = []
    for top in (home / "artifacts", home / "data"):
        if top.is_dir():
            found += [
                p for p in top.rglob(".*") if p.name.startswith(STAGING_PREFIX) or p.name.endswith(TMP_SUFFIX)
            ]
    return sorted(found)


def assert_artifacts_consistent(home: Path, scratch: Path) -> dict[str, str | None]:
    """What any reader sees after a crash: every pointer readable and naming an intact version, every
    visible version intact (a torn one never shows up under its name). Checked on a copy in `scratch`,
    because loading sweeps leftovers and the next real run must be the one that finds them.
    Returns {pointer: target}."""
    import shutil

    seen: dict[str, str | None] = {}
    if scratch.exists():
        shutil.rmtree(scratch)
    if (home / "artifacts").is_dir():
        shutil.copytree(home / "artifacts", scratch / "artifacts", symlinks=True)
    home = scratch
    lora = home / "artifacts" / "lora"
    for root in sorted(p for p in lora.iterdir() if p.is_dir()) if lora.is_dir() else []:
        registry = AdapterRegistry(home / "artifacts", root.name)
        for version in registry.version_names():
            verify_version(root / version)
        for name, target in registry.pointers().items():
            seen[f"{root.name}/{name}"] = target
            if target is not None:
                registry.resolve(name)
    rm_root = reward_model_root(home / "artifacts")
    if rm_root.is_dir():
        for folder in rm_root.iterdir():
            if folder.is_dir() and not folder.name.startswith("."):
                verify_version(folder)
        load_current(home / "artifacts")  # reads the pointer, verifies, loads the heads
    return seen
