"""Evaluate an adapter version against the base model (and the `current` version): knowledge retention,
behavioural alignment, forgetting and channel interference, plus the regression gate that decides whether
the version may be promoted. docs/EVALUATION.md defines each metric."""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from statistics import fmean
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hominem_pipeline.adapters import CURRENT, AdapterRegistry, AdapterRegistryError, now_utc
from hominem_pipeline.atomic import write_json_atomic
from hominem_pipeline.evaluation.config import LoraEvalConfig, RegressionSet, Tolerances
from hominem_pipeline.evaluation.scoring import greedy_generate, response_nll
from hominem_pipeline.validation import read_jsonl

log = logging.getLogger(__name__)

ArmName = Literal["base", "candidate", "current"]


class Probe(BaseModel):
    """One knowledge question: `held_out` phrasings test memory, `taught` ones only test fitting."""

    source: Literal["eval_config", "sft_data"]
    kind: Literal["held_out", "taught"]
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


def collect_probes(regression_set: RegressionSet, sft_rows: Sequence[dict[str, Any]] = ()) -> list[Probe]:
    probes = [
        Probe(source="eval_config", kind="held_out", item_id=k.id, question=p.question, answer=p.answer)
        for k in regression_set.knowledge
        for p in k.probes
    ]
    for i, raw in enumerate(sft_rows):
        try:
            row = _SftProbeRow.model_validate(raw)
        except Exception as exc:
            raise ValueError(f"SFT row {i + 1}: {exc}") from exc
        item_id = row.pair_id or f"sft-{i + 1}"
        probes.append(
            Probe(
                source="sft_data",
                kind="taught",
                item_id=item_id,
                question=row.instruction,
                answer=row.response,
            )
        )
        for p in row.metadata.get("held_out_probes") or []:
            probes.append(
                Probe(
                    source="sft_data",
                    kind="held_out",
                    item_id=item_id,
                    question=p["question"],
                    answer=p["answer"],
                )
            )
    return probes


def read_sft_rows(path: Path, max_rows: int) -> list[dict[str, Any]]:
    if max_rows == 0 or not Path(path).is_file():
        return []
    return read_jsonl(path)[:max_rows]


# -- reward model ----------------------------------------------------------------------------------
def load_reward_model(artifacts_dir: Path) -> tuple[Any | None, str]:
    """The published reward model, or None with the reason the alignment scores are missing."""
    try:
        reward_model_module = importlib.import_module("hominem_pipeline.reward_model")
    except ModuleNotFoundError as exc:
        if exc.name != "hominem_pipeline.reward_model":
            raise
        return None, "no reward-model module in this build (hominem_pipeline.reward_model)"
    rm = reward_model_module.load_current(Path(artifacts_dir))
    if rm is None:
        return None, f"no reward model published under {Path(artifacts_dir) / 'reward_model'}"
    return rm, f"reward model {rm.version}"


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


# -- per-model measurements ------------------------------------------------------------------------
class ArmMetrics(BaseModel):
    general_nll: float
    knowledge_nll: float | None  # held-out phrasings
    knowledge_taught_nll: float | None  # the taught phrasing itself (fit, not retention)
    scenario_margin: dict[str, float]  # per scenario name, and "all"
    reward: RewardSummary | None = None
    outputs: dict[str, str] = Field(default_factory=dict)  # item id -> greedy output


def alignment_prompts(regression_set: RegressionSet, limit: int) -> list[tuple[str, str]]:
    items = [(s.id, s.prompt) for s in regression_set.scenarios] + [
        (g.id, g.prompt) for g in regression_set.general
    ]
    return items[:limit] if limit else items


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

    held = [p for p in probes if p.kind == "held_out"]
    taught = [p for p in probes if p.kind == "taught"]
    held_nll = response_nll(model, tokenizer, [(p.question, p.answer) for p in held], bs) if held else []
    taught_nll = (
        response_nll(model, tokenizer, [(p.question, p.answer) for p in taught], bs) if taught else []
    )

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
        knowledge_nll=fmean(held_nll) if held_nll else None,
        knowledge_taught_nll=fmean(taught_nll) if taught_nll else None,
        scenario_margin=scenario_margin,
        reward=reward,
        outputs=outputs,
    )


# -- gate ------------------------------------------------------------------------------------------
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
    k_c, k_r = candidate.knowledge_nll, reference.knowledge_nll
    check(
        "knowledge_nll",
        k_c,
        k_r,
        None if k_c is None or k_r is None else k_c - k_r,
        tol.knowledge_nll_increase,
    )
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


# -- channel interference --------------------------------------------------------------------------
class Interference(BaseModel):
    """Whether one channel's gain came at the other's cost (docs/EVALUATION.md)."""

    knowledge_gain: float | None  # base - candidate held-out knowledge NLL (nats/token); > 0 = learned
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


