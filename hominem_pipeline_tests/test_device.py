"""One device choice for training, evaluation and serving: CUDA when torch sees one (bf16 autocast where
supported), else the CPU; HOMINEM_DEVICE overrides it, and a device that is not here is refused by name.
These run on any machine: each asserts the rule against what torch reports, not a particular machine."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hominem_pipeline.device import DEVICE_ENV, DeviceError, model_device, select_device
from hominem_pipeline.models import load_causal_lm
from hominem_pipeline.training.config import TrainingConfig
from hominem_pipeline.training.trainer import load_policy


def test_auto_picks_cuda_exactly_when_torch_sees_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEVICE_ENV, raising=False)
    choice = select_device()
    assert choice.device == ("cuda" if torch.cuda.is_available() else "cpu")
    assert choice.bf16 == (torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def test_the_variable_overrides_and_a_missing_device_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(DEVICE_ENV, "cpu")
    assert select_device().device == select_device("cpu").device == "cpu"
    assert not select_device().bf16  # fp32 on the CPU, as every CPU result in this project was measured
    for bad in ("tpu", "cuda:x", f"cuda:{torch.cuda.device_count() + 3}") + (
        () if torch.cuda.is_available() else ("cuda",)
    ):
        monkeypatch.setenv(DEVICE_ENV, bad)
        with pytest.raises(DeviceError, match=DEVICE_ENV):
            select_device()


def test_training_evaluation_and_serving_load_onto_the_selected_device(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(DEVICE_ENV, raising=False)
    want = torch.device(select_device().device)
    model, _ = load_causal_lm(str(tiny_model_dir))  # evaluation, serving, the local teacher
    assert model_device(model).type == want.type
    policy, _ = load_policy(str(tiny_model_dir), TrainingConfig(), None)  # the trainer
    assert model_device(policy).type == want.type
    assert (
        next(p for p in policy.parameters() if p.requires_grad).dtype == torch.float32
    )  # fp32 master weights
