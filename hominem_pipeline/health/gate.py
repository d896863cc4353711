"""The gates that read the Reward Health Index, exactly as seed 000 phase 10 sets them, and the
decisions log: every decision is appended to `artifacts/rhi/<model>/decisions.jsonl` with its inputs,
so a user can see why an update was skipped, a promotion held or a learning rate lowered.

- consolidation: a cycle becomes `current` only with RHI above `consolidation.threshold`;
- dip: a nightly RHI of `current` at or below `consolidation.revert_below` reverts `current`;
- slow loop: RHI falling `slow_loop.falling_nights` nights in a row lowers the next cycles' learning rates;
- fast loop: partial RHI (DCS, GVS) of an online update: < skip: not applied; < rollback: the previous
  online update is undone; < freeze: online learning stops until a batch's partial RHI is >= recover.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from hominem_pipeline.atomic import append_jsonl_durable, write_json_atomic
from hominem_pipeline.health.config import Consolidation, FastLoop, SlowLoop
from hominem_pipeline.health.report import HealthReport, health_root, now_iso, read_log

Loop = Literal["consolidation", "dip", "slow", "fast"]
ADJUSTMENT_FILE = "training_adjustment.json"
ONLINE_STATE_FILE = "online_state.json"


@dataclass
class Decision:
    loop: Loop
    actions: list[str]  # what the gate does, e.g. ["consolidate"], ["skip", "rollback", "freeze"]
    reason: str
    inputs: dict[str, Any] = field(default_factory=dict)
    at: str = field(default_factory=now_iso)

    @property
    def action(self) -> str:
        return "+".join(self.actions)


def decisions_path(artifacts_dir: Path, model_name: str) -> Path:
    return health_root(artifacts_dir, model_name) / "decisions.jsonl"


def log_decision(artifacts_dir: Path, model_name: str, decision: Decision) -> None:
    append_jsonl_durable(
        decisions_path(artifacts_dir, model_name), {**asdict(decision), "model_name": model_name}
    )


def read_decisions(artifacts_dir: Path, model_name: str) -> list[dict[str, Any]]:
    return read_log(decisions_path(artifacts_dir, model_name))


def log_changed_decision(artifacts_dir: Path, model_name: str, decision: Decision) -> bool:
    """Log `decision` unless its loop's last logged decision took the same actions on the same inputs (a
    re-run with nothing new decides again on the same evidence; the log keeps one line for it). True if
    it was logged."""
    earlier = [d for d in read_decisions(artifacts_dir, model_name) if d.get("loop") == decision.loop]
    same = json.loads(json.dumps([decision.actions, decision.inputs], default=str))
    if earlier and [earlier[-1].get("actions"), earlier[-1].get("inputs")] == same:
        return False
    log_decision(artifacts_dir, model_name, decision)
    return True


def _report_inputs(report: HealthReport | None) -> dict[str, Any]:
    if report is None:
        return {}
    return {
        "version": report.version,
        "rhi": report.rhi,
        "partial": report.partial,
        **report.values(),
        "missing": report.missing,
        "measured_at": report.measured_at,
    }


# -- consolidation and its dip ----------------------------------------------------------------------
def consolidation_decision(report: HealthReport | None, version: str, cfg: Consolidation) -> Decision:
    """Promote `version` into `current` only with a report for it whose RHI is above the threshold."""
    inputs = {"version": version, "threshold": cfg.threshold, **_report_inputs(report)}
    if report is None or report.version != version:
        return Decision(
            "consolidation", ["hold"], f"no RHI report for {version} (materialise rhi_report)", inputs
        )
    if report.rhi is None:
        return Decision("consolidation", ["hold"], "no RHI component could be measured", inputs)
    if report.rhi > cfg.threshold:
        return Decision("consolidation", ["consolidate"], f"RHI {report.rhi:.3f} > {cfg.threshold}", inputs)
    return Decision(
        "consolidation", ["hold"], f"RHI {report.rhi:.3f} <= {cfg.threshold}: `current` stays", inputs
    )


def dip_decision(report: HealthReport, cfg: Consolidation) -> Decision:
    """A nightly measurement of `current`: at or below `revert_below`, the consolidation is reverted."""
    inputs = {"revert_below": cfg.revert_below, **_report_inputs(report)}
    if report.rhi is not None and report.rhi <= cfg.revert_below:
        return Decision("dip", ["revert"], f"RHI of current {report.rhi:.3f} <= {cfg.revert_below}", inputs)
    return Decision(
        "dip",
        ["keep"],
        "RHI of current not measured"
        if report.rhi is None
        else f"RHI of current {report.rhi:.3f} > {cfg.revert_below}",
        inputs,
    )


# -- slow loop --------------------------------------------------------------------------------------
def read_adjustment(artifacts_dir: Path, model_name: str) -> dict[str, Any]:
    path = health_root(artifacts_dir, model_name) / ADJUSTMENT_FILE
    return (
        json.loads(path.read_text()) if path.is_file() else {"learning_rate_factor": 1.0, "anchor_at": None}
    )


def learning_rate_factor(artifacts_dir: Path, model_name: str) -> float:
    """What the slow loop asks the next cycles' learning rates to be multiplied by (1.0 = unchanged)."""
    return float(read_adjustment(artifacts_dir, model_name).get("learning_rate_factor", 1.0))