# -- the whole evaluation --------------------------------------------------------------------------
class EvalReport(BaseModel):
    model_name: str
    version: str
    base_model: str
    current_version: str | None  # the version `current` named when this ran (compared when different)
    evaluated_at: str
    regression_set_hash: str
    tolerances: Tolerances
    reward_model: str | None
    reward_model_note: str
    probes: dict[str, int]
    arms: dict[str, ArmMetrics]
    regressions: list[Regression]
    gate_failures: list[str]
    passed: bool
    interference: Interference

    def flat_metrics(self) -> dict[str, float]:
        """Numbers for Dagster metadata: each arm's metrics and the candidate's deltas against base."""
        out: dict[str, float] = {}
        for arm_name, arm in self.arms.items():
            out[f"{arm_name}.general_nll"] = arm.general_nll
            if arm.knowledge_nll is not None:
                out[f"{arm_name}.knowledge_nll"] = arm.knowledge_nll
            if arm.knowledge_taught_nll is not None:
                out[f"{arm_name}.knowledge_taught_nll"] = arm.knowledge_taught_nll
            for name, v in arm.scenario_margin.items():
                out[f"{arm_name}.scenario_margin.{name}"] = v
            if arm.reward:
                for d, v in arm.reward.dimensions.items():
                    out[f"{arm_name}.reward.{d}"] = v
                out[f"{arm_name}.reward.safety_score"] = arm.reward.safety_score
                out[f"{arm_name}.reward.reward_intensity"] = arm.reward.reward_intensity
        base, cand = self.arms["base"], self.arms["candidate"]
        out["delta.general_nll_rel"] = (cand.general_nll - base.general_nll) / base.general_nll
        if cand.knowledge_nll is not None and base.knowledge_nll is not None:
            out["delta.knowledge_nll"] = cand.knowledge_nll - base.knowledge_nll
        out["delta.scenario_margin"] = cand.scenario_margin["all"] - base.scenario_margin["all"]
        return {k: round(v, 6) for k, v in out.items()}

    @property
    def content_hash(self) -> str:
        body = self.model_dump(mode="json", exclude={"evaluated_at"})
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def evaluate_version(
    registry: AdapterRegistry,
    version: str,
    cfg: LoraEvalConfig,
    regression_set: RegressionSet,
    *,
    reward_model: Any | None = None,
    reward_model_note: str = "no reward model given",
    sft_rows: Sequence[dict[str, Any]] = (),
    base_model_path: str | None = None,
) -> EvalReport:
    """Run the regression set on base, candidate and (when different and configured) `current`, in one
    loaded model: adapters are switched, the base is the adapter disabled."""
    from peft import PeftModel

    from hominem_pipeline.models import load_causal_lm

    candidate = registry.get(version)
    current = registry.pointer(CURRENT).target
    compare_current = cfg.compare_against_current and current is not None and current != candidate.version
    base_path = base_model_path or registry.base_model_path(candidate)
    model, tok = load_causal_lm(base_path)
    model = PeftModel.from_pretrained(model, str(candidate.path), adapter_name="candidate")
    if compare_current:
        try:
            model.load_adapter(str(registry.resolve(current)), adapter_name="current")
        except AdapterRegistryError as exc:
            raise AdapterRegistryError(f"`current` cannot be compared: {exc}") from exc
    model.eval()
    probes = collect_probes(regression_set, sft_rows)

    arms: dict[str, ArmMetrics] = {}
    with model.disable_adapter():
        arms["base"] = measure(model, tok, regression_set, probes, cfg, reward_model)
    model.set_adapter("candidate")
    arms["candidate"] = measure(model, tok, regression_set, probes, cfg, reward_model)
    if compare_current:
        model.set_adapter("current")
        arms["current"] = measure(model, tok, regression_set, probes, cfg, reward_model)

    tol = cfg.tolerances
    regressions = find_regressions(arms["candidate"], arms["base"], "base", tol)
    if compare_current:
        regressions += find_regressions(arms["candidate"], arms["current"], f"current ({current})", tol)
    gate_failures = [
        f"{r.metric} vs {r.against}: {r.reference:.4f} -> {r.candidate:.4f} (tolerance {r.tolerance})"
        for r in regressions
    ]
    if reward_model is None and cfg.require_reward_model:
        gate_failures.append(
            f"behavioural alignment not measured: {reward_model_note} (require_reward_model is on)"
        )
    return EvalReport(
        model_name=registry.model_name,
        version=candidate.version,
        base_model=candidate.metadata.base_model,
        current_version=current,
        evaluated_at=now_utc().isoformat(),
        regression_set_hash=regression_set.content_hash,
        tolerances=tol,
        reward_model=getattr(reward_model, "version", None) if reward_model is not None else None,
        reward_model_note=reward_model_note,
        probes={
            "held_out": sum(p.kind == "held_out" for p in probes),
            "taught": sum(p.kind == "taught" for p in probes),
            "from_sft_data": sum(p.source == "sft_data" for p in probes),
        },
        arms=arms,
        regressions=regressions,
        gate_failures=gate_failures,
        passed=not gate_failures,
        interference=channel_interference(
            arms["base"], arms["candidate"], candidate.metadata.channel_contributions, tol
        ),
    )


