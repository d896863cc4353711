"""The dual-channel training config (`config/training/lora_dual.yaml`): one validated pydantic model.

A pure preference run (`config/training/lora_dpo.yaml`) is the same config with `sft_weight: 0`.
Bad values fail loudly, naming the file and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from hominem_pipeline.records import SFTSource
from hominem_pipeline.settings import ConfigError, StrictModel
from hominem_pipeline.validation import field_errors


class LoraSettings(StrictModel):
    rank: int = Field(8, ge=1, le=512)
    alpha: int = Field(16, ge=1, le=4096)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"], min_length=1)


class RecencySettings(StrictModel):
    """`weight = exp(-age / tau)`; with `decay: both`, `max(fast, slow)`. Age is measured from the newest
    example of the cycle, so a run is a function of its data, not of the wall clock."""

    enabled: bool = True
    tau_fast_s: float = Field(1800.0, gt=0, description="emotion / recency channel")
    tau_slow_s: float = Field(7200.0, gt=0, description="knowledge channel")
    preference_decay: Literal["fast", "slow", "both"] = "fast"
    sft_decay: Literal["fast", "slow", "both"] = "slow"
    min_weight: float = Field(
        0.05, ge=0.0, le=1.0, description="floor so that old data still teaches a little; 0 = pure decay"
    )


class DiversitySettings(StrictModel):
    enabled: bool = True
    embedding_model: str = "embedded:all-minilm-l6-v2"
    k: int = Field(20, ge=20, le=100, description="k-means clusters (capped at the number of examples)")
    per_cluster: int = Field(2, ge=1, le=2, description="examples drawn from one cluster into one batch")
    farthest_first_basis: bool = False


class SafetyGateSettings(StrictModel):
    """Below `block` the example is skipped; between `block` and `caution` its weight is scaled by
    `caution_factor`; a pair whose chosen response is below `block` is refused (never reinforced)."""

    block_threshold: float = Field(0.3, ge=0.0, le=1.0)
    caution_threshold: float = Field(0.6, ge=0.0, le=1.0)
    caution_factor: float = Field(0.5, ge=0.0, le=1.0)
    unscored: Literal["neutral", "skip"] = Field(
        "neutral", description="pairs with no safety/intensity and no reward model to score them"
    )
    neutral_intensity: float = Field(0.5, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _order(self) -> SafetyGateSettings:
        if self.block_threshold > self.caution_threshold:
            raise ValueError(
                f"safety_gate.block_threshold ({self.block_threshold}) must be <= "
                f"caution_threshold ({self.caution_threshold})"
            )
        return self


class PreferenceReplaySettings(StrictModel):
    """Preference pairs are replayed across cycles (values are re-taught against each cycle's new DPO
    reference), with decay and a cap: a pair's weight is multiplied by `decay ** k`, where k is how many
    adapters of the current lineage already trained on it, and the pair is left out once k reaches
    `max_cycles` (0 = no cap). Counted from the store's trained_examples; without a store, k = 0."""

    max_cycles: int = Field(3, ge=0, le=1000)
    decay: float = Field(0.5, gt=0.0, le=1.0)


class ProbeSettings(StrictModel):
    """Per-dimension gradient directions for the Reward Health Index (docs/TRAINING.md)."""

    interval: int = Field(5, ge=0, description="every N steps; 0 = never")
    batch_size: int = Field(8, ge=1, le=256)


class KnowledgeConsolidationSettings(StrictModel):
    """After the blended steps, `steps` memory-only steps on the cycle's knowledge rows (the facts a user
    corrected or told; `sources`), each step a batch of up to `batch_size` of them, at `learning_rate`.
    A fact is one short row among many in the blended loop and a small adapter barely moves on it there;
    these steps are what makes the fact stick in new phrasings (docs/TRAINING.md). 0 steps = off."""

    steps: int = Field(16, ge=0, le=10000)
    learning_rate: float = Field(5e-4, gt=0, le=1.0)
    batch_size: int = Field(16, ge=1, le=1024)
    sources: list[SFTSource] = Field(default_factory=lambda: ["knowledge_update"], min_length=1)