def trailing_falls(values: list[float]) -> int:
    """How many measurements in a row, ending with the last, were lower than the one before."""
    n = 0
    for a, b in zip(values[-2::-1], values[::-1], strict=False):
        if b < a:
            n += 1
        else:
            break
    return n


def slow_loop_decision(
    nightly: list[dict[str, Any]], adjustment: dict[str, Any], cfg: SlowLoop
) -> tuple[Decision, dict[str, Any]]:
    """(decision, new adjustment state) from the nightly measurements: falls are counted from the last
    adjustment on, so one lowering needs `falling_nights` new falls."""
    anchor = adjustment.get("anchor_at")
    series = [
        r for r in nightly if r.get("rhi") is not None and (anchor is None or r["measured_at"] >= anchor)
    ]
    values = [float(r["rhi"]) for r in series]
    falls = trailing_falls(values)
    factor = float(adjustment.get("learning_rate_factor", 1.0))
    inputs = {
        "nightly_rhi": values[-(cfg.falling_nights + 1) :],
        "falls_in_a_row": falls,
        "falling_nights": cfg.falling_nights,
        "learning_rate_factor": factor,
    }
    if falls >= cfg.falling_nights:
        new = max(cfg.min_learning_rate_factor, factor * cfg.learning_rate_decay)
        state = {
            "learning_rate_factor": new,
            "anchor_at": series[-1]["measured_at"],
            "updated_at": now_iso(),
            "reason": f"RHI fell {falls} nights in a row",
        }
        return Decision(
            "slow",
            ["lower_learning_rate"],
            f"RHI fell {falls} nights in a row: learning-rate factor {factor:g} -> {new:g}",
            {**inputs, "new_learning_rate_factor": new},
        ), state
    trend = "rising" if len(values) >= 2 and values[-1] > values[-2] else "not falling long enough"
    return Decision("slow", ["continue"], f"RHI {trend} ({falls} falls in a row)", inputs), adjustment


def save_adjustment(artifacts_dir: Path, model_name: str, state: dict[str, Any]) -> None:
    write_json_atomic(health_root(artifacts_dir, model_name) / ADJUSTMENT_FILE, state)


# -- fast loop --------------------------------------------------------------------------------------
def read_online_state(artifacts_dir: Path, model_name: str) -> dict[str, Any]:
    path = health_root(artifacts_dir, model_name) / ONLINE_STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else {"frozen": False}


def save_online_state(artifacts_dir: Path, model_name: str, state: dict[str, Any]) -> None:
    write_json_atomic(health_root(artifacts_dir, model_name) / ONLINE_STATE_FILE, state)


def fast_loop_decision(
    partial: float | None, frozen: bool, cfg: FastLoop, inputs: dict[str, Any] | None = None
) -> Decision:
    """What an online update's partial RHI allows. While frozen, only a partial RHI back at `recover`
    unfreezes (and that update is applied if it also clears `skip`)."""
    inputs = {
        "partial": partial,
        "frozen": frozen,
        "skip": cfg.skip,
        "rollback": cfg.rollback,
        "freeze": cfg.freeze,
        "recover": cfg.recover,
        **(inputs or {}),
    }
    if partial is None:
        return Decision(
            "fast", ["skip"], "partial RHI not measurable (no gradient probe or norms): not applied", inputs
        )
    if frozen:
        if partial >= cfg.recover:
            actions = ["unfreeze"] + (["apply"] if partial >= cfg.skip else ["skip"])
            return Decision(
                "fast",
                actions,
                f"partial RHI {partial:.3f} >= {cfg.recover}: online learning resumes",
                inputs,
            )
        return Decision(
            "fast", ["skip", "stay_frozen"], f"frozen; partial RHI {partial:.3f} < {cfg.recover}", inputs
        )
    if partial < cfg.freeze:
        return Decision(
            "fast", ["skip", "rollback", "freeze"], f"partial RHI {partial:.3f} < {cfg.freeze}", inputs
        )
    if partial < cfg.rollback:
        return Decision("fast", ["skip", "rollback"], f"partial RHI {partial:.3f} < {cfg.rollback}", inputs)
    if partial < cfg.skip:
        return Decision("fast", ["skip"], f"partial RHI {partial:.3f} < {cfg.skip}", inputs)
    return Decision("fast", ["apply"], f"partial RHI {partial:.3f} >= {cfg.skip}", inputs)
