"""Published versions are verified on load: a same-size corruption of an adapter's or a reward model's
weights is refused naming the file (load, promotion, continuing training, scoring), and a cycle whose
loss turns non-finite stops before anything is published."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hominem_pipeline.adapters import AdapterRegistry, AdapterRegistryError
from hominem_pipeline.atomic import CorruptVersion, Pointer, publish_version, write_json_atomic
from hominem_pipeline.records import SFTPair
from hominem_pipeline.reward_model.registry import load_current, resolve_version, reward_model_root
from hominem_pipeline.training.config import TrainingConfig
from hominem_pipeline.training.data import prepare_examples
from hominem_pipeline.training.promotion import promote
from hominem_pipeline.training.trainer import NonFiniteLoss, train_dual
from hominem_pipeline_tests.adapter_helpers import lora_model, publish


def _corrupt(path: Path) -> None:
    """Overwrite 64 bytes in the middle with 0xFF: same size, same name, different content."""
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))


def _config() -> TrainingConfig:
    return TrainingConfig.model_validate(
        {"max_steps": 2, "diversity": {"enabled": False}, "probe": {"interval": 0}}
    )


def _facts() -> list[SFTPair]:
    return [
        SFTPair(
            instruction=f"Where does {n} live?",
            response=f"{n} lives in {c}.",
            source="knowledge_update",
            reward_intensity=1.0,
            safety_score=1.0,
        )
        for n, c in [("Ada", "Lisbon"), ("Bo", "Oslo")]
    ]


def test_a_corrupted_adapter_is_refused_naming_the_file(tmp_path: Path, tiny_model_dir: Path) -> None:
    registry = AdapterRegistry(tmp_path / "artifacts", "tiny")
    model, _ = lora_model(tiny_model_dir)
    version = publish(registry, model, tiny_model_dir)
    registry.load(version)  # loads while intact
    Pointer(registry.root, "current").set(version)
    weights = registry.root / version / "adapter_model.safetensors"
    size = weights.stat().st_size
    _corrupt(weights)
    assert weights.stat().st_size == size

    for attempt in (lambda: registry.load(version), lambda: promote(registry, version, force=True)):
        with pytest.raises(
            AdapterRegistryError, match="adapter_model.safetensors: checksum .* does not match"
        ):
            attempt()
    # The trainer never continues from (or takes as its DPO reference) a corrupted `current`.
    config = _config()
    with pytest.raises(CorruptVersion, match="adapter_model.safetensors"):
        train_dual(
            config,
            prepare_examples(config, [], _facts()),
            base_model_path=str(tiny_model_dir),
            lora_root=registry.root,
        )


def test_a_corrupted_reward_model_is_refused_before_it_scores(tmp_path: Path) -> None:
    root = reward_model_root(tmp_path / "artifacts")

    def write(folder: Path) -> None:
        (folder / "heads.safetensors").write_bytes(bytes(range(256)) * 8)
        write_json_atomic(folder / "model.json", {"kind": "test"})

    published = publish_version(
        root, write, lambda version: {"created_at": "2026-11-22T00:00:00"}, prefix="rm-"
    )
    assert published.version.startswith("rm-") and published.new
    Pointer(root, "current").set(published.version)
    assert resolve_version(tmp_path / "artifacts") == (published.path, "current")  # intact: accepted
    _corrupt(published.path / "heads.safetensors")
    with pytest.raises(CorruptVersion, match="heads.safetensors: checksum"):
        load_current(tmp_path / "artifacts")
    with pytest.raises(CorruptVersion, match="heads.safetensors"):
        resolve_version(tmp_path / "artifacts", published.version)


def test_a_non_finite_loss_stops_the_cycle_before_anything_is_published(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    registry = AdapterRegistry(tmp_path / "artifacts", "tiny")
    model, _ = lora_model(tiny_model_dir)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.fill_(float("nan"))
    nan_version = publish(registry, model, tiny_model_dir)  # published intact: its checksums hold
    Pointer(registry.root, "current").set(nan_version)
    config = _config()
    with pytest.raises(NonFiniteLoss, match="step 1: loss is nan"):
        train_dual(
            config,
            prepare_examples(config, [], _facts()),
            base_model_path=str(tiny_model_dir),
            lora_root=registry.root,
        )
    assert registry.version_names() == [nan_version]
    assert not [p for p in registry.root.iterdir() if p.name.startswith(".staging")]
