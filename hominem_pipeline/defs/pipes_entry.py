"""The far side of Dagster Pipes for the training and evaluation steps: `python -m
hominem_pipeline.defs.pipes_entry` runs one step (`hominem_pipeline.steps`) in its own process and reports
its logs and materialisation back to the Dagster step that launched it (`defs/launch.py`).

It imports `dagster_pipes` only (no Dagster instance, no definitions), so the same command runs in a
subprocess here or in a container on a GPU node (docs/SCALING.md). The step and its parameters arrive as
Pipes extras: `step`, `home`, `config_dir`, `params`.
"""

from __future__ import annotations

from typing import Any

from dagster_pipes import open_dagster_pipes

from hominem_pipeline.settings import Settings
from hominem_pipeline.steps import STEPS


def main() -> None:
    with open_dagster_pipes() as pipes:
        extras: dict[str, Any] = pipes.extras
        step = STEPS[extras["step"]]
        settings = Settings(home=extras.get("home"), config_dir=extras.get("config_dir"))
        out = step(settings, dict(extras.get("params") or {}), pipes.log.info)
        metadata = {
            key: {"raw_value": value, "type": out.kinds[key]} if key in out.kinds else value
            for key, value in out.metadata.items()
        }
        pipes.report_asset_materialization(metadata=metadata, data_version=out.data_version)


if __name__ == "__main__":
    main()
