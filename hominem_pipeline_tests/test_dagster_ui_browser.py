"""`make dev` in a real headless Chromium: `dagster dev` (the command `make dev` runs) on loopback, the
lineage page of every asset group shows each of its assets, and the Automation page lists every sensor and
schedule, all switched on. The names come from the loaded `Definitions`, so assets, sensors and schedules
added later are covered without editing this test. Bounded: one server start, one page per group."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from hominem_pipeline.definitions import defs
from hominem_pipeline.settings import REPO_ROOT

LOCATION = "hominem"  # workspace.yaml's location_name
START_TIMEOUT_S = 240  # the code server imports torch and transformers; slow on a busy 2-core box


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(url: str, query: str) -> dict:
    body = json.dumps({"query": query}).encode()
    req = urllib.request.Request(f"{url}/graphql", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def _location_loaded(url: str) -> bool:
    try:
        data = _graphql(
            url, "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
        )
    except OSError:
        return False
    entries = (data.get("data") or {}).get("workspaceOrError", {}).get("locationEntries", [])
    return any(e["name"] == LOCATION and e["loadStatus"] == "LOADED" for e in entries)


@pytest.fixture
def dagster_dev(hominem_home: Path, tmp_path: Path) -> Iterator[str]:
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text((REPO_ROOT / "dagster.yaml").read_text())
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "HOMINEM_HOME": str(hominem_home)}
    log = (tmp_path / "dagster-dev.log").open("w")
    # Its own session, so SIGTERM to the group stops the webserver, the daemon and the code server.
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "dagster"),
            "dev",
            "-w",
            "workspace.yaml",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _location_loaded(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"dagster dev did not load the code location: {(tmp_path / 'dagster-dev.log').read_text()[-3000:]}"
                )
            time.sleep(2)
        _graphql(url, "mutation { setNuxSeen }")  # the "join the community" modal of a fresh instance
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


def test_make_dev_shows_every_asset_sensor_and_schedule(dagster_dev: str, driver) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    graph = defs.resolve_asset_graph()
    groups: dict[str, set[str]] = {}
    for key in graph.get_all_asset_keys():
        groups.setdefault(graph.get(key).group_name, set()).add(key.to_user_string())
    sensors = {s.name for s in defs.sensors}
    schedules = {s.name for s in defs.schedules}
    assert (
        "retraining_sensor" in sensors
        and {"daily_conversation_labels", "weekly_retraining_fallback"} <= schedules
    )

    driver.set_window_size(1600, 1400)

    def page_shows(path: str, names: set[str]) -> None:
        driver.get(dagster_dev + path)
        missing: set[str] = set()

        def all_there(d) -> bool:  # noqa: ANN001
            text = d.find_element(By.TAG_NAME, "body").text
            missing.clear()
            missing.update(n for n in names if n not in text)
            return not missing

        WebDriverWait(driver, 90, poll_frequency=1).until(all_there, message=f"{path} never showed {missing}")

    page_shows("/asset-groups", set(groups))  # the global lineage: one box per group
    for group, assets in sorted(groups.items()):
        page_shows(f"/locations/{LOCATION}/asset-groups/{group}/lineage", assets)
    page_shows("/automation", sensors | schedules)

    # On by default (what `make dev` promises), as the instance the UI reads reports it.
    repo = f'repositorySelector: {{repositoryLocationName: "{LOCATION}", repositoryName: "__repository__"}}'
    data = _graphql(
        dagster_dev,
        f"{{ sensorsOrError({repo}) {{ ... on Sensors {{ results {{ name sensorState {{ status }} }} }} }}"
        f"  schedulesOrError({repo}) {{ ... on Schedules {{ results {{ name scheduleState {{ status }} }} }} }} }}",
    )["data"]
    status = {s["name"]: s["sensorState"]["status"] for s in data["sensorsOrError"]["results"]}
    status |= {s["name"]: s["scheduleState"]["status"] for s in data["schedulesOrError"]["results"]}
    assert status == dict.fromkeys(sensors | schedules, "RUNNING")
