"""`lora_eval`, its blocking check `lora_no_regression` and `adapter_promotion`, materialised in process on
the tiny model: the version evaluated is the one `dual_lora` reported (not the newest folder), a good
adapter becomes `current`, a damaging one is blocked and `current` stays."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import yaml

from hominem_pipeline.adapters import AdapterRegistry, model_name_for_spec
from hominem_pipeline.defs.assets.evaluation import EVALUATION_ASSETS, EVALUATION_CHECKS
from hominem_pipeline.defs.health import HEALTH_ASSETS, HEALTH_CHECKS
from hominem_pipeline.defs.resources import HominemResource
from hominem_pipeline.evaluation.report import read_report
from hominem_pipeline.settings import Settings
from hominem_pipeline.summary import build_summary
from hominem_pipeline_tests.adapter_helpers import lora_model, perturb, publish


def _small_eval_config(config_dir: Path) -> None:
    """Two scenario prompts per seed scenario, four general prompts, short greedy outputs."""
    set_path = config_dir / "eval" / "regression_prompts.yaml"
    data = yaml.safe_load(set_path.read_text())
    data["scenarios"] = [s for s in data["scenarios"] if s["id"] in {"eh-01", "eh-02", "as-01", "as-02"}]
    data["general"] = data["general"][:4]
    set_path.write_text(yaml.safe_dump(data))
    cfg_path = config_dir / "eval" / "lora_eval.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["generation"] = {"max_new_tokens": 4, "batch_size": 4, "prompts_limit": 2}
    cfg_path.write_text(yaml.safe_dump(cfg))


# What the trainer logs for the Reward Health Index (`training.probe`, `health.calibration`), planted: a
# cycle whose dimensions pulled together with steady gradients (RHI well above 0.70; no reward model here,
# so the index is DCS and GVS alone and the report names the three others as not measured).
HEALTHY = {
    "gradient_probes": [{"step": 6, "gda": {"curiosity|empathy": 0.9}, "left_out": []}],
    "grad_norms": [1.0, 1.01, 0.99, 1.0],
    "health_calibration": {"gvi_max_reference": 0.5},
}


def _report_dual_lora(instance: dg.DagsterInstance, metadata: dict) -> None:
    """Stand in for a dual_lora materialisation (the trainer's asset reports `version` and `path`)."""
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key="dual_lora", metadata=metadata))


def _run(home: Path, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    resources = {"hominem": HominemResource(home=str(home), config_dir=str(home / "config"))}
    return dg.materialize(
        [*EVALUATION_ASSETS, *EVALUATION_CHECKS, *HEALTH_ASSETS, *HEALTH_CHECKS],
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )


def _materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}


def test_good_adapter_promoted_regressing_one_blocked(hominem_home: Path, tiny_model_dir: Path) -> None:
    _small_eval_config(hominem_home / "config")
    model_name = model_name_for_spec(str(tiny_model_dir))
    registry = AdapterRegistry(hominem_home / "artifacts", model_name)
    instance = dg.DagsterInstance.ephemeral()

    good_model, _ = lora_model(tiny_model_dir)
    good = publish(registry, good_model, tiny_model_dir, **HEALTHY)
    _report_dual_lora(
        instance, {"trained": True, "version": good, "path": dg.MetadataValue.path(str(registry.root / good))}
    )
    # A newer folder that dual_lora never reported: the evaluation must not pick it up.
    damaging, _ = lora_model(tiny_model_dir, seed=2)
    perturb(damaging)
    bad = publish(registry, damaging, tiny_model_dir, parent=good)

    first = _run(hominem_home, instance)
    assert first.success
    assert {e.check_name: e.passed for e in first.get_asset_check_evaluations()} == {
        "lora_no_regression": True,
        "rhi_consolidation_gate": True,
    }
    assert _materialized(first) == {"lora_eval", "rhi_report", "adapter_promotion"}
    [eval_event] = [e for e in first.get_asset_materialization_events() if e.asset_key.path == ["lora_eval"]]
    meta = {k: v.value for k, v in eval_event.materialization.metadata.items()}
    assert meta["version"] == good and meta["passed"] is True
    assert meta["delta.general_nll_rel"] == 0.0 and isinstance(meta["base.general_nll"], float)
    assert "gate PASSED" in meta["summary"] and "no reward" in meta["reward_model"]
    assert read_report(Path(meta["report"])).version == good
    assert registry.pointer().target == good

    # dual_lora now publishes the damaging adapter: the gate refuses it (a warning, the run stays green),
    # promotion records why, and `current` stays.
    _report_dual_lora(instance, {"version": bad, "model_name": model_name})
    second = _run(hominem_home, instance)
    assert second.success
    [check] = [e for e in second.get_asset_check_evaluations() if e.check_name == "lora_no_regression"]
    assert check.passed is False and check.severity == dg.AssetCheckSeverity.WARN
    assert "general_nll" in check.description
    [held] = [
        e for e in second.get_asset_materialization_events() if e.asset_key.path == ["adapter_promotion"]
    ]
    held_meta = {k: v.value for k, v in held.materialization.metadata.items()}
    assert held_meta["promoted"] is False and "the evaluation failed" in held_meta["reason"]
    assert "general_nll" in held_meta["reason"] and held_meta["current"] == good
    assert registry.pointer().target == good
    assert registry.history() == []

    # Running the promotion alone after a failed evaluation refuses as well.
    alone = dg.materialize(
        [EVALUATION_ASSETS[1]],
        resources={
            "hominem": HominemResource(home=str(hominem_home), config_dir=str(hominem_home / "config"))
        },
        instance=instance,
        raise_on_error=False,
    )
    assert alone.success and registry.pointer().target == good
    [again] = [
        e for e in alone.get_asset_materialization_events() if e.asset_key.path == ["adapter_promotion"]
    ]
    assert again.materialization.metadata["promoted"].value is False

    # A cycle that had no data publishes no adapter: nothing is gated or promoted, and the run succeeds.
    _report_dual_lora(instance, {"trained": False, "reason": "no SFT rows or preference pairs"})
    idle = _run(hominem_home, instance)
    assert idle.success and registry.pointer().target == good
    [promotion] = [
        e for e in idle.get_asset_materialization_events() if e.asset_key.path == ["adapter_promotion"]
    ]
    assert promotion.materialization.metadata["promoted"].value is False

    # `make run`'s summary shows the registry and both evaluations.
    summary = build_summary(Settings(home=hominem_home))
    assert f"current -> {good}" in summary
    assert f"eval {good}: gate passed" in summary and f"eval {bad}: gate FAILED" in summary
