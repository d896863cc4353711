"""What one arm (base model, candidate adapter, parent, `current`) scores on the evaluation: general-set
NLL (forgetting), the taught facts' NLL in new phrasings (memory) and in their training phrasing (fit),
facts its ancestors were taught (retention), scenario margins and the reward model's reading of its greedy
answers. The probes are the held-out phrasings stored with the SFT rows the adapter trained on."""

from __future__ import annotations

from collections.abc import Sequence
from statistics import fmean
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hominem_pipeline.evaluation.config import KnowledgeProbe, LoraEvalConfig, RegressionSet
from hominem_pipeline.evaluation.scoring import greedy_generate, response_nll

ProbeKind = Literal["held_out", "taught", "earlier"]


class Probe(BaseModel):
    """One knowledge question. `held_out`: a new phrasing of a fact the adapter trained on (memory);
    `taught`: the training row itself (fit, not memory); `earlier`: a new phrasing of a fact one of its
    ancestors trained on (retention)."""

    kind: ProbeKind
    item_id: str
    question: str
    answer: str


class _SftProbeRow(BaseModel):
    # The SFT export carries more fields (records.SFTPair); only these matter here.
    model_config = ConfigDict(extra="ignore")
    pair_id: str = ""
    instruction: str = Field(min_length=1)
    response: str = Field(min_length=1)
    metadata: dict[str, Any] = Field(default_factory=dict)


def _rows(rows: Sequence[dict[str, Any]], what: str) -> list[_SftProbeRow]:
    out = []
    for i, raw in enumerate(rows):
        try:
            out.append(_SftProbeRow.model_validate(raw))
        except Exception as exc:
            raise ValueError(f"{what} row {i + 1}: {exc}") from exc
    return out


def _held_out(row: _SftProbeRow, item_id: str, kind: ProbeKind, i: int, what: str) -> list[Probe]:
    out = []
    for j, raw in enumerate(row.metadata.get("held_out_probes") or []):
        try:
            p = KnowledgeProbe.model_validate(raw)
        except Exception as exc:
            raise ValueError(f"{what} row {i + 1}: metadata.held_out_probes[{j}]: {exc}") from exc
        out.append(Probe(kind=kind, item_id=item_id, question=p.question, answer=p.answer))
    return out


def collect_probes(
    trained_rows: Sequence[dict[str, Any]] = (), earlier_rows: Sequence[dict[str, Any]] = ()
) -> list[Probe]:
    """Probes from the SFT rows the adapter trained on (each row's taught phrasing and its stored
    `metadata.held_out_probes`) and the held-out probes of rows its ancestors trained on."""
    probes: list[Probe] = []
    for i, row in enumerate(_rows(trained_rows, "SFT")):
        item_id = row.pair_id or f"sft-{i + 1}"
        probes.append(Probe(kind="taught", item_id=item_id, question=row.instruction, answer=row.response))
        probes += _held_out(row, item_id, "held_out", i, "SFT")
    for i, row in enumerate(_rows(earlier_rows, "earlier SFT")):
        probes += _held_out(row, row.pair_id or f"earlier-{i + 1}", "earlier", i, "earlier SFT")
    return probes


class RewardSummary(BaseModel):
    dimensions: dict[str, float]
    reward_intensity: float
    safety_score: float
    scalar_preference: float | None = None
    outputs: int


def summarise_reward_outputs(outputs: Sequence[Any]) -> RewardSummary:
    """Mean reward vector, intensity, safety and scalar over the scored greedy outputs of one model."""
    if not outputs:
        raise ValueError("no reward outputs to summarise")
    dims = list(outputs[0].reward_vector)
    scalars = [o.scalar_preference for o in outputs if getattr(o, "scalar_preference", None) is not None]
    return RewardSummary(
        dimensions={d: fmean(o.reward_vector[d] for o in outputs) for d in dims},
        reward_intensity=fmean(o.reward_intensity for o in outputs),
        safety_score=fmean(o.safety_score for o in outputs),
        scalar_preference=fmean(scalars) if scalars else None,
        outputs=len(outputs),
    )


class ArmMetrics(BaseModel):
    general_nll: float
    knowledge_nll: float | None  # new phrasings of the facts this adapter trained on
    knowledge_taught_nll: float | None  # the training rows themselves (fit, not memory)
    knowledge_earlier_nll: float | None = None  # new phrasings of facts its ancestors trained on
    scenario_margin: dict[str, float]  # per scenario name, and "all"
    reward: RewardSummary | None = None
    outputs: dict[str, str] = Field(default_factory=dict)  # item id -> greedy output


def alignment_prompts(regression_set: RegressionSet, limit: int) -> list[tuple[str, str]]:
    items = [(s.id, s.prompt) for s in regression_set.scenarios] + [
        (g.id, g.prompt) for g in regression_set.general
    ]
    return items[:limit] if limit else items


def _mean_nll(model: Any, tokenizer: Any, probes: Sequence[Probe], batch_size: int) -> float | None:
    if not probes:
        return None
    return fmean(response_nll(model, tokenizer, [(p.question, p.answer) for p in probes], batch_size))


def measure(
    model: Any,
    tokenizer: Any,
    regression_set: RegressionSet,
    probes: Sequence[Probe],
    cfg: LoraEvalConfig,
    reward_model: Any | None,
) -> ArmMetrics:
    bs = cfg.nll_batch_size
    general = response_nll(model, tokenizer, [(g.prompt, g.reference) for g in regression_set.general], bs)
    by_kind = {k: [p for p in probes if p.kind == k] for k in ("held_out", "taught", "earlier")}

    # One NLL pass over every balanced answer and failure mode; margin = NLL(failure) - NLL(balanced).
    pairs: list[tuple[str, str]] = []
    for s in regression_set.scenarios:
        pairs.append((s.prompt, s.balanced))
        pairs.extend((s.prompt, f.response) for f in s.failures)
    nll = iter(response_nll(model, tokenizer, pairs, bs))
    per_scenario: dict[str, list[float]] = {}
    for s in regression_set.scenarios:
        balanced = next(nll)
        margins = [next(nll) - balanced for _ in s.failures]
        per_scenario.setdefault(s.scenario, []).append(fmean(margins))
    scenario_margin = {name: fmean(v) for name, v in per_scenario.items()}
    scenario_margin["all"] = fmean(m for v in per_scenario.values() for m in v)

    reward = None
    outputs: dict[str, str] = {}
    items = alignment_prompts(regression_set, cfg.generation.prompts_limit)
    if items:
        texts = greedy_generate(
            model, tokenizer, [p for _, p in items], cfg.generation.max_new_tokens, cfg.generation.batch_size
        )
        outputs = {item_id: text for (item_id, _), text in zip(items, texts, strict=True)}
        if reward_model is not None:
            reward = summarise_reward_outputs(
                reward_model.score_batch([(p, t) for (_, p), t in zip(items, texts, strict=True)])
            )
    return ArmMetrics(
        general_nll=fmean(general),
        knowledge_nll=_mean_nll(model, tokenizer, by_kind["held_out"], bs),
        knowledge_taught_nll=_mean_nll(model, tokenizer, by_kind["taught"], bs),
        knowledge_earlier_nll=_mean_nll(model, tokenizer, by_kind["earlier"], bs),
        scenario_margin=scenario_margin,
        reward=reward,
        outputs=outputs,
    )
