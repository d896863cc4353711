"""Where a training or evaluation step runs: in the Dagster step's own process (the default), or through
Dagster Pipes in a subprocess (`launcher: pipes` in the asset's run config), which reports its logs,
metadata and data version back. Both run the same `hominem_pipeline.steps` function and give the same
metadata; swapping the subprocess client for a Kubernetes or Ray Pipes client moves the step to a GPU
node without touching the step (docs/SCALING.md).
"""

from __future__ import annotations

import sys
from typing import Any, Literal

import dagster as dg

from hominem_pipeline.defs.resources import HominemResource
from hominem_pipeline.steps import STEPS, StepOutput

Launcher = Literal["in_process", "pipes"]

_KINDS = {"path": dg.MetadataValue.path, "md": dg.MetadataValue.md, "json": dg.MetadataValue.json}


def materialize_result(out: StepOutput) -> dg.MaterializeResult:
    metadata = {k: _KINDS[out.kinds[k]](v) if k in out.kinds else v for k, v in out.metadata.items()}
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(out.data_version))


def run_step(
    context: dg.AssetExecutionContext,
    step: str,
    hominem: HominemResource,
    params: dict[str, Any],
    launcher: Launcher,
) -> dg.MaterializeResult:
    """Run `step` (a key of `steps.STEPS`) with `params` where `launcher` says."""
    if launcher == "in_process":
        return materialize_result(STEPS[step](hominem.settings(), params, context.log.info))
    extras = {"step": step, "home": hominem.home, "config_dir": hominem.config_dir, "params": params}
    command = [sys.executable, "-m", "hominem_pipeline.defs.pipes_entry"]
    return (
        dg.PipesSubprocessClient()
        .run(command=command, context=context, extras=extras)
        .get_materialize_result()
    )
