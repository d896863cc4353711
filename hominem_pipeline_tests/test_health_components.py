"""The Reward Health Index components on planted inputs: each lands in [0, 1], moves the way its
definition says (coherent > fighting dimensions, steady > erratic gradients, stable > drifting manifold,
a robust and consistent reward model > a contradictory coin-flipper, predictive > anti-predictive local
rewards), and an unmeasurable component is reported as missing, not invented."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hominem_pipeline.health import components as C
from hominem_pipeline.health.config import HealthConfig, Weights
from hominem_pipeline.settings import ConfigError


def test_dcs_is_the_mean_of_positive_gradient_alignments() -> None:
    coherent = C.dcs(
        {"empathy|epistemic_integrity": 0.9, "empathy|curiosity": 0.7, "curiosity|epistemic_integrity": 0.8}
    )
    fighting = C.dcs(
        {
            "empathy|epistemic_integrity": -0.95,
            "empathy|curiosity": 0.2,
            "curiosity|epistemic_integrity": -0.5,
        }
    )
    assert coherent.value == pytest.approx(0.8)  # 2/(N(N-1)) * sum: the mean, not half of it
    assert fighting.value == pytest.approx(0.2 / 3)
    assert fighting.inputs["most_opposed"] == "empathy|epistemic_integrity"
    missing = C.dcs({}, left_out=["harm_avoidance"])
    assert missing.value is None and missing.inputs["left_out"] == ["harm_avoidance"]


def test_mean_gda_averages_probes_and_lists_undriven_dimensions() -> None:
    probes = [
        {"gda": {"a|b": 0.5}, "left_out": ["c"]},
        {"gda": {"a|b": -0.1}, "left_out": ["c", "a"]},
    ]
    gda, left = C.mean_gda(probes)
    assert gda == {"a|b": pytest.approx(0.2)} and left == ["c"]  # `a` was measured in another probe


def test_gvs_steady_gradients_score_higher_than_erratic_ones() -> None:
    steady = [1.0, 1.02, 0.98, 1.01, 0.99] * 4
    erratic = [0.2, 3.0, 0.5, 4.0, 0.1] * 4
    reference = C.gvi_reference(steady, window=5, percentile=95.0)
    assert reference is not None and reference > 0
    gvi_max = 2.0 * reference
    good, bad = C.gvs(steady, gvi_max, 20), C.gvs(erratic, gvi_max, 20)
    assert 0.4 <= good.value <= 1.0 and bad.value == 0.0
    assert C.gvs(steady, None, 20).value is None  # no calibration stored: not measured, not guessed
    assert C.gvs([1.0], gvi_max, 20).value is None


def test_mss_drift_and_curvature() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(8, 7))
    before = C.rdm(vectors)
    assert C.rdm_drift(before, before) == 0.0
    assert C.rdm_drift(before, list(reversed(before))) > 0.5  # a reshuffled geometry drifts
    smooth = [[0.1, 0.2, 0.3, 0.4, 0.5, 0.6]]
    jagged = [[1.0, -1.0, 1.0, -1.0, 1.0, -1.0]]
    c_smooth, used = C.curvature_variance(smooth)
    c_jagged, _ = C.curvature_variance(jagged)
    assert used == 1 and c_smooth == pytest.approx(0.0) and c_jagged == 1.0
    assert C.curvature_variance([[0.1, 0.2]])[0] is None  # too short to have a curvature
    stable, unstable = C.mss(0.0, c_smooth), C.mss(0.8, c_jagged)
    assert stable.value == pytest.approx(1.0) and unstable.value == pytest.approx(0.1)
    only_drift = C.mss(0.2, None)
    assert only_drift.value == pytest.approx(0.8) and "only drift" in only_drift.note
    assert C.mss(None, None).value is None


def test_cdrs_robust_consistent_model_beats_contradictory_coin_flipper() -> None:
    robust = [C.ScoredPair(d, 1.0, 0.9, 0.95) for d in ("support", "conflict", "ethics") for _ in range(3)]
    shaky = [
        C.ScoredPair("support", 0.2, -0.1, 0.52),
        C.ScoredPair("conflict", -0.3, 0.1, 0.45),
        C.ScoredPair("ethics", -0.2, -0.2, 0.48),
        C.ScoredPair("ethics", 0.1, -0.1, 0.51),
    ]
    good, bad = C.cdrs(robust), C.cdrs(shaky)
    assert good.value > 0.85 and bad.value < 0.35
    assert bad.inputs["c_contradiction"] == pytest.approx(0.75)
    assert bad.inputs["disagreeing_domains"] == ["conflict"]  # ethics agrees on 1 of 2: at least half
    assert C.cdrs([]).value is None


def test_lrps_is_the_positive_part_of_the_correlation() -> None:
    local = [0.1, 0.4, 0.5, 0.9]
    assert C.lrps(local, [0.0, 0.3, 0.6, 1.0]).value > 0.9
    assert C.lrps(local, [1.0, 0.6, 0.3, 0.0]).value == 0.0  # anti-predictive: clipped to 0
    assert C.lrps(local[:2], [0.0, 1.0]).value is None  # too few conversations
    assert C.lrps(local, [0.5] * 4).value is None  # constant outcomes: nothing to correlate


def test_index_uses_the_seed_weights_and_leaves_out_what_was_not_measured() -> None:
    parts = {
        n: C.Component(n, v)
        for n, v in zip(("dcs", "gvs", "mss", "cdrs", "lrps"), (1.0, 0.0, 1.0, 0.5, 1.0), strict=True)
    }
    assert C.weighted_index(parts, Weights()) == pytest.approx(0.25 + 0.25 + 0.10 + 0.15)
    assert C.partial_index(parts, Weights()) == pytest.approx(0.25 / 0.40)
    parts["lrps"] = C.Component("lrps", None)
    assert C.weighted_index(parts, Weights()) == pytest.approx((0.25 + 0.25 + 0.10) / 0.85)
    assert C.weighted_index({n: C.Component(n, None) for n in parts}, Weights()) is None


def test_compute_rhi_anchor_all_components_in_unit_interval() -> None:
    rng = np.random.default_rng(1)
    vecs = rng.normal(size=(6, 7))
    rhi, parts = C.compute_rhi(
        {"a|b": 0.6},
        [1.0, 1.1, 0.9, 1.0],
        0.5,
        C.rdm(vecs),
        C.rdm(vecs + 0.01),
        [[0.1, 0.3, 0.2, 0.4]],
        [C.ScoredPair("x", 1.0, 1.0, 0.8)],
        [0.1, 0.5, 0.9],
        [0.2, 0.4, 1.0],
    )
    assert all(p.value is not None and 0.0 <= p.value <= 1.0 for p in parts.values())
    assert rhi is not None and 0.0 <= rhi <= 1.0 and not math.isnan(rhi)


def test_config_defaults_are_the_seeds_and_bad_values_name_the_field(tmp_path) -> None:
    cfg = HealthConfig()
    assert (cfg.weights.dcs, cfg.weights.gvs, cfg.weights.mss, cfg.weights.cdrs, cfg.weights.lrps) == (
        0.25,
        0.15,
        0.25,
        0.20,
        0.15,
    )
    assert (cfg.fast_loop.skip, cfg.fast_loop.rollback, cfg.fast_loop.freeze) == (0.5, 0.3, 0.2)
    assert cfg.consolidation.threshold == 0.7 and cfg.slow_loop.falling_nights == 3
    from hominem_pipeline.health.config import load_health_config
    from hominem_pipeline.settings import REPO_ROOT, Settings

    assert load_health_config(Settings(config_dir=REPO_ROOT / "config")) == cfg  # the shipped file = the seed
    (tmp_path / "health.toml").write_text("[weights]\ndcs = 0.5\n")
    with pytest.raises(ConfigError, match="(?s)health.toml.*weights.*sum to 1"):
        load_health_config(Settings(home=tmp_path, config_dir=tmp_path))
    (tmp_path / "health.toml").write_text('[nightly]\ncron = "25:00"\n')
    with pytest.raises(ConfigError, match="(?s)nightly.*cron.*five-field cron expression"):
        load_health_config(Settings(home=tmp_path, config_dir=tmp_path))


def test_nightly_schedule_takes_time_and_timezone_from_config(tmp_path) -> None:
    import dagster as dg

    from hominem_pipeline.defs.health import nightly_schedule
    from hominem_pipeline.settings import Settings

    (tmp_path / "health.toml").write_text('[nightly]\ncron = "15 2 * * *"\ntimezone = "Europe/Berlin"\n')
    schedule = nightly_schedule(Settings(home=tmp_path, config_dir=tmp_path))
    assert schedule.cron_schedule == "15 2 * * *" and schedule.execution_timezone == "Europe/Berlin"
    assert (
        schedule.default_status == dg.DefaultScheduleStatus.RUNNING and schedule.job_name == "rhi_nightly_job"
    )
    (tmp_path / "health.toml").write_text('[nightly]\ntimezone = "Mars/Olympus"\n')
    with pytest.raises(ConfigError, match="(?s)nightly.*unknown timezone"):
        nightly_schedule(Settings(home=tmp_path, config_dir=tmp_path))