class TrainingConfig(StrictModel):
    base_model: str | None = Field(
        None, description="model spec; null = the student in config/inference.toml"
    )
    model_name: str | None = Field(
        None, description="folder name under artifacts/lora/; null = from base_model"
    )
    continue_from_current: bool = True
    lora: LoraSettings = LoraSettings()

    sft_weight: float = Field(0.4, ge=0.0, le=1.0)
    preference_weight: float = Field(0.6, ge=0.0, le=1.0)
    batch_mixing: Literal["interleaved", "mixed", "alternating"] = "interleaved"
    sft_batch_size: int = Field(2, ge=1, le=1024)
    preference_batch_size: int = Field(2, ge=1, le=1024)
    sft_learning_rate: float = Field(2e-4, gt=0, le=1.0)
    preference_learning_rate: float = Field(1e-4, gt=0, le=1.0)
    normalize_losses: bool = True
    dynamic_weighting: bool = False
    single_channel: Literal["train", "skip"] = Field(
        "train",
        description="a dual config whose cycle has data in one channel only: train it alone, or train nothing",
    )
    beta: float = Field(0.1, gt=0)

    max_prompt_tokens: int = Field(128, ge=8, le=32768)
    max_length: int = Field(192, ge=16, le=65536)
    max_steps: int = Field(20, ge=0, description="0 = run `epochs` full passes")
    epochs: int = Field(1, ge=1, le=1000)
    max_grad_norm: float = Field(1.0, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    seed: int = 17

    sft_source: Literal["auto", "database", "jsonl"] = "auto"
    sft_unused_only: bool = Field(
        True,
        description="train on SFT rows no `current` adapter's lineage has trained on (what it learned lives in "
        "the adapter this cycle continues)",
    )
    preferences_limit: int | None = Field(None, ge=1)
    sft_limit: int | None = Field(None, ge=1)

    recency: RecencySettings = RecencySettings()
    diversity: DiversitySettings = DiversitySettings()
    safety_gate: SafetyGateSettings = SafetyGateSettings()
    preference_replay: PreferenceReplaySettings = PreferenceReplaySettings()
    probe: ProbeSettings = ProbeSettings()
    knowledge_consolidation: KnowledgeConsolidationSettings = KnowledgeConsolidationSettings()

    @model_validator(mode="after")
    def _channel_weights(self) -> TrainingConfig:
        total = self.sft_weight + self.preference_weight
        if abs(total - 1.0) > 1e-6:
            raise ValueError(
                f"sft_weight ({self.sft_weight}) + preference_weight ({self.preference_weight}) = {total:g}; "
                "the channel weights must sum to 1"
            )
        if self.sft_weight > 0 and self.preference_weight < 0.5:
            raise ValueError(
                f"preference_weight is {self.preference_weight}; it must stay >= 0.5 so the memory channel "
                "cannot dominate into verbatim memorisation (set sft_weight: 0 for a pure preference run)"
            )
        return self

    @property
    def learning_rate(self) -> float:
        """The step learning rate when both channels share one step: the channel-weighted mean."""
        return (
            self.sft_weight * self.sft_learning_rate + self.preference_weight * self.preference_learning_rate
        )


def load_training_config(path: Path | str, overrides: dict | None = None) -> TrainingConfig:
    """Read and validate a training YAML file; `overrides` are dotted keys (e.g. "lora.rank") applied on top."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"training config not found: {path}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x})") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
        raise ConfigError(f"{path}: not valid YAML: {problem}{where}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    try:
        TrainingConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {field_errors(exc)}") from exc
    # The file is valid on its own: whatever fails from here on is an override's fault, and says so.
    for key, value in (overrides or {}).items():
        *parents, leaf = key.split(".")
        node = raw
        for i, part in enumerate(parents):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {key}: {'.'.join(parents[: i + 1])} is a value, not a section")
        node[leaf] = value
    try:
        return TrainingConfig.model_validate(raw)
    except ValidationError as exc:
        given = ", ".join(f"{k}={v!r}" for k, v in (overrides or {}).items())
        raise ConfigError(f"override ({given}) of {path}: {field_errors(exc)}") from exc
