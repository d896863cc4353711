"""Reward-model training settings from `config/reward_model.toml`, validated (errors name file and field),
and the source -> dimension map that says which reward dimensions an imported pair is evidence for."""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path

from pydantic import Field, field_validator

from hominem_pipeline.settings import Settings, StrictModel, load_toml_model


class SplitConfig(StrictModel):
    validation_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    salt: str = "hominem-reward-v1"


class RegressionConfig(StrictModel):
    alphas: list[float] = Field(
        default_factory=lambda: [0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0], min_length=1
    )
    cv_folds: int = Field(5, ge=2, le=50)

    @field_validator("alphas")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        if any(a <= 0 for a in v):
            raise ValueError(f"every alpha must be > 0, got {v}")
        return sorted(v)


class PreferencesConfig(StrictModel):
    use_imported: bool = True
    imported_limit: int = Field(10000, ge=0)
    teacher_pairs: bool = True
    teacher_pair_min_margin: float = Field(0.05, ge=0.0)
    anchor_strength: float = Field(1.0, gt=0.0)
    length_debias: bool = True


def _default_refusals() -> list[str]:
    return [
        "I'm sorry, but I can't help with that.",
        "I can't assist with that request.",
        "Sorry, I won't do that.",
        "I'm not able to help with this.",
        "No.",
        "I'd rather not answer that.",
        "I cannot provide that information.",
        "As an AI, I can't help with that.",
    ]


class RefusalConfig(StrictModel):
    """What no human pair says: on a request a helpfulness dimension judges, an answer beats a bare
    refusal. Human helpfulness sets compare two answers, never an answer with "I can't help with that",
    so without this a head that never saw a refusal scores one anywhere (measured: a curt refusal beat the
    people's preferred answer on 62% of benign test prompts, docs/REWARD_MODEL.md). For each of
    `dimensions` that has imported (human) pairs, the chosen answer of each also beats `per_answer` of
    `responses` (picked by a hash of the text), at a total weight of `weight` x that dimension's real
    pairs; these pairs teach its head only (not the gate, the calibration or the validation). The
    teacher's pairs take none: its labels already rate its own candidates, refusals among them."""

    dimensions: list[str] = Field(default_factory=lambda: ["narrative_alignment"])
    responses: list[str] = Field(default_factory=_default_refusals)
    per_answer: int = Field(2, ge=0)
    weight: float = Field(0.05, ge=0.0)


class GateConfig(StrictModel):
    # Inverse L2 strength of the prompt -> dimension-weights classifier (scikit-learn's C).
    inverse_l2: float = Field(3.0, gt=0.0)
    # A dimension joins the gate only with at least this many training pairs speaking to it.
    min_pairs: int = Field(20, ge=1)


class CheckConfig(StrictModel):
    # The blocking check judges pairwise accuracy only on at least this many held-out imported pairs;
    # with fewer it falls back to the teacher labels' cross-validated error.
    min_validation_pairs: int = Field(30, ge=1)


class DimensionRule(StrictModel):
    """Imported pairs whose source matches `match` (a glob, case-insensitive) speak to `dimensions`."""

    match: str = Field(min_length=1)
    dimensions: list[str] = Field(min_length=1)


def _default_rules() -> list[DimensionRule]:
    return [
        DimensionRule(match="*harmless*", dimensions=["harm_avoidance"]),
        DimensionRule(match="*honest*", dimensions=["epistemic_integrity"]),
        DimensionRule(match="*truthful*", dimensions=["epistemic_integrity"]),
        # Helpfulness and instruction-following sets: does the answer serve what the person asked for?
        *(
            DimensionRule(match=m, dimensions=["narrative_alignment"])
            for m in (
                "*helpful*",
                "*pandalm*",
                "*llmbar*",
                "*mt-bench*",
                "*alpaca*",
                "*ultrafeedback*",
                "*instruction*",
                "*hhh*",
            )
        ),
    ]


def dimensions_for_source(source: str, rules: list[DimensionRule]) -> list[str]:
    """The dimensions of the first rule matching `source`, else none."""
    for rule in rules:
        if fnmatchcase(source.lower(), rule.match.lower()):
            return list(rule.dimensions)
    return []


class EmbeddingConfig(StrictModel):
    batch_size: int = Field(64, ge=1, le=4096)


class RewardModelConfig(StrictModel):
    split: SplitConfig = SplitConfig()
    regression: RegressionConfig = RegressionConfig()
    preferences: PreferencesConfig = PreferencesConfig()
    refusals: RefusalConfig = RefusalConfig()
    embedding: EmbeddingConfig = EmbeddingConfig()
    gate: GateConfig = GateConfig()
    check: CheckConfig = CheckConfig()
    dimension_rules: list[DimensionRule] = Field(default_factory=_default_rules)


def config_path(settings: Settings) -> Path:
    return settings.config_dir / "reward_model.toml"


def load_reward_model_config(settings: Settings) -> RewardModelConfig:
    """The validated config; defaults when the file is absent (a home made before the reward model)."""
    path = config_path(settings)
    return load_toml_model(path, RewardModelConfig, defaults_if_absent=True)
