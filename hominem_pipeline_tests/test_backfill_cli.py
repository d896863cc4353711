"""A user backfills conversation labels for a date range from the command line, with the command
docs/AUTOMATION.md gives: `dagster asset materialize ... --partition-range START...END`. Both days are
ingested and labelled in one run (BackfillPolicy.single_run), and the instance shows both partitions."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import dagster as dg

from hominem_pipeline.defs.assets.conversations import daily
from hominem_pipeline.events import EventLog, MessageEvent
from hominem_pipeline.settings import REPO_ROOT, Settings

DAYS = (date(2026, 3, 1), date(2026, 3, 2))


def test_cli_backfill_of_two_days_labels_both_partitions(hominem_home: Path, tmp_path: Path) -> None:
    log = EventLog(hominem_home / "data" / "events")
    for i, day in enumerate(DAYS):
        t = datetime(day.year, day.month, day.day, 9)
        log.append(
            [
                MessageEvent.create(
                    f"c{i}", "user", f"Question {i}: how do I keep basil alive?", timestamp=t, seq=0
                ),
                MessageEvent.create(
                    f"c{i}", "assistant", "Sun, and water when the soil is dry.", timestamp=t, seq=1
                ),
            ],
            day=day,
        )
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text((REPO_ROOT / "dagster.yaml").read_text())
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "HOMINEM_HOME": str(hominem_home)}
    span = f"{DAYS[0].isoformat()}...{DAYS[1].isoformat()}"
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "asset",
            "materialize",
            "-m",
            "hominem_pipeline.definitions",
            "--select",
            "conversations,conversation_labels",
            "--partition-range",
            span,
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    keys = [d.isoformat() for d in DAYS]
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        for asset in ("conversations", "conversation_labels"):
            status = instance.get_status_by_partition(dg.AssetKey(asset), keys, daily)
            assert status == dict.fromkeys(keys, dg.AssetPartitionStatus.MATERIALIZED), asset
        [run] = instance.get_runs()  # one run for the whole range
    assert run.tags["dagster/asset_partition_range_start"] == keys[0]
    exports = Settings(home=hominem_home).data_dir / "labeled" / "conversations"
    for key in keys:
        rows = (exports / f"{key}.jsonl").read_text().splitlines()
        assert len(rows) == 1  # the day's one assistant turn, rated or recorded as a teacher failure
