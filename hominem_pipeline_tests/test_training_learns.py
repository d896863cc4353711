"""Proof that the dual-channel trainer learns, on the tiny random model: facts through the memory channel,
a preferred style through the reward channel, and weight-0 / safety-blocked examples teach nothing."""

from __future__ import annotations

import json
from pathlib import Path
from statistics import fmean

import pytest
import torch
from safetensors.torch import load_file

from hominem_pipeline.atomic import Pointer
from hominem_pipeline.evaluation.scoring import response_nll
from hominem_pipeline.records import PreferencePair, SFTPair
from hominem_pipeline.training.config import TrainingConfig
from hominem_pipeline.training.data import prepare_examples
from hominem_pipeline.training.measure import load_with_adapter, preference_margin
from hominem_pipeline.training.trainer import train_dual

FACTS = [
    ("Zorblax", "Quintara"),
    ("Velmora", "Brindlecove"),
    ("Ostrakan", "Pellimar"),
    ("Thundria", "Gaskelow"),
]
TRAIN_FACTS = [(f"What is the capital of {c}?", f"The capital of {c} is {k}.") for c, k in FACTS]
NEW_PHRASINGS = [(f"Which city is the capital of {c}?", f"The capital of {c} is {k}.") for c, k in FACTS]
GENERAL = [
    ("Describe the water cycle.", "Water evaporates, forms clouds and falls back as rain."),
    ("What do plants need?", "Plants need light, water and air to grow."),
    ("Name a primary colour.", "Red is a primary colour."),
]
WARM = "That sounds hard; what have you tried so far?"
COLD = "Whatever."


def _pair(i: int, **kw: object) -> PreferencePair:
    fields = {
        "reward_intensity": 1.0,
        "safety_score": 1.0,
        "dimension_deltas": {"empathy": 0.6, "curiosity": 0.2},
    }
    fields.update(kw)
    return PreferencePair(
        prompt=f"I feel stuck with task {i}.", chosen=WARM, rejected=COLD, source="teacher", **fields
    )


def _config(**kw: object) -> TrainingConfig:
    # The tiny random model's logits are bounded by its final RMSNorm and tiny tied embeddings, so
    # attention-only LoRA cannot move them far; LoRA on lm_head (and a high lr) lets it learn in a few steps.
    base = {
        "lora": {"rank": 8, "alpha": 16, "target_modules": ["q_proj", "v_proj", "lm_head"]},
        "sft_learning_rate": 1e-2,
        "preference_learning_rate": 1e-2,
        "sft_batch_size": 4,
        "preference_batch_size": 2,
        "max_steps": 8,
        "diversity": {"enabled": False},
        "probe": {"interval": 0},
    }
    base.update(kw)
    return TrainingConfig.model_validate(base)


def _sft() -> list[SFTPair]:
    return [SFTPair(instruction=q, response=a, source="knowledge_update") for q, a in TRAIN_FACTS]


def test_memory_channel_lowers_nll_of_facts_in_new_phrasings(tiny_model_dir: Path, tmp_path: Path) -> None:
    config = _config()
    data = prepare_examples(config, [_pair(i) for i in range(4)], _sft())
    result = train_dual(config, data, base_model_path=str(tiny_model_dir), lora_root=tmp_path / "lora")
    assert (result.path / "adapter_model.safetensors").is_file()
    model, tok = load_with_adapter(str(tiny_model_dir), result.path)  # PEFT's own format loads back
    with model.disable_adapter():
        base_facts, base_general = (
            fmean(response_nll(model, tok, NEW_PHRASINGS)),
            fmean(response_nll(model, tok, GENERAL)),
        )
    facts, general = fmean(response_nll(model, tok, NEW_PHRASINGS)), fmean(response_nll(model, tok, GENERAL))
    drop = base_facts - facts
    assert drop > 2.0, f"facts NLL {base_facts:.2f} -> {facts:.2f}"
    assert abs(general - base_general) < 0.25 * drop, f"general NLL {base_general:.2f} -> {general:.2f}"
    meta = json.loads((result.path / "METADATA.json").read_text())
    assert meta["channel_contributions"]["sft"]["examples_seen"] == 4
    assert meta["channel_contributions"]["sft"]["tokens"] > 0
    assert 0 < meta["channel_contributions"]["sft"]["loss_share"] < 1
    assert meta["dpo_reference"].endswith("(base model)")


def test_reward_channel_raises_margin_on_held_out_pairs_of_the_preferred_style(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    config = _config(sft_weight=0.0, preference_weight=1.0)
    data = prepare_examples(config, [_pair(i) for i in range(6)], _sft())
    assert not [e for e in data.examples if e.channel == "sft"]  # sft_weight 0: a pure preference run
    result = train_dual(config, data, base_model_path=str(tiny_model_dir), lora_root=tmp_path / "lora")
    held_out = [
        (
            "My week has been exhausting.",
            "That sounds hard; what would help you most?",
            "Whatever, deal with it.",
        ),
        ("I failed my exam.", "That sounds hard; what have you tried so far to prepare?", "Whatever."),
    ]
    model, tok = load_with_adapter(str(tiny_model_dir), result.path)
    with model.disable_adapter():
        before = preference_margin(model, tok, held_out)
    after = preference_margin(model, tok, held_out)
    assert after > before + 1.0, f"held-out margin {before:.2f} -> {after:.2f}"
    assert result.metadata["channel_contributions"]["sft"]["examples_available"] == 0


def _adapter_tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "adapter_model.safetensors"))


