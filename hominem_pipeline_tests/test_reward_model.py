"""The reward model learns from text (planted-signal recovery), saves and reloads exactly, splits by
prompt, tolerates missing labels, and uses preference pairs. Uses the real packaged MiniLM embedder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hominem_pipeline.embedding import Embedder
from hominem_pipeline.manifold import RewardManifold, load_manifold
from hominem_pipeline.reward_model import RewardModel, RewardOutput, load_current
from hominem_pipeline.reward_model.config import RewardModelConfig
from hominem_pipeline.reward_model.dataset import (
    Pair,
    load_samples,
    sample_from_row,
    split_data,
    teacher_pairs,
)
from hominem_pipeline.reward_model.registry import publish, reward_model_root
from hominem_pipeline.reward_model.train import TrainingResult, train_reward_model
from hominem_pipeline.settings import REPO_ROOT
from hominem_pipeline_tests.reward_data import KEYWORD, constant_rows, planted_rows

EMBEDDER = "embedded:all-minilm-l6-v2"


@pytest.fixture(scope="module")
def manifold() -> RewardManifold:
    return load_manifold(REPO_ROOT / "config" / "schemas" / "reward.yaml")


@pytest.fixture(scope="module")
def planted(manifold: RewardManifold) -> TrainingResult:
    samples = [sample_from_row(r, manifold) for r in planted_rows(manifold)]
    return train_reward_model(
        samples, teacher_pairs(samples, 0.05), manifold, Embedder(EMBEDDER), RewardModelConfig()
    )


def test_planted_keyword_signal_is_recovered_well_above_the_baseline(planted: TrainingResult) -> None:
    empathy = planted.metrics["validation"]["heads"]["empathy"]
    assert empathy["n"] >= 8
    assert empathy["mae"] < 0.3 * empathy["baseline_mae"]
    assert empathy["pearson"] > 0.9
    assert planted.beats_baseline
    # Noise dimensions: nothing to find, so the heads stay near the mean instead of inventing signal.
    curiosity = planted.metrics["validation"]["heads"]["curiosity"]
    assert curiosity["mae"] < 1.5 * curiosity["baseline_mae"]

    # On prompts the model never saw, the keyword still drives empathy.
    prompt = "My cat has been ill for weeks and I can't sleep. Any advice?"
    kind, plain = planted.model.score_batch(
        [(prompt, f"{KEYWORD} Ask your vet what to watch for."), (prompt, "Ask your vet what to watch for.")]
    )
    assert kind.reward_vector["empathy"] > plain.reward_vector["empathy"] + 0.5


def test_report_has_metrics_baseline_pairs_and_length_bias(
    planted: TrainingResult, manifold: RewardManifold
) -> None:
    m = planted.metrics
    for head in [*manifold.names, "reward_intensity", "safety_score"]:
        assert set(m["validation"]["heads"][head]) == {"n", "mae", "baseline_mae", "pearson", "spearman"}
        assert set(m["length_bias"][head]) == {"model", "teacher"}
        assert m["training"][head]["alpha"] > 0
    # scalar_preference is the gated sum of the dimensions, judged against the teacher's scalar too.
    assert m["validation"]["heads"]["scalar_preference"]["n"] > 0
    assert m["verdict"]["basis"] == "teacher labels, out of fold" and m["verdict"]["passed"]
    # Judged on every labelled sample (out of fold), not only the few validation prompts.
    assert m["verdict"]["n"] == planted.metadata["training_data"]["samples"]
    assert m["pairs"]["n"] > 0 and 0.0 <= m["pairs"]["accuracy"] <= 1.0
    assert m["pairs"]["baseline_accuracy"] == 0.5


def test_scores_stay_inside_the_manifold_ranges(planted: TrainingResult, manifold: RewardManifold) -> None:
    out = planted.model.score("?", "")  # far from anything seen in training
    assert isinstance(out, RewardOutput)
    assert set(out.reward_vector) == set(manifold.names)
    for d in manifold.dimensions:
        assert d.range[0] <= out.reward_vector[d.name] <= d.range[1]
    assert 0.0 <= out.reward_intensity <= 1.0 and 0.0 <= out.safety_score <= 1.0
    assert -1.0 <= out.scalar_preference <= 1.0


def test_save_load_round_trip_gives_identical_scores(planted: TrainingResult, tmp_path: Path) -> None:
    published = publish(planted, tmp_path)
    assert published.new and published.accepted
    assert published.path == reward_model_root(tmp_path) / published.version
    meta = json.loads((published.path / "METADATA.json").read_text())
    assert meta["version"] == published.version and meta["created_at"]
    assert meta["dimensions"] == list(planted.model.manifold.names)
    assert meta["reward_intensity"]["range"] == [0.0, 1.0] and meta["reward_intensity"]["semantics"]
    assert meta["safety_score"]["range"] == [0.0, 1.0] and meta["safety_score"]["semantics"]
    assert set(meta["calibration"]["empathy"]) >= {"target_mean", "target_std", "alpha", "clip_range"}
    assert len(meta["training_data"]["hash"]) == 16
    assert meta["metrics"]["validation"]["summary"]["beats_baseline"] is True

    items = [("How do I tell my friend I'm upset?", f"{KEYWORD} Start with how you feel."), ("Hi", "Hello!")]
    loaded = RewardModel.load(published.path, embedder=Embedder(EMBEDDER))
    assert loaded.version == published.version
    assert loaded.score_batch(items) == planted.model.score_batch(items)
    assert load_current(tmp_path).score_batch(items) == planted.model.score_batch(items)

    # Content-addressed: publishing the same model again adds no new version.
    again = publish(planted, tmp_path)
    assert again.version == published.version and not again.new
    assert [p.name for p in reward_model_root(tmp_path).iterdir() if p.is_dir()] == [published.version]


def test_split_is_grouped_by_prompt_and_deterministic(manifold: RewardManifold) -> None:
    samples = [sample_from_row(r, manifold) for r in planted_rows(manifold)]
    pairs = [Pair(f"imported prompt {i}", "good", "bad", "import") for i in range(20)]
    a = split_data(samples, pairs, 0.25, "salt")
    b = split_data(list(reversed(samples)), list(reversed(pairs)), 0.25, "salt")
    train_prompts = {s.prompt for s in a.train} | {p.prompt for p in a.train_pairs}
    val_prompts = {s.prompt for s in a.validation} | {p.prompt for p in a.validation_pairs}
    assert val_prompts and not train_prompts & val_prompts
    assert len({s.prompt for s in a.validation}) == 4  # ceil(0.25 * 16 prompts)
    assert len(a.validation_pairs) == 5
    assert {s.prompt for s in b.validation} == {s.prompt for s in a.validation}
    assert split_data(samples, pairs, 0.25, "other salt").validation != a.validation


def test_missing_labels_are_tolerated(manifold: RewardManifold, tmp_path: Path) -> None:
    rows = planted_rows(manifold)
    for r in rows[::2]:
        del r["reward_vector"]["curiosity"]
        r["scalar_preference"] = None
    path = tmp_path / "labels.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    samples = load_samples(path, manifold)
    result = train_reward_model(samples, [], manifold, Embedder(EMBEDDER), RewardModelConfig())
    assert result.metadata["calibration"]["curiosity"]["alpha"] > 0
    n_train_curiosity = sum(1 for s in result.split.train if "curiosity" in s.targets)
    assert 0 < n_train_curiosity < len(result.split.train)
    assert (
        result.metrics["validation"]["heads"]["empathy"]["mae"]
        < 0.3 * result.metrics["validation"]["heads"]["empathy"]["baseline_mae"]
    )


def test_bad_label_rows_fail_with_file_and_line(manifold: RewardManifold, tmp_path: Path) -> None:
    rows = planted_rows(manifold)[:3]
    rows[1]["reward_vector"]["empathy"] = 3.0
    path = tmp_path / "labels.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match=r"labels.jsonl:2: empathy: 3.0 is outside"):
        load_samples(path, manifold)


def test_constant_labels_cannot_beat_the_baseline(manifold: RewardManifold) -> None:
    samples = [sample_from_row(r, manifold) for r in constant_rows(manifold)]
    result = train_reward_model(samples, [], manifold, Embedder(EMBEDDER), RewardModelConfig())
    assert not result.beats_baseline


def test_bradley_terry_head_learns_from_preference_pairs(manifold: RewardManifold) -> None:
    # Labels carry no preference signal at all; only the pairs say "the reply that thanks wins".
    samples = [sample_from_row(r, manifold) for r in constant_rows(manifold)]
    topics = [
        "taxes",
        "cooking rice",
        "a job interview",
        "running",
        "sleep",
        "gardening",
        "chess",
        "painting",
        "saving money",
        "learning Spanish",
        "a cover letter",
        "a first date",
        "public speaking",
        "moving",
        "a bike repair",
        "a birthday party",
        "a wedding toast",
        "a noisy neighbour",
        "a headache",
        "a puppy",
    ]
    pairs = [
        Pair(
            f"Can you help me with {t}?",
            f"Thanks for asking about {t}! Here is how to start.",
            f"Here is how to start with {t}.",
            "import",
        )
        for t in topics
    ]
    result = train_reward_model(samples, pairs, manifold, Embedder(EMBEDDER), RewardModelConfig())
    pref = result.metadata["preference"]
    # Nothing says which dimension these pairs speak to and the labels are flat: every dimension learns.
    assert pref["pair_dimensions"] == {"overall": len(result.split.train_pairs)}
    for d in manifold.names:
        assert pref["per_dimension"][d]["loss_end"] < pref["per_dimension"][d]["loss_start"]
    assert result.metrics["pairs"]["n"] >= 3
    assert result.metrics["pairs"]["accuracy"] >= 0.99
