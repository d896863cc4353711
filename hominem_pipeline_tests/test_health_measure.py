"""MSS, CDRS and LRPS measured through a real reward model (MiniLM heads trained on the planted rule
"empathy is high exactly when the reply apologises", the same fixture the reward-model tests recover):
a domain where the teacher prefers the apology is consistent and one where it prefers the opposite is
named as disagreeing; conversations whose outcome follows the apology make LRPS high, inverted outcomes
make it 0; an unchanged reward geometry has no drift and a reshuffled accepted one does."""

from __future__ import annotations

import pytest

from hominem_pipeline.embedding import Embedder
from hominem_pipeline.health.config import HealthConfig
from hominem_pipeline.health.measure import Conversation, reward_components
from hominem_pipeline.manifold import load_manifold
from hominem_pipeline.reward_model.config import RewardModelConfig
from hominem_pipeline.reward_model.dataset import sample_from_row, teacher_pairs
from hominem_pipeline.reward_model.train import train_reward_model
from hominem_pipeline.settings import REPO_ROOT
from hominem_pipeline_tests.reward_data import ADVICE, KEYWORD, planted_rows


@pytest.fixture(scope="module")
def reward_model():
    manifold = load_manifold(REPO_ROOT / "config" / "schemas" / "reward.yaml")
    samples = [sample_from_row(r, manifold) for r in planted_rows(manifold)]
    result = train_reward_model(samples, teacher_pairs(samples, 0.05), manifold,
                                Embedder("embedded:all-minilm-l6-v2"), RewardModelConfig())
    return result.model


TOPICS = ["my job", "a friend", "my exam", "a breakup"]


def _conversations() -> tuple[list[Conversation], dict[str, tuple[float, str]]]:
    convs, outcomes = [], {}
    for i, topic in enumerate(TOPICS * 2):
        kind = i % 2 == 0
        conv = Conversation(f"c{i}")
        for t in range(3):
            reply = (KEYWORD + " " if kind else "") + ADVICE[(i + t) % len(ADVICE)]
            conv.turns.append((f"m{i}-{t}", f"I keep worrying about {topic}. What should I do?", reply))
        convs.append(conv)
        outcomes[conv.conversation_id] = (1.0 if kind else -1.0, "user emoji valence")
    return convs, outcomes


def test_reward_side_components_follow_the_planted_rule(reward_model) -> None:
    cfg = HealthConfig()
    pairs = []
    for topic in TOPICS:
        prompt = f"I keep worrying about {topic}. What should I do?"
        pairs.append(("support", prompt, KEYWORD + " " + ADVICE[0], ADVICE[0]))  # teacher prefers the apology
        pairs.append(("reversed", prompt, ADVICE[1], KEYWORD + " " + ADVICE[1]))  # teacher prefers the other
    convs, outcomes = _conversations()
    probe = [(p, c) for _, p, c, _ in pairs] + [(p, r) for _, p, _, r in pairs]
    parts, rdm = reward_components(reward_model, probe, None, pairs, convs, outcomes, cfg)
    assert all(p.value is None or 0.0 <= p.value <= 1.0 for p in parts.values())

    cdrs = parts["cdrs"]
    assert cdrs.inputs["disagreeing_domains"] == ["reversed"] and cdrs.inputs["c_consistency"] == 0.5
    assert cdrs.inputs["pairs"] == 8 and cdrs.inputs["domains"] == 2

    assert parts["lrps"].value > 0.5 and parts["lrps"].inputs["outcome_sources"] == {"user emoji valence": 8}
    inverted = {cid: (-v, src) for cid, (v, src) in outcomes.items()}
    parts_inv, _ = reward_components(reward_model, probe, None, pairs, convs, inverted, cfg)
    assert parts_inv["lrps"].value == 0.0

    # MSS: first measurement has nothing accepted to compare with (curvature only); the same geometry
    # later has no drift; a reshuffled accepted geometry drifts and scores lower.
    assert parts["mss"].inputs["compared_with_accepted"] is False and "only curvature" in parts["mss"].note
    same, _ = reward_components(reward_model, probe, rdm, pairs, convs, outcomes, cfg)
    assert same["mss"].inputs["drift"] == 0.0
    moved, _ = reward_components(reward_model, probe, list(reversed(rdm)), pairs, convs, outcomes, cfg)
    assert moved["mss"].inputs["drift"] > 0.0 and moved["mss"].value < same["mss"].value