def test_zero_weight_and_gated_examples_leave_the_adapter_bit_identical(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    config = _config(max_steps=4)
    pairs, sft = [_pair(i) for i in range(4)], _sft()
    without = train_dual(
        config,
        prepare_examples(config, pairs, sft),
        base_model_path=str(tiny_model_dir),
        lora_root=tmp_path / "a",
    )
    ignored = [
        _pair(10, reward_intensity=0.0),  # intensity 0
        _pair(11, safety_score=0.1),  # below the block threshold
        _pair(12, chosen_safety=0.05),  # unsafe chosen: refused
    ]
    ignored_sft = [
        SFTPair(
            instruction="What is the capital of Ruritania?",
            response="Strelsau.",
            source="teacher",
            reward_intensity=0.0,
        )
    ]
    data = prepare_examples(config, pairs + ignored, sft + ignored_sft)
    assert data.counts["preference_zero_weight"] == 1
    assert data.counts["preference_refused_unsafe_chosen"] == 2  # the gate acts on the chosen response
    assert data.counts["sft_zero_weight"] == 1
    with_ignored = train_dual(config, data, base_model_path=str(tiny_model_dir), lora_root=tmp_path / "b")
    a, b = _adapter_tensors(without.path), _adapter_tensors(with_ignored.path)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert without.version == with_ignored.version  # content-addressed: the same adapter, the same version

    # The same example with a real weight does change the adapter, so the comparison above can fail.
    taught = train_dual(
        config,
        prepare_examples(config, pairs + [_pair(10, reward_intensity=1.0)], sft),
        base_model_path=str(tiny_model_dir),
        lora_root=tmp_path / "c",
    )
    c = _adapter_tensors(taught.path)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_a_second_cycle_continues_the_current_adapter_with_it_as_dpo_reference(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    root = tmp_path / "lora" / "tiny"
    config = _config(max_steps=4)
    data = prepare_examples(config, [_pair(i) for i in range(4)], _sft())
    first = train_dual(config, data, base_model_path=str(tiny_model_dir), lora_root=root)
    assert first.metadata["cycle"] == 1 and first.metadata["continued_from"] is None
    assert first.metadata["metrics"]["preference_margin_last"] > 0
    assert Pointer(root, "current").target is None  # the trainer never promotes
    Pointer(root, "current").set(first.version)  # what promotion (after evaluation) does

    second = train_dual(config, data, base_model_path=str(tiny_model_dir), lora_root=root)
    assert second.metadata["cycle"] == 2
    assert second.metadata["continued_from"] == first.version
    assert Pointer(root, "current").target == first.version
    # The reference is the adapter the cycle started from: the first step's implicit margin is exactly 0
    # although that adapter already prefers the chosen responses over the base model.
    assert second.metadata["metrics"]["preference_margin_first"] == pytest.approx(0.0, abs=1e-5)
    model, tok = load_with_adapter(str(tiny_model_dir), second.path)
    triples = [(p.prompt, p.chosen, p.rejected) for p in [_pair(i) for i in range(4)]]
    first_model, _ = load_with_adapter(str(tiny_model_dir), first.path)
    assert preference_margin(model, tok, triples) > preference_margin(first_model, tok, triples)


def test_knowledge_consolidation_fits_the_facts_and_trains_only_knowledge_rows(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    # Two blended steps see at most two of the four facts; the consolidation steps that follow train every
    # knowledge row (never a conversation row) and are what moves the facts in new phrasings.
    sft = _sft() + [SFTPair(instruction=q, response=a, source="conversation") for q, a in GENERAL]
    knowledge_ids = {p.pair_id for p in _sft()}
    nll = {}
    for steps in (0, 6):
        config = _config(
            max_steps=2,
            sft_batch_size=2,
            knowledge_consolidation={"steps": steps, "learning_rate": 1e-2, "batch_size": 3},
        )
        data = prepare_examples(config, [_pair(i) for i in range(4)], sft)
        result = train_dual(
            config, data, base_model_path=str(tiny_model_dir), lora_root=tmp_path / f"lora-{steps}"
        )
        log = [json.loads(line) for line in (result.path / "training_log.jsonl").read_text().splitlines()]
        phase = [r for r in log if r.get("phase") == "knowledge"]
        meta = json.loads((result.path / "METADATA.json").read_text())
        assert len(phase) == steps == meta["knowledge_consolidation"]["steps"]
        assert [r["step"] for r in phase] == list(range(3, 3 + steps))  # numbered after the 2 blended steps
        assert all(set(r["rows"]) <= knowledge_ids and len(r["rows"]) == 3 for r in phase)
        if steps:
            assert {i for r in phase for i in r["rows"]} == knowledge_ids  # batches of 3 cycle through all 4
            assert knowledge_ids <= set(meta["trained_sft_pair_ids"])
            assert meta["knowledge_consolidation"]["rows"] == 4
        model, tok = load_with_adapter(str(tiny_model_dir), result.path)
        nll[steps] = fmean(response_nll(model, tok, NEW_PHRASINGS))
    assert nll[6] < nll[0] - 3.0, nll


def test_knowledge_consolidation_refuses_a_source_that_does_not_exist() -> None:
    # A typo would otherwise consolidate nothing, silently.
    with pytest.raises(ValueError, match=r"knowledge_consolidation\.sources"):
        TrainingConfig.model_validate({"knowledge_consolidation": {"sources": ["knowledge_updates"]}})
