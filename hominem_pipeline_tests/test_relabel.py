"""`reward_labels` re-labels the stored trajectories for a changed reward manifold: materialising that one
asset after editing config/schemas/reward.yaml rates every candidate on the new dimensions and generates no
trajectory again (label ids hash the manifold's schema; trajectory ids do not)."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import yaml

from hominem_pipeline.defs.assets.foundation import reward_labels, seed_prompts, trajectories
from hominem_pipeline.defs.resources import HominemResource, TeacherResource
from hominem_pipeline.settings import Settings
from hominem_pipeline_tests.conftest import write_config


def _meta(result: dg.ExecuteInProcessResult, key: str) -> dict:
    [event] = result.asset_materializations_for_node(key)
    return {k: v.value for k, v in event.metadata.items()}


def test_reward_labels_relabel_for_a_changed_manifold_without_new_trajectories(hominem_home: Path) -> None:
    write_config(hominem_home / "config", pipeline={"generation.prompts_limit": 2})  # 4 candidates: enough
    hominem = HominemResource(home=str(hominem_home))
    resources = {"hominem": hominem, "teacher": TeacherResource(hominem=hominem)}
    instance = dg.DagsterInstance.ephemeral()
    settings = Settings(home=hominem_home)

    first = dg.materialize(
        [seed_prompts, trajectories, reward_labels], resources=resources, instance=instance
    )
    assert first.success
    made = _meta(first, "trajectories")
    assert made["generated"] == made["count"] > 0
    trajectories_before = settings.trajectories_export.read_bytes()

    # The user edits the manifold: one dimension dropped, one added.
    raw = yaml.safe_load(settings.manifold_path.read_text())
    template = dict(raw["dimensions"][0])
    raw["dimensions"] = [d for d in raw["dimensions"] if d["name"] != "curiosity"]
    raw["dimensions"].append(
        {**template, "name": "playfulness", "description": "Light, warm humour where it fits."}
    )
    settings.manifold_path.write_text(yaml.safe_dump(raw, sort_keys=False))

    relabel = dg.materialize(
        [seed_prompts, trajectories, reward_labels],
        resources=resources,
        instance=instance,
        selection=[reward_labels.key],
    )
    assert relabel.success
    assert [e.asset_key for e in relabel.get_asset_materialization_events()] == [reward_labels.key]
    meta = _meta(relabel, "reward_labels")
    assert meta["labelled_now"] == meta["count"] == made["count"] and meta["reused"] == 0
    assert settings.trajectories_export.read_bytes() == trajectories_before  # nothing regenerated
    rows = [json.loads(line) for line in settings.reward_samples_export.read_text().splitlines()]
    assert len(rows) == made["count"]
    for row in rows:
        assert "playfulness" in row["reward_vector"] and "curiosity" not in row["reward_vector"]

    # The same manifold again: every label is reused.
    again = dg.materialize(
        [seed_prompts, trajectories, reward_labels],
        resources=resources,
        instance=instance,
        selection=[reward_labels.key],
    )
    assert _meta(again, "reward_labels")["labelled_now"] == 0
