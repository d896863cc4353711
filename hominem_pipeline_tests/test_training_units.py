"""Units of the dual-channel trainer: config refusal, recency weights, the safety gate, the diversity
sampler (on real MiniLM embeddings) and the batch-mixing strategies."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from hominem_pipeline.models import resolve_embedding_model
from hominem_pipeline.records import PreferencePair, SFTPair
from hominem_pipeline.settings import REPO_ROOT, ConfigError
from hominem_pipeline.training.config import RecencySettings, TrainingConfig, load_training_config
from hominem_pipeline.training.data import prepare_examples, recency_weights
from hominem_pipeline.training.sampler import (
    DiversitySampler,
    build_sampler,
    farthest_first,
    mixing_schedule,
)
from hominem_pipeline.training.trainer import NoTrainingData, channel_weights


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "train.yaml"
    p.write_text(text)
    return p


def test_shipped_configs_load_and_dpo_is_the_same_trainer_with_sft_weight_zero() -> None:
    dual = load_training_config(REPO_ROOT / "config/training/lora_dual.yaml")
    dpo = load_training_config(REPO_ROOT / "config/training/lora_dpo.yaml")
    assert (dual.sft_weight, dual.preference_weight, dual.batch_mixing) == (0.4, 0.6, "interleaved")
    assert (dual.recency.tau_fast_s, dual.recency.tau_slow_s) == (1800, 7200)
    assert (dpo.sft_weight, dpo.preference_weight) == (0.0, 1.0)
    assert dpo.model_dump(exclude={"sft_weight", "preference_weight"}) == dual.model_dump(
        exclude={"sft_weight", "preference_weight"}
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sft_weight: 0.5\npreference_weight: 0.6\n", "must sum to 1"),
        ("sft_weight: 0.6\npreference_weight: 0.4\n", "must stay >= 0.5"),
        ("batch_mixing: shuffled\n", "batch_mixing"),
        ("diversity:\n  k: 5\n", "diversity.k"),
        ("safety_gate:\n  block_threshold: 0.8\n  caution_threshold: 0.5\n", "block_threshold"),
        ("lora:\n  rnak: 8\n", "lora.rnak"),
    ],
)
def test_bad_configs_are_refused_naming_the_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_training_config(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_pure_preference_config_is_accepted_with_any_preference_weight_of_one(tmp_path: Path) -> None:
    cfg = load_training_config(_write(tmp_path, "sft_weight: 0\npreference_weight: 1\n"))
    assert cfg.sft_weight == 0


def test_recency_decays_from_the_newest_example_and_takes_the_max_of_both_taus() -> None:
    now = datetime(2026, 1, 1, 12)
    created = [now, now - timedelta(seconds=1800), now - timedelta(seconds=7200), None]
    settings = RecencySettings(min_weight=0.0)
    fast = recency_weights(created, "fast", settings)
    slow = recency_weights(created, "slow", settings)
    both = recency_weights(created, "both", settings)
    assert fast[:3] == pytest.approx([1.0, math.exp(-1), math.exp(-4)])
    assert slow[:3] == pytest.approx([1.0, math.exp(-0.25), math.exp(-1)])
    assert both == pytest.approx([max(a, b) for a, b in zip(fast, slow, strict=True)])
    assert fast[3] == 1.0  # undated
    floored = recency_weights([now, now - timedelta(days=3)], "fast", RecencySettings(min_weight=0.05))
    assert floored == pytest.approx([1.0, 0.05])


def test_safety_gate_skips_downweights_and_refuses_unsafe_chosen() -> None:
    cfg = TrainingConfig()
    t = datetime(2026, 1, 1)

    def pair(i: int, **kw: object) -> PreferencePair:
        return PreferencePair(
            prompt=f"p{i}", chosen=f"good {i}", rejected=f"bad {i}", source="teacher", created_at=t, **kw
        )

    data = prepare_examples(
        cfg,
        [
            pair(0, reward_intensity=0.8, safety_score=0.9),
            pair(1, reward_intensity=0.8, safety_score=0.5),  # caution band: x0.5
            pair(2, reward_intensity=0.8, safety_score=0.1),  # blocked
            pair(3, reward_intensity=0.8, safety_score=0.9, chosen_safety=0.1),  # refused
            pair(4),  # unscored, no reward model: neutral intensity
        ],
        [SFTPair(instruction="q", response="a", source="teacher", safety_score=0.2)],
    )
    weights = {e.example_id: e.weight for e in data.examples}
    ids = {i: pair(i).pair_id for i in range(5)}
    assert weights[ids[0]] == pytest.approx(0.8)
    assert weights[ids[1]] == pytest.approx(0.4)
    assert weights[ids[4]] == pytest.approx(0.5)
    assert ids[2] not in weights and ids[3] not in weights
    assert data.counts["preference_refused_unsafe_chosen"] == 2
    assert data.counts["preference_caution"] == 1
    assert data.counts["preference_neutral_unscored"] == 1
    assert data.counts["sft_blocked"] == 1
    skip = TrainingConfig.model_validate({"safety_gate": {"unscored": "skip"}})
    assert prepare_examples(skip, [pair(4)], []).examples == []


def test_channel_weights_follow_data_availability() -> None:
    cfg = TrainingConfig()
    assert channel_weights(cfg, 10, 10) == (0.4, 0.6)
    assert channel_weights(cfg, 0, 10) == (0.0, 1.0)
    assert channel_weights(cfg, 10, 0) == (1.0, 0.0)  # single_channel: train (the default)
    strict = TrainingConfig(single_channel="skip")
    with pytest.raises(NoTrainingData, match="reward \\(preference\\) channel has no examples"):
        channel_weights(strict, 10, 0)
    with pytest.raises(NoTrainingData, match="memory \\(SFT\\) channel"):
        channel_weights(strict, 0, 10)
    dyn = TrainingConfig(dynamic_weighting=True)
    s, p = channel_weights(dyn, 10, 40)
    assert p > 0.6 and s + p == pytest.approx(1.0)
    assert channel_weights(dyn, 1000, 10) == (0.5, 0.5)  # preference never drops below 0.5


TEXTS = {
    "cooking": [
        "How long should I boil pasta in salted water?",
        "Which spices go well in a chicken curry recipe?",
        "How do I bake sourdough bread in my oven?",
        "Can I roast vegetables in the oven without oil?",
        "How do I cook a tomato sauce for pasta?",
    ],
    "astronomy": [
        "Why does the planet Mars look red in the night sky?",
        "How far from Earth is the Andromeda galaxy?",
        "What happens to a star that collapses into a black hole?",
        "Why does the Moon show phases each month?",
        "How hot is the surface of the Sun compared with other stars?",
    ],
    "finance": [
        "How do I plan a monthly budget for my salary?",
        "How does compound interest grow my savings account?",
        "Should I pay off credit card debt or put money in savings?",
        "How does a stock market index fund work?",
        "How do banks calculate my credit score for a loan?",
    ],
}


def test_diversity_sampler_spreads_batches_over_minilm_clusters() -> None:
    texts = [t for group in TEXTS.values() for t in group]
    topic = [name for name, group in TEXTS.items() for _ in group]
    sampler = build_sampler(
        texts,
        [1.0] * len(texts),
        3,
        diversity=True,
        embedding_model=resolve_embedding_model("embedded:all-minilm-l6-v2"),
        k=3,
        per_cluster=1,
        farthest_first_basis=False,
        seed=0,
    )
    # k-means over MiniLM embeddings mostly recovers the three topics (purity over the clusters).
    majority = 0
    for c in set(sampler.labels.tolist()):
        members = [t for label, t in zip(sampler.labels, topic, strict=True) if label == c]
        majority += max(members.count(t) for t in TEXTS)
    assert majority / len(texts) >= 0.8
    epoch = sampler._epoch_batches()
    assert sorted(i for d in epoch for i in d.indices) == list(range(len(texts)))  # each example once
    counts = np.bincount(sampler.labels)
    for draw in epoch[: int(counts.min())]:  # while every cluster has members left: one per cluster per batch
        assert len({int(sampler.labels[i]) for i in draw.indices}) == 3
    it = iter(sampler)
    next(it)
    assert sampler.coverage() == 1.0


def test_sampler_draws_heavier_examples_first_within_a_cluster() -> None:
    weights = np.array([0.05, 0.05, 0.05, 0.05, 1.0])
    first = []
    for seed in range(200):
        s = DiversitySampler(weights, np.zeros(5, dtype=int), batch_size=1, per_cluster=1, seed=seed)
        draw = s._epoch_batches()[0]
        first.append(draw.indices[0])
        assert sum(draw.probabilities) <= 1.0
    assert first.count(4) / len(first) > 0.7  # p = 1.0 / 1.2


def test_farthest_first_picks_spread_points() -> None:
    pts = np.array([[0.0, 0.0], [0.1, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.1]])
    assert farthest_first(pts, 3, start=0) == [0, 4, 2] or farthest_first(pts, 3, start=0) == [0, 4, 3]


def _plain(n: int, batch: int) -> DiversitySampler:
    return DiversitySampler(np.ones(n), np.arange(n), batch_size=batch, per_cluster=1, seed=1)


def test_mixing_strategies() -> None:
    inter = list(mixing_schedule("interleaved", _plain(6, 2), _plain(6, 2), 4, 0.4, seed=0))
    assert all(s.sft is not None and s.preference is not None for s in inter)
    alt = list(mixing_schedule("alternating", _plain(6, 2), _plain(6, 2), 4, 0.4, seed=0))
    assert [(s.sft is None, s.preference is None) for s in alt] == [(True, False), (False, True)] * 2
    mixed = list(mixing_schedule("mixed", _plain(50, 2), _plain(50, 2), 200, 0.4, seed=0))
    n_sft = sum(len(s.sft.indices) for s in mixed if s.sft)
    n_pref = sum(len(s.preference.indices) for s in mixed if s.preference)
    assert n_sft + n_pref == 200 * 4
    assert 0.35 < n_sft / (n_sft + n_pref) < 0.45  # in proportion to sft_weight
    assert any(s.sft is None or s.preference is None for s in mixed)  # composition varies per step
    only_pref = list(mixing_schedule("interleaved", None, _plain(4, 2), 3, 0.0, seed=0))
    assert all(s.sft is None and s.preference is not None for s in only_pref)
