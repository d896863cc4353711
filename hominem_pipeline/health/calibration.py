"""`GVI_max_reference`, the GVS calibration constant, stored in each adapter's METADATA.json
(`health_calibration`) by the trainer, so it is published atomically with the adapter it belongs to.

The first cycle of a lineage (or the first one trained after this existed) is the reference run: its
windowed gradient-norm variability, taken at the configured percentile and given `gvi_headroom` of room,
becomes GVI_max. Every later cycle inherits its parent's constant unchanged, so GVS compares cycles
against one fixed healthy run instead of re-calibrating on each (which would hide a drift).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hominem_pipeline.health.components import gvi_reference
from hominem_pipeline.health.config import Probes


def calibration_for_cycle(
    previous_meta: Mapping[str, Any], parent_version: str | None, grad_norms: Sequence[float], probes: Probes
) -> dict[str, Any]:
    """The `health_calibration` entry of a new adapter's METADATA: inherited from its parent when the
    parent has one, else calibrated on this cycle's gradient norms."""
    inherited = dict(previous_meta.get("health_calibration") or {})
    if inherited.get("gvi_max_reference") is not None:
        # A parent that was itself the reference run names no reference_version: it is the parent.
        reference = inherited.get("reference_version") or parent_version
        return {**inherited, "reference_version": reference, "inherited_from": parent_version}
    reference = gvi_reference(grad_norms, probes.gvs_window, probes.gvi_percentile)
    return {
        "gvi_max_reference": None if reference is None else reference * probes.gvi_headroom,
        "gvi_reference_percentile_value": reference,
        "percentile": probes.gvi_percentile,
        "window": probes.gvs_window,
        "headroom": probes.gvi_headroom,
        "reference_version": None,  # this adapter itself (its own name is its content hash)
        "inherited_from": None,
        "steps": len(grad_norms),
    }
