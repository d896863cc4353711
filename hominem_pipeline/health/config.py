"""The Reward Health Index settings (`config/health.toml`): the seed's weights and gating thresholds as
defaults, the probe sizes, and when the nightly replay runs. One validated pydantic model; a bad value
names the file and the field."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from hominem_pipeline.settings import (
    CronExpression,
    Settings,
    StrictModel,
    TimeZoneName,
    load_toml_model,
)

COMPONENTS = ("dcs", "gvs", "mss", "cdrs", "lrps")
#: The fast loop sees only the training-side components (the seed's "partial RHI = DCS + GVS").
PARTIAL_COMPONENTS = ("dcs", "gvs")


class Weights(StrictModel):
    """Seed 000 phase 10: w1..w5, summing to 1."""

    dcs: float = Field(0.25, ge=0.0, le=1.0)
    gvs: float = Field(0.15, ge=0.0, le=1.0)
    mss: float = Field(0.25, ge=0.0, le=1.0)
    cdrs: float = Field(0.20, ge=0.0, le=1.0)
    lrps: float = Field(0.15, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _sum_to_one(self) -> Weights:
        total = sum(getattr(self, c) for c in COMPONENTS)
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"weights.dcs + gvs + mss + cdrs + lrps = {total:g}; they must sum to 1")
        return self


class FastLoop(StrictModel):
    """Online updates, gated by partial RHI: below `skip` the update is not applied, below `rollback` the
    previous online update is undone too, below `freeze` online learning stops until a batch's partial
    RHI is back at `recover` or above."""

    skip: float = Field(0.50, ge=0.0, le=1.0)
    rollback: float = Field(0.30, ge=0.0, le=1.0)
    freeze: float = Field(0.20, ge=0.0, le=1.0)
    recover: float = Field(0.50, ge=0.0, le=1.0)
    max_age_hours: float = Field(
        48.0,
        gt=0,
        description="an online update learns from the feedback pairs no earlier update took, at most this "
        "old (older feedback is left to the training cycle)",
    )
    max_steps: int = Field(4, ge=1, le=1000)
    probe_interval: int = Field(
        4,
        ge=1,
        description="a gradient probe (DCS) every this many steps, at most max_steps apart (so at least one, "
        "at the last step when they are equal): a probe costs one backward pass per reward dimension, and over an "
        "update's few small steps its reading barely moves",
    )
    learning_rate_factor: float = Field(
        0.5, gt=0, le=1.0, description="online steps use the cycle's learning rates times this"
    )
    min_user_lrps: float = Field(
        0.30,
        ge=0.0,
        le=1.0,
        description="an online update learns from the user's feedback only when LRPS read from "
        "the user's own judgements (the cross-fitted user head) is at least this, where it is measurable: a user "
        "who rewards and punishes the same trait at random scores near 0, a consistent one 0.7-0.8",
    )
    pointer: str = Field("online", description="the adapter pointer online updates move (never `current`)")
    cron: CronExpression = "0 */6 * * *"  # when `online_update_schedule` runs one update
    timezone: TimeZoneName = "UTC"

    @model_validator(mode="after")
    def _order(self) -> FastLoop:
        if not self.freeze <= self.rollback <= self.skip:
            raise ValueError(
                f"fast_loop thresholds must satisfy freeze ({self.freeze}) <= rollback ({self.rollback}) "
                f"<= skip ({self.skip})"
            )
        return self


class SlowLoop(StrictModel):
    """Nightly: RHI falling `falling_nights` nights in a row multiplies the next cycles' learning rates
    by `learning_rate_decay` (never below `min_learning_rate_factor`); a rising RHI continues as is."""

    falling_nights: int = Field(3, ge=1, le=30)
    learning_rate_decay: float = Field(0.5, gt=0.0, lt=1.0)
    min_learning_rate_factor: float = Field(0.05, gt=0.0, le=1.0)


class Consolidation(StrictModel):
    """Promotion of a cycle into `current` needs RHI above `threshold`; a nightly RHI of `current`
    at or below `revert_below` rolls `current` back to the version before it."""

    threshold: float = Field(0.70, ge=0.0, le=1.0)
    revert_below: float = Field(0.70, ge=0.0, le=1.0)


class Probes(StrictModel):
    """How big the fixed probe sets are (all drawn deterministically from the project's own data)."""

    gvs_window: int = Field(20, ge=2, le=100000, description="W: the last W training steps' gradient norms")
    gvi_percentile: float = Field(
        95.0, gt=0.0, le=100.0, description="percentile of the reference run's windowed GVI"
    )
    gvi_headroom: float = Field(
        2.0,
        ge=1.0,
        le=100.0,
        description="GVI_max_reference = headroom x that percentile (a run as steady as "
        "the reference scores 1 - 1/headroom)",
    )
    cdrs_max_pairs: int = Field(64, ge=2, le=100000)
    lrps_min_conversations: int = Field(3, ge=3, le=100000)
    lrps_min_judgements: int = Field(
        6,
        ge=3,
        le=100000,
        description="LRPS from the user's judgements needs this many emoji or choices scored out of fold",
    )
    lrps_folds: int = Field(
        5, ge=2, le=100, description="folds of the user head's cross-fitting (by conversation)"
    )
    conversations_limit: int = Field(200, ge=1, le=1000000)
    curvature_min_turns: int = Field(3, ge=3, le=1000)
    prompt_variant_prefix: str = Field(
        "Please answer this: ", description="the meaning-preserving change CDRS re-scores pairs under"
    )


class Nightly(StrictModel):
    """When the nightly replay (full RHI of `current`, slow loop, consolidation dip check) runs."""

    cron: CronExpression = "30 3 * * *"  # minute hour day month weekday
    timezone: TimeZoneName = "UTC"


class HealthConfig(StrictModel):
    weights: Weights = Weights()
    fast_loop: FastLoop = FastLoop()
    slow_loop: SlowLoop = SlowLoop()
    consolidation: Consolidation = Consolidation()
    probes: Probes = Probes()
    nightly: Nightly = Nightly()


def health_config_path(settings: Settings) -> Path:
    return settings.config_dir / "health.toml"


def load_health_config(settings: Settings) -> HealthConfig:
    """The validated config; the seed's defaults when the file is absent (a home made before the RHI)."""
    path = health_config_path(settings)
    return load_toml_model(path, HealthConfig, defaults_if_absent=True)
