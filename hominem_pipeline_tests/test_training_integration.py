"""The trainer on the real store and the real reward model: unscored (imported) pairs are scored by the
current reward model, which is recorded, and consumed store SFT rows are marked used with the cycle."""

from __future__ import annotations

import json
from pathlib import Path

from hominem_pipeline.atomic import write_jsonl_atomic
from hominem_pipeline.embedding import Embedder
from hominem_pipeline.manifold import load_manifold
from hominem_pipeline.records import PreferencePair, SFTPair
from hominem_pipeline.reward_model import load_current
from hominem_pipeline.reward_model.config import RewardModelConfig
from hominem_pipeline.reward_model.dataset import sample_from_row, teacher_pairs
from hominem_pipeline.reward_model.registry import publish
from hominem_pipeline.reward_model.train import train_reward_model
from hominem_pipeline.settings import Settings
from hominem_pipeline.store import TrainingDatabase
from hominem_pipeline.training import load_config, run_training
from hominem_pipeline_tests.reward_data import KEYWORD, planted_rows


def test_unscored_pairs_are_scored_by_the_reward_model_and_store_sft_rows_marked_used(hominem_home: Path) -> None:
    settings = Settings()
    manifold = load_manifold(settings.manifold_path)
    samples = [sample_from_row(r, manifold) for r in planted_rows(manifold)]
    trained = train_reward_model(samples, teacher_pairs(samples, 0.05), manifold,
                                 Embedder("embedded:all-minilm-l6-v2"), RewardModelConfig())
    publish(trained, settings.artifacts_dir)
    reward_model = load_current(settings.artifacts_dir)
    assert reward_model is not None

    imported = [PreferencePair(prompt=f"I keep worrying about {t}. What should I do?",
                               chosen=f"{KEYWORD} Let's look at {t} together.", rejected=f"Forget about {t}.",
                               source="import") for t in ("my job", "my exam", "a friend", "moving house")]
    write_jsonl_atomic(settings.data_dir / "preferences/preferences.jsonl", [p.model_dump(mode="json") for p in imported])
    facts = [SFTPair(instruction=f"Where does {n} live?", response=f"{n} lives in {c}.", source="knowledge_update")
             for n, c in [("Ada", "Lisbon"), ("Bo", "Oslo"), ("Cy", "Quito")]]
    with TrainingDatabase(settings.database_path) as db:
        db.insert_sft_pairs(facts)
        config = load_config(settings, overrides={"max_steps": 2, "diversity": {"enabled": False},
                                                  "probe": {"interval": 1}, "sft_batch_size": 3})
        result = run_training(settings, config, db=db)
        used = {p.pair_id: p for p in db.get_sft_pairs(is_used=True)}
        unused = db.get_sft_pairs(is_used=False)

    meta = json.loads((result.path / "METADATA.json").read_text())
    assert meta["reward_model_version"] == reward_model.version
    assert meta["pairs_scored_by"] == reward_model.version
    assert meta["data_counts"]["preference_scored_by_reward_model"] == 4
    assert meta["notes"]["sft_source"] == "store"
    # The reward model filled dimension deltas, so the RHI probe had dimensions to measure.
    assert meta["gradient_probes"] and meta["gradient_probes"][0]["dimensions"]
    assert set(used) == {f.pair_id for f in facts} and not unused
    assert {p.training_epoch for p in used.values()} == {1}
    assert meta["sft_used_marked"] == 3 * 2  # two steps, each consumed the three rows
