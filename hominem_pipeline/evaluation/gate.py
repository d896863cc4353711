"""The promotion gate and the channel-interference verdict: which metrics of a candidate are worse than a
reference arm (base, parent, `current`) beyond the configured tolerances, and whether one learning
channel's gain was paid for by the other. docs/EVALUATION.md states every rule."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from hominem_pipeline.evaluation.config import Tolerances
from hominem_pipeline.evaluation.measure import ArmMetrics


class Regression(BaseModel):
    metric: str
    against: str
    candidate: float
    reference: float
    change: float
    tolerance: float


def find_regressions(
    candidate: ArmMetrics, reference: ArmMetrics, against: str, tol: Tolerances
) -> list[Regression]:
    """Every metric on which the candidate is worse than `reference` by more than its tolerance."""
    found: list[Regression] = []

    def check(
        metric: str, cand: float | None, ref: float | None, worse_by: float | None, limit: float
    ) -> None:
        if cand is None or ref is None or worse_by is None:
            return
        if worse_by > limit + 1e-9:
            found.append(
                Regression(
                    metric=metric,
                    against=against,
                    candidate=cand,
                    reference=ref,
                    change=cand - ref,
                    tolerance=limit,
                )
            )

    g_c, g_r = candidate.general_nll, reference.general_nll
    check("general_nll", g_c, g_r, (g_c - g_r) / g_r if g_r > 0 else None, tol.general_nll_increase_rel)
    for metric in ("knowledge_nll", "knowledge_earlier_nll"):
        k_c, k_r = getattr(candidate, metric), getattr(reference, metric)
        check(metric, k_c, k_r, None if k_c is None or k_r is None else k_c - k_r, tol.knowledge_nll_increase)
    for name, ref_margin in reference.scenario_margin.items():
        cand_margin = candidate.scenario_margin.get(name)
        if name != "all" and cand_margin is not None:
            check(
                f"scenario_margin.{name}",
                cand_margin,
                ref_margin,
                ref_margin - cand_margin,
                tol.scenario_margin_drop,
            )
    if candidate.reward and reference.reward:
        for dim, ref_score in reference.reward.dimensions.items():
            cand_score = candidate.reward.dimensions.get(dim)
            if cand_score is not None:
                check(
                    f"reward.{dim}", cand_score, ref_score, ref_score - cand_score, tol.reward_dimension_drop
                )
        check(
            "reward.safety_score",
            candidate.reward.safety_score,
            reference.reward.safety_score,
            reference.reward.safety_score - candidate.reward.safety_score,
            tol.safety_drop,
        )
    return found


def describe_regressions(regressions: list[Regression]) -> list[str]:
    return [
        f"{r.metric} vs {r.against}: {r.reference:.4f} -> {r.candidate:.4f} (tolerance {r.tolerance})"
        for r in regressions
    ]


class Interference(BaseModel):
    """Whether one channel's gain came at the other's cost (docs/EVALUATION.md)."""

    knowledge_gain: (
        float | None
    )  # base - candidate taught-fact NLL, new phrasings (nats/token); > 0 = learned
    behaviour_gain: float  # candidate - base scenario margin, all scenarios (nats/token); > 0 = better
    reward_scalar_gain: float | None = None  # candidate - base mean scalar preference of greedy outputs
    sft_loss_share: float | None = None
    preference_loss_share: float | None = None
    knowledge_gain_per_sft_share: float | None = None
    behaviour_gain_per_preference_share: float | None = None
    dimensions_down_while_knowledge_up: list[str] = Field(default_factory=list)
    scenarios_down: list[str] = Field(default_factory=list)  # scenario margins that fell beyond tolerance
    verdict: Literal["none", "memory_over_reward", "reward_over_memory", "both_regressed"]


def _loss_share(contributions: dict[str, Any], *names: str) -> float | None:
    for name in names:
        entry = contributions.get(name)
        if isinstance(entry, dict) and isinstance(entry.get("loss_share"), int | float):
            return float(entry["loss_share"])
    return None


def channel_interference(
    base: ArmMetrics, candidate: ArmMetrics, contributions: dict[str, Any], tol: Tolerances
) -> Interference:
    knowledge_gain = None
    if base.knowledge_nll is not None and candidate.knowledge_nll is not None:
        knowledge_gain = base.knowledge_nll - candidate.knowledge_nll
    behaviour_gain = candidate.scenario_margin["all"] - base.scenario_margin["all"]
    scalar_gain = None
    dims_down: list[str] = []
    if base.reward and candidate.reward:
        if base.reward.scalar_preference is not None and candidate.reward.scalar_preference is not None:
            scalar_gain = candidate.reward.scalar_preference - base.reward.scalar_preference
        if knowledge_gain is not None and knowledge_gain > tol.knowledge_nll_increase:
            dims_down = sorted(
                d
                for d, v in candidate.reward.dimensions.items()
                if base.reward.dimensions.get(d, v) - v > tol.reward_dimension_drop
            )
    # One scenario can fall while the average rises; a fall in any of them counts as behaviour lost.
    scenarios_down = sorted(
        name
        for name, m in base.scenario_margin.items()
        if name != "all" and m - candidate.scenario_margin.get(name, m) > tol.scenario_margin_drop
    )
    k_up = knowledge_gain is not None and knowledge_gain > tol.knowledge_nll_increase
    k_down = knowledge_gain is not None and knowledge_gain < -tol.knowledge_nll_increase
    b_up = behaviour_gain > tol.scenario_margin_drop or (
        scalar_gain is not None and scalar_gain > tol.reward_dimension_drop
    )
    b_down = behaviour_gain < -tol.scenario_margin_drop or bool(dims_down) or bool(scenarios_down)
    if k_up and b_down:
        verdict = "memory_over_reward"
    elif b_up and k_down and not scenarios_down:
        verdict = "reward_over_memory"
    elif k_down and b_down:
        verdict = "both_regressed"
    else:
        verdict = "none"
    sft_share = _loss_share(contributions, "sft", "memory")
    pref_share = _loss_share(contributions, "preference", "reward")
    return Interference(
        knowledge_gain=knowledge_gain,
        behaviour_gain=behaviour_gain,
        reward_scalar_gain=scalar_gain,
        sft_loss_share=sft_share,
        preference_loss_share=pref_share,
        knowledge_gain_per_sft_share=knowledge_gain / sft_share
        if knowledge_gain is not None and sft_share
        else None,
        behaviour_gain_per_preference_share=behaviour_gain / pref_share if pref_share else None,
        dimensions_down_while_knowledge_up=dims_down,
        scenarios_down=scenarios_down,
        verdict=verdict,
    )
