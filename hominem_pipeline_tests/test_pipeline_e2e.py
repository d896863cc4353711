"""The foundation assets materialise end to end, in process, on a tiny model; a second run re-uses them."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from hominem_pipeline.defs.assets.foundation import base_model, reward_labels, seed_prompts, trajectories
from hominem_pipeline.defs.checks import FOUNDATION_CHECKS
from hominem_pipeline.defs.resources import HominemResource, TeacherResource
from hominem_pipeline.settings import Settings

ASSETS = [seed_prompts, base_model, trajectories, reward_labels]


def _resources(home: Path) -> dict:
    h = HominemResource(home=str(home), config_dir=str(home / "config"))
    return {"hominem": h, "teacher": TeacherResource(hominem=h)}


def _mat(result: dg.ExecuteInProcessResult, key: str) -> dict:
    [m] = [e.materialization for e in result.get_asset_materialization_events() if e.asset_key.path == [key]]
    return {k: v.value for k, v in m.metadata.items()}


def test_foundation_materialises_and_resumes(hominem_home: Path) -> None:
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(ASSETS + FOUNDATION_CHECKS, resources=_resources(hominem_home), instance=instance)
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {
        "seed_prompts_cover_categories": True,
        "trajectories_complete": True,
        "reward_labels_schema_valid": True,
        "reward_labels_coverage": True,
    }

    settings = Settings(home=hominem_home)
    traj = [json.loads(x) for x in settings.trajectories_export.read_text().splitlines()]
    labels = [json.loads(x) for x in settings.reward_samples_export.read_text().splitlines()]
    assert len(traj) == 5 * 2
    # Round-robin selection: 5 prompts cover all 5 seed categories.
    assert len({t["category"] for t in traj}) == 5
    assert {lab["trajectory_id"] for lab in labels} == {t["trajectory_id"] for t in traj}
    assert set(labels[0]["reward_vector"]) == {
        "empathy",
        "social_coherence",
        "agency_support",
        "epistemic_integrity",
        "harm_avoidance",
        "narrative_alignment",
        "curiosity",
    }
    first = _mat(result, "trajectories")
    assert first["generated"] == 10 and first["reused"] == 0
    assert _mat(result, "reward_labels")["labelled_now"] == 10

    # Second run: everything is already there, nothing is generated or rated again.
    again = dg.materialize(ASSETS, resources=_resources(hominem_home), instance=instance)
    assert again.success
    assert _mat(again, "trajectories")["generated"] == 0
    assert _mat(again, "trajectories")["reused"] == 10
    assert _mat(again, "reward_labels")["labelled_now"] == 0
    assert settings.reward_samples_export.read_text().splitlines() == [
        json.dumps(x, ensure_ascii=False, sort_keys=True) for x in labels
    ]
