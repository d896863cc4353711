"""`hominem train` and the `dual_lora` asset run the same training cycle on the project's files and
publish a loadable PEFT adapter under artifacts/lora/<model>/<version>/."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
from click.testing import CliRunner

from hominem_pipeline.atomic import Pointer, write_jsonl_atomic
from hominem_pipeline.cli import main
from hominem_pipeline.defs.assets.training import dual_lora
from hominem_pipeline.defs.resources import HominemResource
from hominem_pipeline.records import PreferencePair, SFTPair
from hominem_pipeline.settings import Settings
from hominem_pipeline.store import TrainingDatabase


def _seed_data(home: Path, sft_in_store: bool = False) -> None:
    t = datetime(2026, 11, 1, 12)
    pairs = [
        PreferencePair(
            prompt=f"I am nervous about {topic}.",
            chosen=f"That is understandable; what part of {topic} worries you?",
            rejected="Stop worrying.",
            source="teacher",
            reward_intensity=0.9,
            safety_score=0.95,
            dimension_deltas={"empathy": 0.7, "curiosity": 0.4, "agency_support": 0.1},
            created_at=t - timedelta(minutes=i),
        )
        for i, topic in enumerate(
            ["my exam", "a job interview", "flying", "a first date", "public speaking", "a move"]
        )
    ]
    sft = [
        SFTPair(
            instruction=f"Where does {n} live?",
            response=f"{n} lives in {c}.",
            source="knowledge_update",
            created_at=t,
        )
        for n, c in [("Ada", "Lisbon"), ("Bo", "Oslo"), ("Cy", "Quito"), ("Di", "Hanoi")]
    ]
    write_jsonl_atomic(
        home / "data/preferences/preferences.jsonl", [p.model_dump(mode="json") for p in pairs]
    )
    if sft_in_store:
        with TrainingDatabase(Settings().database_path) as db:
            db.insert_sft_pairs(sft)
    else:
        write_jsonl_atomic(home / "data/sft/sft_training.jsonl", [s.model_dump(mode="json") for s in sft])


def test_hominem_train_publishes_an_adapter_and_refuses_a_bad_config(
    hominem_home: Path, tiny_model_dir: Path
) -> None:
    _seed_data(hominem_home)
    runner = CliRunner()
    bad = runner.invoke(
        main, ["train", "--set", "sft_weight=0.6", "--set", "preference_weight=0.4", "--no-progress"]
    )
    assert bad.exit_code != 0
    assert "must stay >= 0.5" in bad.output

    ok = runner.invoke(
        main,
        [
            "train",
            "--max-steps",
            "3",
            "--set",
            "diversity.enabled=false",
            "--set",
            "probe.interval=2",
            "--no-store",
            "--no-progress",
        ],
    )
    assert ok.exit_code == 0, ok.output
    root = Settings().artifacts_dir / "lora" / tiny_model_dir.name
    [folder] = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert f"adapter {folder.name} -> {folder}" in ok.output
    assert (folder / "adapter_model.safetensors").is_file() and (folder / "adapter_config.json").is_file()
    meta = json.loads((folder / "METADATA.json").read_text())
    assert meta["version"] == folder.name
    assert meta["channel_contributions"]["sft"]["examples_seen"] > 0
    assert meta["channel_contributions"]["preference"]["examples_seen"] > 0
    assert set(meta["data_hashes"]) == {"preferences", "sft"}
    assert meta["config"]["sft_weight"] == 0.4
    assert len(meta["grad_norms"]) == 3
    [probe] = meta["gradient_probes"]  # step 2 of 3
    assert probe["dimensions"] == ["agency_support", "curiosity", "empathy"]
    assert set(probe["gda"]) == {"agency_support|curiosity", "agency_support|empathy", "curiosity|empathy"}
    assert Pointer(root, "current").target is None  # promotion is not the trainer's job


def test_dual_lora_asset_trains_with_diversity_sampler_and_reports_metadata(
    hominem_home: Path, tiny_model_dir: Path
) -> None:
    _seed_data(hominem_home, sft_in_store=True)
    resource = HominemResource(home=str(hominem_home), config_dir=str(hominem_home / "config"))
    # Entered, so Dagster's context-local defs-state storage is this instance's for the run.
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [dual_lora],
            resources={"hominem": resource},
            run_config={"ops": {"dual_lora": {"config": {"max_steps": 2, "batch_mixing": "alternating"}}}},
            instance=instance,
        )
    assert result.success
    [mat] = [e.materialization for e in result.get_asset_materialization_events()]
    meta = {k: v.value for k, v in mat.metadata.items()}
    assert meta["trained"] is True and meta["steps"] == 2
    assert Path(meta["path"]).name == meta["version"]
    assert mat.tags["dagster/data_version"] == meta["version"]
    # alternating: step 1 preference only, step 2 SFT only
    rows = [json.loads(x) for x in (Path(meta["path"]) / "training_log.jsonl").read_text().splitlines()]
    assert "preference_loss" in rows[0] and "sft_loss" not in rows[0]
    assert "sft_loss" in rows[1] and "preference_loss" not in rows[1]
    assert meta["cluster_coverage"]["preference"] > 0
    # The SFT step trained on two store rows and the knowledge-consolidation steps after it on all four (they
    # are knowledge updates): recorded against the adapter, not yet marked used (that is promotion's job,
    # once the adapter passes its evaluation).
    assert {r["phase"] for r in rows[2:]} == {"knowledge"} and len(rows) == 2 + 16
    assert meta["sft_rows_trained"] == 4
    with TrainingDatabase(Settings().database_path) as db:
        assert db.get_sft_pairs(is_used=True) == []
