"""MSS, CDRS and LRPS measured through a real reward model (MiniLM heads trained on the planted rule
"empathy is high exactly when the reply apologises", the same fixture the reward-model tests recover):
a domain where the teacher prefers the apology is consistent and one where it prefers the opposite is
named as disagreeing; for a user who gave no judgement, conversations whose teacher outcome follows the
apology make LRPS high and inverted ones make it 0; the user's own judgements are read through a
cross-fitted user head instead; an unchanged reward geometry has no drift and a reshuffled accepted one does."""

from __future__ import annotations

import pytest

from hominem_pipeline.embedding import Embedder
from hominem_pipeline.health.config import HealthConfig
from hominem_pipeline.health.measure import Conversation, reward_components
from hominem_pipeline.health.predictivity import Judgements
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
    result = train_reward_model(
        samples,
        teacher_pairs(samples, 0.05),
        manifold,
        Embedder("embedded:all-minilm-l6-v2"),
        RewardModelConfig(),
    )
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
        outcomes[conv.conversation_id] = (1.0 if kind else -1.0, "teacher reward labels")
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

    assert parts["lrps"].value > 0.5 and parts["lrps"].inputs["outcome_sources"] == {
        "teacher reward labels": 8
    }
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


def _judged_conversations(judge) -> tuple[list[Conversation], Judgements]:
    """16 single-prompt conversations, each with an apologising draft and a plain one (a regenerate), both
    given an emoji and one chosen, by `judge(i, apologises) -> valence`."""
    convs, judgements = [], Judgements()
    for i in range(16):
        conv = Conversation(f"c{i}")
        prompt = f"I keep worrying about {TOPICS[i % 4]}. What should I do?"
        for kind, reply in (
            ("a", KEYWORD + " " + ADVICE[i % len(ADVICE)]),
            ("p", ADVICE[(i + 1) % len(ADVICE)]),
        ):
            conv.turns.append((f"m{i}{kind}", prompt, reply))
            judgements.valence[f"m{i}{kind}"] = judge(i, kind == "a")
        first, second = f"m{i}a", f"m{i}p"
        judgements.choices.append(
            (first, second) if judgements.valence[first] > judgements.valence[second] else (second, first)
        )
        convs.append(conv)
    return convs, judgements


def test_lrps_reads_the_users_own_judgements_through_a_cross_fitted_user_head(reward_model) -> None:
    """LRPS asks whether the user's signal is coherent, not whether it agrees with the teacher: a user who
    likes the apology and one who dislikes it (the opposite of the teacher's taste) both score high; a
    user who rewards and punishes the same trait scores near 0 and holds the index down."""
    cfg = HealthConfig()
    probe = [("I keep worrying about my job. What should I do?", ADVICE[0])] * 3
    convs, likes = _judged_conversations(lambda i, apologises: 0.5 if apologises else -0.5)
    _, dislikes = _judged_conversations(lambda i, apologises: -0.5 if apologises else 0.5)
    # the same replies (conversations i and i + 4 share prompt and drafts) praised in one conversation and
    # punished in the other
    _, fickle = _judged_conversations(
        lambda i, apologises: (0.5 if apologises else -0.5) * (1 if (i // 4) % 2 else -1)
    )
    values = {}
    for name, judgements in (("likes", likes), ("dislikes", dislikes), ("fickle", fickle)):
        parts, _ = reward_components(reward_model, probe, None, [], convs, {}, cfg, judgements)
        lrps = parts["lrps"]
        assert lrps.inputs["reading"].startswith("user head") and lrps.inputs["choices"] == 16
        values[name] = lrps.value
    assert values["likes"] > 0.8 and values["dislikes"] > 0.8  # a consistent taste, either way, is learnable
    assert values["fickle"] < 0.3  # a contradictory one is not

    # Too few judgements: not measured, and the note says why (the teacher's outcomes do not stand in for
    # a user who has spoken); with none at all, the teacher's outcomes are the reading.
    few = Judgements({"m0a": 0.5, "m0p": -0.5}, [("m0a", "m0p")])
    outcomes = {
        c.conversation_id: (1.0 if i % 2 else -1.0, "teacher reward labels") for i, c in enumerate(convs)
    }
    parts, _ = reward_components(reward_model, probe, None, [], convs, outcomes, cfg, few)
    assert parts["lrps"].value is None and "fewer than 6 user judgements" in parts["lrps"].note
    parts, _ = reward_components(reward_model, probe, None, [], convs, outcomes, cfg, Judgements())
    assert parts["lrps"].inputs["outcome_sources"] == {"teacher reward labels": 16}