def evaluate_published(
    settings: Any, model_name: str, version: str, log: Any = None
) -> tuple[EvalReport, Path]:
    """Evaluate one published adapter with the project's eval config, SFT probes and current reward
    model, and write its report. What the `lora_eval` asset and scripts call."""
    from hominem_pipeline.evaluation.config import load_eval_inputs

    cfg, regression_set = load_eval_inputs(settings.config_dir)
    reward_model, note = load_reward_model(settings.artifacts_dir)
    if reward_model is None and log is not None:
        log(f"behavioural alignment not scored: {note}")
    sft_path = Path(cfg.sft_probes.path)
    sft_rows = read_sft_rows(sft_path if sft_path.is_absolute() else settings.home / sft_path, cfg.sft_probes.max_rows)
    if log is not None:
        log(f"evaluating {model_name}/{version} ({len(sft_rows)} SFT rows as probes)")
    report = evaluate_version(
        AdapterRegistry(settings.artifacts_dir, model_name),
        version,
        cfg,
        regression_set,
        reward_model=reward_model,
        reward_model_note=note,
        sft_rows=sft_rows,
    )
    return report, write_report(report, settings.artifacts_dir)


def report_path(artifacts_dir: Path, model_name: str, version: str) -> Path:
    return Path(artifacts_dir) / "lora_eval" / model_name / f"{version}.json"


def write_report(report: EvalReport, artifacts_dir: Path) -> Path:
    path = report_path(artifacts_dir, report.model_name, report.version)
    write_json_atomic(path, report.model_dump(mode="json"))
    return path


def read_report(path: Path) -> EvalReport:
    return EvalReport.model_validate_json(Path(path).read_text())


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def report_markdown(report: EvalReport) -> str:
    arms = list(report.arms)
    head = "| metric | " + " | ".join(arms) + " |\n|---|" + "---|" * len(arms) + "\n"
    rows = [("general NLL (forgetting, lower is better)", [a.general_nll for a in report.arms.values()])]
    rows.append(("knowledge NLL, held-out phrasings", [a.knowledge_nll for a in report.arms.values()]))
    rows.append(("knowledge NLL, taught phrasings", [a.knowledge_taught_nll for a in report.arms.values()]))
    for name in report.arms["base"].scenario_margin:
        rows.append((f"scenario margin: {name}", [a.scenario_margin.get(name) for a in report.arms.values()]))
    if report.arms["base"].reward:
        for d in report.arms["base"].reward.dimensions:
            rows.append(
                (
                    f"reward: {d}",
                    [a.reward.dimensions.get(d) if a.reward else None for a in report.arms.values()],
                )
            )
        rows.append(
            (
                "reward: safety_score",
                [a.reward.safety_score if a.reward else None for a in report.arms.values()],
            )
        )
        rows.append(
            (
                "reward: reward_intensity",
                [a.reward.reward_intensity if a.reward else None for a in report.arms.values()],
            )
        )
    body = "".join(f"| {label} | " + " | ".join(_fmt(v) for v in vals) + " |\n" for label, vals in rows)
    verdict = "PASSED" if report.passed else "FAILED"
    lines = [
        f"### adapter {report.version}: gate {verdict}",
        "",
        head + body,
        f"Alignment: {report.reward_model_note}.",
    ]
    lines.append(f"Channel interference: {report.interference.verdict}.")
    if report.gate_failures:
        lines += ["", "Regressions:"] + [f"- {f}" for f in report.gate_failures]
    return "\n".join(lines)


def describe_lora(artifacts_dir: Path) -> list[str]:
    """Summary lines for `make run`: each model's adapter versions, pointers, and the latest evaluations."""
    lines: list[str] = []
    lora_root = Path(artifacts_dir) / "lora"
    for model_dir in sorted(p for p in lora_root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        registry = AdapterRegistry(artifacts_dir, model_dir.name)
        pointers = ", ".join(f"{k} -> {v}" for k, v in registry.pointers().items()) or "no pointers"
        lines.append(f"  {model_dir.name}: {len(registry.version_names())} versions; {pointers}")
        for name in registry.version_names():
            path = report_path(artifacts_dir, model_dir.name, name)
            if not path.is_file():
                continue
            r = read_report(path)
            m = r.flat_metrics()
            knowledge = f"{m['delta.knowledge_nll']:+.3f}" if "delta.knowledge_nll" in m else "n/a"
            lines.append(
                f"    eval {name}: gate {'passed' if r.passed else 'FAILED'}; vs base: general NLL"
                f" {m['delta.general_nll_rel']:+.2%}, knowledge NLL {knowledge}, scenario margin"
                f" {m['delta.scenario_margin']:+.3f}; interference {r.interference.verdict}; {r.reward_model_note}"
            )
    return lines
