"""The trainer on the real store and the real reward model: unscored examples of both channels (imported
pairs, knowledge rows) are scored and gated by the current reward model, which is recorded, and the
store SFT rows a cycle trained on are recorded against its adapter, not marked used."""

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
from hominem_pipeline.store.consumption import trained_by
from hominem_pipeline.training import load_config, run_training
from hominem_pipeline_tests.reward_data import KEYWORD, planted_rows


def test_unscored_examples_of_both_channels_are_scored_and_gated_by_the_reward_model(
    hominem_home: Path,
) -> None:
    settings = Settings()
    manifold = load_manifold(settings.manifold_path)
    samples = [sample_from_row(r, manifold) for r in planted_rows(manifold)]
    trained = train_reward_model(
        samples,
        teacher_pairs(samples, 0.05),
        manifold,
        Embedder("embedded:all-minilm-l6-v2"),
        RewardModelConfig(),
    )
    publish(trained, settings.artifacts_dir)
    reward_model = load_current(settings.artifacts_dir)
    assert reward_model is not None

    imported = [
        PreferencePair(
            prompt=f"I keep worrying about {t}. What should I do?",
            chosen=f"{KEYWORD} Let's look at {t} together.",
            rejected=f"Forget about {t}.",
            source="import",
        )
        for t in ("my job", "my exam", "a friend", "moving house")
    ]
    write_jsonl_atomic(
        settings.data_dir / "preferences/preferences.jsonl", [p.model_dump(mode="json") for p in imported]
    )
    facts = [
        SFTPair(instruction=f"Where does {n} live?", response=f"{n} lives in {c}.", source="knowledge_update")
        for n, c in [("Ada", "Lisbon"), ("Bo", "Oslo"), ("Cy", "Quito")]
    ]
    with TrainingDatabase(settings.database_path) as db:
        db.insert_sft_pairs(facts)
        config = load_config(
            settings,
            overrides={
                "max_steps": 2,
                "diversity": {"enabled": False},
                "probe": {"interval": 1},
                "sft_batch_size": 3,
            },
        )
        result = run_training(settings, config, db=db)
        unused = db.get_sft_pairs(is_used=False)
        trained = trained_by(db, result.path.parent.name, result.version)
        scores = reward_model.score_batch([(f.instruction, f.response) for f in facts])

    meta = json.loads((result.path / "METADATA.json").read_text())
    assert meta["reward_model_version"] == reward_model.version
    assert meta["scored_by"] == reward_model.version
    counts = meta["data_counts"]
    assert counts["preference_scored_by_reward_model"] == 4
    assert counts["sft_scored_by_reward_model"] == 3 and "sft_neutral_unscored" not in counts
    # Each fact went through the safety gate with the reward model's own safety score, whichever way it fell.
    gate = config.safety_gate
    blocked = sum(1 for s in scores if s.safety_score < gate.block_threshold)
    assert counts.get("sft_blocked", 0) == blocked
    assert counts.get("sft_caution", 0) == sum(
        1 for s in scores if gate.block_threshold <= s.safety_score < gate.caution_threshold
    )
    assert meta["notes"]["sft_source"] == "store"
    # The reward model filled dimension deltas, so the RHI probe had dimensions to measure.
    assert meta["gradient_probes"] and meta["gradient_probes"][0]["dimensions"]
    # Trained rows are recorded against the adapter; none is used until it becomes `current`.
    assert len(unused) == 3
    assert trained == {
        f.pair_id for f, s in zip(facts, scores, strict=True) if s.safety_score >= gate.block_threshold
    }
    assert meta["trained_examples"]["sft"] == len(trained)
