"""Disk full under the event log: the append fails loudly naming the file, the log keeps only whole
records (the failed append is cut back off), and nothing acknowledged earlier is lost. Two real limits,
no mock: a size-limited tmpfs (mounted in a private user+mount namespace, where the machine allows one),
and the file-size limit the kernel enforces on a process (RLIMIT_FSIZE), which works anywhere."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hominem_pipeline.settings import REPO_ROOT
from hominem_pipeline_tests.faults import driver_env

pytestmark = pytest.mark.faults


def _check(report: dict, events_dir: str) -> None:
    acknowledged, logged = report["acknowledged"], report["logged"]
    assert acknowledged, (
        "the disk filled before a single batch fitted: the limit is too small to test anything"
    )
    assert logged == acknowledged  # nothing acknowledged lost, nothing refused kept, no record twice
    assert report["rejected"] == 0 and report["torn_tail_bytes"] == 0  # whole records only
    assert len(report["errors"]) == 2  # refused, and refused again on the next try
    for message in report["errors"]:
        assert events_dir in message and "2026-11-03.jsonl" in message
        assert "nothing of this write was kept" in message and "\n" not in message


def test_a_file_size_limit_fails_the_append_loudly_and_keeps_the_log_whole(tmp_path: Path) -> None:
    events = tmp_path / "events"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "hominem_pipeline_tests.fault_driver",
            "fill",
            str(events),
            str(48 * 1024 + 123),
        ],
        env=driver_env(tmp_path),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout.splitlines()[-1])
    _check(report, str(events))
    assert "too large" in report["errors"][0]  # EFBIG, the kernel's refusal


def test_a_full_filesystem_fails_the_append_loudly_and_keeps_the_log_whole(tmp_path: Path) -> None:
    unshare = shutil.which("unshare")
    mount = tmp_path / "small"
    mount.mkdir()
    script = (
        f"mount -t tmpfs -o size=64k tmpfs {mount} && exec {sys.executable} -m hominem_pipeline_tests.fault_driver "
        f"fill {mount}/events"
    )
    if unshare is None:
        pytest.skip("no unshare(1): cannot mount a small filesystem without root here")
    run = subprocess.run(
        [unshare, "--user", "--map-root-user", "--mount", "sh", "-c", script],
        env=driver_env(tmp_path),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if run.returncode != 0 and "mount" in run.stderr and "READY" not in run.stdout:
        pytest.skip(f"this machine allows no private tmpfs mount: {run.stderr.strip()[:200]}")
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout.splitlines()[-1])
    _check(report, f"{mount}/events")
    assert "No space left on device" in report["errors"][0]
