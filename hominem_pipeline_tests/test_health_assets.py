"""The Reward Health Index in Dagster, on a real ephemeral instance with real (tiny) adapters: `rhi_report`
measures the evaluated version, keeps a history across materialisations with a plot and a reading;
`current` moves only above 0.70 (held, logged, run still green below it); the nightly replay job reverts a
consolidation whose RHI dipped and lowers the next cycles' learning rates after three falling nights."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from hominem_pipeline.adapters import AdapterRegistry, model_name_for_spec
from hominem_pipeline.defs.health import rhi_nightly_job
from hominem_pipeline.defs.resources import HominemResource
from hominem_pipeline.health.gate import read_decisions
from hominem_pipeline.health.report import history_path, read_history
from hominem_pipeline.settings import Settings
from hominem_pipeline.training import promotion
from hominem_pipeline_tests.adapter_helpers import lora_model, publish
from hominem_pipeline_tests.test_lora_eval_assets import (
    HEALTHY,
    _materialized,
    _report_dual_lora,
    _run,
    _small_eval_config,
)

# Dimensions pulling against each other, gradient norms all over the place: DCS 0, GVS 0.
FIGHTING = {
    "gradient_probes": [{"step": 6, "gda": {"curiosity|empathy": -0.9}, "left_out": []}],
    "grad_norms": [0.1, 3.0, 0.2, 4.0],
    "health_calibration": {"gvi_max_reference": 0.5},
}


def _adapters(home: Path, tiny_model_dir: Path) -> tuple[AdapterRegistry, str, str]:
    registry = AdapterRegistry(home / "artifacts", model_name_for_spec(str(tiny_model_dir)))
    healthy, _ = lora_model(tiny_model_dir)
    a = publish(registry, healthy, tiny_model_dir, **HEALTHY)
    fighting, _ = lora_model(tiny_model_dir, seed=3)
    b = publish(registry, fighting, tiny_model_dir, parent=a, **FIGHTING)
    return registry, a, b


def _meta(result: dg.ExecuteInProcessResult, key: str) -> dict:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.path == [key]]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_rhi_report_gates_consolidation_and_keeps_history(hominem_home: Path, tiny_model_dir: Path) -> None:
    _small_eval_config(hominem_home / "config")
    registry, a, b = _adapters(hominem_home, tiny_model_dir)
    instance = dg.DagsterInstance.ephemeral()

    _report_dual_lora(instance, {"version": a, "model_name": registry.model_name})
    first = _run(hominem_home, instance)
    assert first.success and registry.pointer().target == a
    meta = _meta(first, "rhi_report")
    assert meta["version"] == a and meta["rhi"] > 0.9 and meta["dcs"] == pytest.approx(0.9)
    assert set(meta) >= {"rhi", "partial_rhi", "dcs", "gvs"}  # floats the UI plots over time
    assert meta["missing_components"] == "mss, cdrs, lrps"  # no reward model here: not measured, not invented
    assert "data:image/png;base64," in meta["summary"] and Path(meta["plot"]).is_file()
    assert (hominem_home / "artifacts" / "plots" / "rhi_over_time.png").is_file()

    # A cycle whose dimensions fight passes its evaluation (same tiny model) but not the health gate.
    _report_dual_lora(instance, {"version": b, "model_name": registry.model_name})
    second = _run(hominem_home, instance)
    assert second.success  # holding `current` is the gate working, not a failed run
    checks = {e.check_name: e for e in second.get_asset_check_evaluations()}
    assert checks["lora_no_regression"].passed is True
    gate = checks["rhi_consolidation_gate"]
    assert gate.passed is False and gate.severity == dg.AssetCheckSeverity.WARN
    assert _materialized(second) == {"lora_eval", "rhi_report", "adapter_promotion"}
    held = _meta(second, "adapter_promotion")
    assert held["promoted"] is False and "RHI 0.000 <= 0.7" in held["reason"]
    assert registry.pointer().target == a
    reading = _meta(second, "rhi_report")["interpretation"]
    assert reading.startswith("sharp drop") and "dimensions are fighting" in reading

    # The same run again with nothing new: the saved measurement of b is reused, no history point added.
    again = _run(hominem_home, instance)
    assert again.success and _meta(again, "rhi_report")["unchanged"] is True
    assert _meta(again, "rhi_report")["rhi"] == _meta(second, "rhi_report")["rhi"]
    assert _meta(again, "adapter_promotion")["promoted"] is False and registry.pointer().target == a
    assert _meta(second, "rhi_report")["unchanged"] is False

    history = read_history(hominem_home / "artifacts", registry.model_name)
    assert [(r["version"], r["kind"]) for r in history] == [(a, "cycle"), (b, "cycle")]
    decisions = [
        d
        for d in read_decisions(hominem_home / "artifacts", registry.model_name)
        if d["loop"] == "consolidation"
    ]
    assert [d["actions"] for d in decisions] == [["consolidate"], ["hold"]]
    assert decisions[-1]["inputs"]["rhi"] == 0.0 and decisions[-1]["inputs"]["dcs"] == 0.0

    # The CLI path shares the gate: refused without --force, moved (and said so) with it.
    with pytest.raises(promotion.ConsolidationHeld, match="RHI 0.000"):
        promotion.promote(registry, b)
    forced = promotion.promote(registry, b, force=True)
    assert registry.pointer().target == b and forced.health.startswith("forced: RHI 0.000")


def test_nightly_replay_reverts_a_dip_and_slows_learning_after_three_falling_nights(
    hominem_home: Path, tiny_model_dir: Path
) -> None:
    registry, a, b = _adapters(hominem_home, tiny_model_dir)
    registry.promote(a)
    registry.promote(b)  # consolidated earlier (say, by force); tonight its RHI is measured
    resources = {"hominem": HominemResource(home=str(hominem_home), config_dir=str(hominem_home / "config"))}
    instance = dg.DagsterInstance.ephemeral()

    night = rhi_nightly_job.execute_in_process(resources=resources, instance=instance)
    assert night.success and registry.pointer().target == a  # the dip reverted the consolidation
    meta = _meta(night, "rhi_nightly")
    assert meta["version"] == b and meta["dip_decision"] == "revert" and meta["rhi"] == 0.0

    # Three earlier nights, each a little lower: tonight's RHI of `a` (about 0.93) is the third fall.
    from hominem_pipeline.atomic import append_jsonl_durable

    for i, rhi in enumerate((0.99, 0.98, 0.97)):
        append_jsonl_durable(
            history_path(hominem_home / "artifacts", registry.model_name),
            {"measured_at": f"2026-01-0{i + 1}T03:30:00", "version": a, "kind": "nightly", "rhi": rhi},
        )
    slow = rhi_nightly_job.execute_in_process(resources=resources, instance=instance)
    meta = _meta(slow, "rhi_nightly")
    assert meta["dip_decision"] == "keep" and meta["slow_decision"] == "lower_learning_rate"
    from hominem_pipeline.training.run import _slow_loop_learning_rates, load_config

    settings = Settings(home=hominem_home)
    config = load_config(settings)
    scaled, note = _slow_loop_learning_rates(settings, config, registry.model_name)
    assert scaled.preference_learning_rate == pytest.approx(config.preference_learning_rate * 0.5)
    assert scaled.sft_learning_rate == pytest.approx(config.sft_learning_rate * 0.5)
    assert note["learning_rate_factor"].startswith("0.5 (RHI slow loop")
    slow_decisions = [
        d for d in read_decisions(hominem_home / "artifacts", registry.model_name) if d["loop"] == "slow"
    ]
    assert slow_decisions[-1]["inputs"]["falls_in_a_row"] == 3


def test_cli_shows_history_and_decisions_and_online_needs_feedback(
    hominem_home: Path, tiny_model_dir: Path
) -> None:
    from click.testing import CliRunner

    from hominem_pipeline.cli import main

    registry, a, b = _adapters(hominem_home, tiny_model_dir)
    runner = CliRunner()
    assert "no RHI measurements yet" in runner.invoke(main, ["health", "show"]).output
    for version in (a, b):
        res = runner.invoke(main, ["health", "measure", version])
        assert res.exit_code == 0, res.output
    assert "not measured: mss, cdrs, lrps" in res.output
    shown = runner.invoke(main, ["health", "show"]).output
    assert a in shown and b in shown and "reading: sharp drop" in shown
    # Forcing b past the gate says so, and the gate's decision is listed with the others.
    refused = runner.invoke(main, ["adapters", "promote", b, "--force"])
    assert refused.exit_code == 0 and "Reward Health Index: forced: RHI 0.000" in refused.output
    assert "consolidation" in runner.invoke(main, ["health", "show"]).output
    online = runner.invoke(main, ["health", "online"])
    assert (
        online.exit_code == 0
        and "fast loop: skip: no feedback pairs newer than the last online update's" in online.output
    )
