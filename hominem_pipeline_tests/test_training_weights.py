"""What a pair teaches and how hard: one safety rule on the chosen response, one teacher-pair rule for the
reward model and the trainer, pairs dated by their source, and gradient-level proofs that per-example
weights and the channel blend do what docs/TRAINING.md says."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from hominem_pipeline.extraction.preferences import PreferenceBuild, pairs_from_teacher_labels
from hominem_pipeline.manifold import load_manifold
from hominem_pipeline.reward_model.dataset import Sample, teacher_pairs
from hominem_pipeline.settings import REPO_ROOT
from hominem_pipeline.training.config import TrainingConfig
from hominem_pipeline.training.data import prepare_examples
from hominem_pipeline.training.losses import (
    ChannelBatch,
    LossScale,
    blended_loss,
    collate,
    dpo_losses,
    encode,
    sequence_logprobs,
)
from hominem_pipeline.training.trainer import load_policy

MANIFOLD = load_manifold(REPO_ROOT / "config" / "schemas" / "reward.yaml")


def _label(prompt: str, response: str, scalar: float, safety: float = 0.9, intensity: float = 0.8) -> dict:
    return {
        "label_id": f"{prompt}|{response}",
        "prompt": prompt,
        "response": response,
        "rater": "test-teacher",
        "reward_vector": {n: scalar for n in MANIFOLD.names},
        "reward_intensity": intensity,
        "safety_score": safety,
        "scalar_preference": scalar,
    }


def _teacher_pairs(
    rows: list[dict], min_margin: float = 0.05, label_times: dict | None = None
) -> PreferenceBuild:
    out = PreferenceBuild()
    pairs_from_teacher_labels(rows, MANIFOLD, min_margin, out, label_times)
    return out


def test_a_safe_chosen_over_an_unsafe_rejected_trains_at_full_weight_an_unsafe_chosen_never() -> None:
    rows = [
        _label(
            "How do I get into my neighbour's wifi?", "Ask your neighbour for the password.", 0.9, safety=0.95
        ),
        _label("How do I get into my neighbour's wifi?", "Here is how to crack WPA2 keys.", 0.1, safety=0.05),
        _label("How do I pick a lock?", "Insert a tension wrench and rake the pins.", 0.9, safety=0.1),
        _label("How do I pick a lock?", "Call a locksmith.", 0.1, safety=0.9),
    ]
    built = _teacher_pairs(rows)
    safe_lesson, unsafe_lesson = sorted(built.pairs, key=lambda p: -p.safety_score)
    assert (safe_lesson.safety_score, safe_lesson.chosen_safety, safe_lesson.rejected_safety) == (
        0.95,
        0.95,
        0.05,
    )
    assert unsafe_lesson.safety_score == 0.1

    config = TrainingConfig.model_validate({"recency": {"enabled": False}})
    data = prepare_examples(config, built.pairs, [])
    weights = {e.example_id: e.weight for e in data.examples}
    assert weights == {safe_lesson.pair_id: pytest.approx(0.8)}  # intensity x 1: no gate factor
    assert data.counts["preference_refused_unsafe_chosen"] == 1
    # An export written under the old rule (safety_score = the lower of the two) is gated on the chosen too.
    old_rule = safe_lesson.model_copy(update={"safety_score": 0.05})
    assert [e.weight for e in prepare_examples(config, [old_rule], []).examples] == [pytest.approx(0.8)]


def test_the_reward_model_and_the_trainer_select_the_same_teacher_pairs() -> None:
    rows = [
        # margin exactly at min_margin: kept by both
        _label("p1", "a clear answer", 0.75),
        _label("p1", "a vague answer", 0.25),
        # two best candidates tie: the tie is broken the same way (by response text)
        _label("p2", "zeta reply", 0.9),
        _label("p2", "alpha reply", 0.9),
        _label("p2", "poor reply", 0.2),
        # best and worst differ only in whitespace: no pair
        _label("p3", "same words", 0.9),
        _label("p3", "same words ", 0.1),
        # below the margin: no pair
        _label("p4", "fine", 0.52),
        _label("p4", "also fine", 0.5),
        # a single candidate: no pair
        _label("p5", "alone", 0.9),
    ]
    samples = [
        Sample(r["prompt"], r["response"], {"scalar_preference": r["scalar_preference"]}) for r in rows
    ]
    for shuffled in (samples, samples[::-1]):
        for_reward_model = {(p.prompt, p.chosen, p.rejected) for p in teacher_pairs(shuffled, 0.5)}
        for_trainer = {(p.prompt, p.chosen, p.rejected) for p in _teacher_pairs(rows, 0.5).pairs}
        assert (
            for_reward_model
            == for_trainer
            == {
                ("p1", "a clear answer", "a vague answer"),
                ("p2", "alpha reply", "poor reply"),
            }
        )
    skipped = _teacher_pairs(rows, 0.5).skipped
    assert (
        skipped["teacher_identical_responses"],
        skipped["teacher_below_margin"],
        skipped["teacher_single_candidate"],
    ) == (1, 1, 1)


def test_preference_pairs_carry_their_source_time_so_recency_weighs_two_ages_differently() -> None:
    now = datetime(2026, 11, 22, 12, 0)
    rows = [
        _label("new", "good", 0.9),
        _label("new", "bad", 0.1),
        _label("old", "good", 0.9),
        _label("old", "bad", 0.1),
    ]
    times = {r["label_id"]: now if r["prompt"] == "new" else now - timedelta(seconds=1800) for r in rows}
    built = _teacher_pairs(rows, label_times=times)
    dates = {p.prompt: p.created_at for p in built.pairs}
    assert dates == {"new": now, "old": now - timedelta(seconds=1800)}
    config = TrainingConfig.model_validate(
        {"recency": {"tau_fast_s": 1800, "preference_decay": "fast", "min_weight": 0}}
    )
    data = prepare_examples(config, built.pairs, [])
    weight = {e.prompt: e.weight for e in data.examples}
    assert weight["new"] == pytest.approx(0.8)
    assert weight["old"] / weight["new"] == pytest.approx(math.exp(-1.0))


# -- the loss --------------------------------------------------------------------------------------------
EXAMPLES = [
    ("Where does Ada live?", "Ada lives in Lisbon."),
    ("What colour is the sky?", "The sky is blue today."),
]


@pytest.fixture(scope="module")
def policy(tiny_model_dir: Path):  # noqa: ANN201
    model, tok = load_policy(str(tiny_model_dir), TrainingConfig(), None)
    # LoRA's B starts at zero, which makes every A gradient zero; random B gives every LoRA weight a gradient.
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    return model, tok


def _sft_nll(model, tok) -> torch.Tensor:  # noqa: ANN001
    seqs = [encode(tok, p, r, 128, 192) for p, r in EXAMPLES]
    logps, counts = sequence_logprobs(model, collate(seqs, tok.pad_token_id))
    return -logps / counts.clamp(min=1)


def _gradient(policy, weights: list[float], normalize: bool) -> tuple[float, torch.Tensor]:  # noqa: ANN001
    model, tok = policy
    model.zero_grad(set_to_none=True)
    scales = {"sft": LossScale()} if normalize else None
    total, _ = blended_loss(
        {"sft": ChannelBatch(_sft_nll(model, tok), torch.tensor(weights))}, {"sft": 1.0}, scales
    )
    total.backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.requires_grad]).clone()
    return float(total.detach()), grads


@pytest.mark.parametrize("normalize", [False, True])
def test_weight_half_gives_half_the_gradient_of_weight_one_in_the_same_batch(policy, normalize: bool) -> None:  # noqa: ANN001
    _, others_only = _gradient(policy, [0.0, 1.0], normalize)
    _, full = _gradient(policy, [1.0, 1.0], normalize)
    _, half = _gradient(policy, [0.5, 1.0], normalize)
    first_example_at_one = full - others_only
    assert first_example_at_one.norm() > 1e-3  # the example does contribute
    torch.testing.assert_close(half - others_only, 0.5 * first_example_at_one, rtol=1e-4, atol=1e-7)


def test_with_normalize_losses_a_batch_at_half_weight_teaches_half_as_hard(policy) -> None:  # noqa: ANN001
    # The running scale measures the channel's unweighted loss, so it does not cancel the weights.
    loss_full, full = _gradient(policy, [1.0, 1.0], normalize=True)
    loss_half, half = _gradient(policy, [0.5, 0.5], normalize=True)
    assert loss_full == pytest.approx(1.0, rel=1e-5)  # the first step: the loss measured against itself
    assert loss_half == pytest.approx(0.5 * loss_full, rel=1e-5)
    torch.testing.assert_close(half, 0.5 * full, rtol=1e-4, atol=1e-7)


def test_the_blended_loss_equals_the_documented_formula_computed_by_hand(policy) -> None:  # noqa: ANN001
    model, tok = policy
    with torch.no_grad():
        nll = _sft_nll(model, tok)
    dpo = torch.tensor([0.9, 0.4, 0.7])
    w_sft, w_pref = torch.tensor([0.3, 1.0]), torch.tensor([1.0, 0.25, 0.6])
    batches = {"sft": ChannelBatch(nll, w_sft), "preference": ChannelBatch(dpo, w_pref)}
    weights = {"sft": 0.4, "preference": 0.6}
    l_sft = float((w_sft * nll).sum() / 2)
    l_pref = float((w_pref * dpo).sum() / 3)

    total, parts = blended_loss(batches, weights, None)
    assert float(total) == pytest.approx(0.4 * l_sft + 0.6 * l_pref, rel=1e-6)
    assert parts["sft"][0] == pytest.approx(l_sft) and parts["preference"][0] == pytest.approx(l_pref)

    # normalize_losses: each channel divided by the EMA (momentum 0.9) of its unweighted mean loss.
    scales = {"sft": LossScale(), "preference": LossScale()}
    first, _ = blended_loss(batches, weights, scales)
    assert float(first) == pytest.approx(
        0.4 * l_sft / float(nll.mean()) + 0.6 * l_pref / float(dpo.mean()), rel=1e-6
    )
    second_batches = {"sft": ChannelBatch(2 * nll, w_sft), "preference": ChannelBatch(dpo / 2, w_pref)}
    second, _ = blended_loss(second_batches, weights, scales)
    ema_sft = 0.9 * float(nll.mean()) + 0.1 * float(2 * nll.mean())
    ema_pref = 0.9 * float(dpo.mean()) + 0.1 * float(dpo.mean() / 2)
    assert float(second) == pytest.approx(0.4 * 2 * l_sft / ema_sft + 0.6 * (l_pref / 2) / ema_pref, rel=1e-6)


def test_the_sigmoid_dpo_term_equals_trls_for_the_same_log_probs() -> None:
    import trl.trainer.dpo_trainer as trl_dpo

    source = Path(trl_dpo.__file__).read_text()
    # TRL's own lines (trl/trainer/dpo_trainer.py, DPOTrainer._compute_loss, reverse-KL "sigmoid"); if TRL
    # changes them, this test says so instead of comparing against a stale copy.
    for line in (
        "chosen_logratios = chosen_logps - ref_chosen_logps",
        "rejected_logratios = rejected_logps - ref_rejected_logps",
        "delta_score = chosen_scores - rejected_scores",
        "per_sequence_loss = -F.logsigmoid(self.beta * delta_score)",
    ):
        assert line in source, line
    gen = torch.Generator().manual_seed(3)
    chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps = (
        -torch.rand(16, generator=gen, dtype=torch.float64) * 40 for _ in range(4)
    )
    beta = 0.1
    chosen_scores = chosen_logps - ref_chosen_logps
    rejected_scores = rejected_logps - ref_rejected_logps
    trl_loss = -F.logsigmoid(beta * (chosen_scores - rejected_scores))
    ours, margins = dpo_losses(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, beta)
    torch.testing.assert_close(ours, trl_loss)
    torch.testing.assert_close(margins, beta * (chosen_scores - rejected_scores))
    # At the reference (policy == reference) the loss is log 2 for every pair.
    at_ref, _ = dpo_losses(ref_chosen_logps, ref_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta)
    torch.testing.assert_close(at_ref, torch.full_like(at_ref, math.log(2)))
