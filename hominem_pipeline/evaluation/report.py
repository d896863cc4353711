"""The evaluation report: what `lora_eval` writes to `artifacts/lora_eval/<model>/<version>.json`, its
numbers flattened for Dagster metadata, the markdown table, and the lines `hominem summary` prints."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from hominem_pipeline.adapters import AdapterRegistry
from hominem_pipeline.atomic import write_json_atomic
from hominem_pipeline.evaluation.config import Tolerances
from hominem_pipeline.evaluation.gate import Interference, Regression
from hominem_pipeline.evaluation.measure import ArmMetrics


class ProbeCounts(BaseModel):
    """Where the knowledge probes came from: the adapter's own record of the SFT rows it trained on."""

    pinned: bool  # the adapter named the rows it trained on (else no taught-fact probes)
    trained_rows: int  # SFT rows the adapter trained on
    rows_found: int  # of those, rows found in the SFT export (and probed)
    held_out: int  # new phrasings of their facts
    taught: int  # the training rows themselves
    earlier: int = 0  # new phrasings of facts its ancestors trained on


class EvalReport(BaseModel):
    model_name: str
    version: str
    base_model: str
    parent_version: str | None = None  # the adapter this one continued from (compared when present)
    current_version: str | None  # the version `current` named when this ran (compared when different)
    evaluated_at: str
    regression_set_hash: str
    tolerances: Tolerances
    reward_model: str | None
    reward_model_note: str
    probes: ProbeCounts
    arms: dict[str, ArmMetrics]
    regressions: list[Regression]
    gate_failures: list[str]
    passed: bool
    interference: Interference
    notes: list[str] = Field(default_factory=list)
    # Hash of everything the evaluation read (config, sets, arms, probes, reward model): a later run with
    # the same fingerprint reuses this report instead of evaluating again (evaluate.evaluate_published).
    inputs_fingerprint: str | None = None

    def flat_metrics(self) -> dict[str, float]:
        """Numbers for Dagster metadata: each arm's metrics and the candidate's changes against base
        (`delta.*`) and against its parent (`delta_parent.*`); `_rel` ones are relative (0.1 = +10%)."""
        out: dict[str, float] = {}
        for arm_name, arm in self.arms.items():
            out[f"{arm_name}.general_nll"] = arm.general_nll
            for metric in ("knowledge_nll", "knowledge_taught_nll", "knowledge_earlier_nll"):
                value = getattr(arm, metric)
                if value is not None:
                    out[f"{arm_name}.{metric}"] = value
            for name, v in arm.scenario_margin.items():
                out[f"{arm_name}.scenario_margin.{name}"] = v
            if arm.reward:
                for d, v in arm.reward.dimensions.items():
                    out[f"{arm_name}.reward.{d}"] = v
                out[f"{arm_name}.reward.safety_score"] = arm.reward.safety_score
                out[f"{arm_name}.reward.reward_intensity"] = arm.reward.reward_intensity
        cand = self.arms["candidate"]
        for prefix, ref_name in (("delta", "base"), ("delta_parent", "parent")):
            ref = self.arms.get(ref_name)
            if ref is None:
                continue
            out[f"{prefix}.general_nll_rel"] = (cand.general_nll - ref.general_nll) / ref.general_nll
            for metric in ("knowledge_nll", "knowledge_earlier_nll"):
                c, r = getattr(cand, metric), getattr(ref, metric)
                if c is not None and r is not None:
                    out[f"{prefix}.{metric}"] = c - r
                    out[f"{prefix}.{metric}_rel"] = (c - r) / r
            out[f"{prefix}.scenario_margin"] = cand.scenario_margin["all"] - ref.scenario_margin["all"]
        return {k: round(v, 6) for k, v in out.items()}

    @property
    def content_hash(self) -> str:
        body = self.model_dump(mode="json", exclude={"evaluated_at"})
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


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
    values = list(report.arms.values())
    head = "| metric | " + " | ".join(arms) + " |\n|---|" + "---|" * len(arms) + "\n"
    rows = [
        ("general NLL (forgetting, lower is better)", [a.general_nll for a in values]),
        ("taught facts, new phrasings NLL (memory)", [a.knowledge_nll for a in values]),
        ("taught facts, training phrasing NLL (fit)", [a.knowledge_taught_nll for a in values]),
        ("earlier cycles' facts, new phrasings NLL", [a.knowledge_earlier_nll for a in values]),
    ]
    for name in report.arms["base"].scenario_margin:
        rows.append((f"scenario margin: {name}", [a.scenario_margin.get(name) for a in values]))
    if report.arms["base"].reward:
        for d in report.arms["base"].reward.dimensions:
            rows.append((f"reward: {d}", [a.reward.dimensions.get(d) if a.reward else None for a in values]))
        rows.append(("reward: safety_score", [a.reward.safety_score if a.reward else None for a in values]))
        rows.append(
            ("reward: reward_intensity", [a.reward.reward_intensity if a.reward else None for a in values])
        )
    body = "".join(f"| {label} | " + " | ".join(_fmt(v) for v in vals) + " |\n" for label, vals in rows)
    verdict = "PASSED" if report.passed else "FAILED"
    p = report.probes
    lines = [
        f"### adapter {report.version}: gate {verdict}",
        "",
        head + body,
        f"Probes: {p.held_out} new phrasings of the facts in {p.rows_found} of the {p.trained_rows} SFT rows this"
        f" adapter trained on, {p.earlier} of earlier cycles' facts.",
        f"Alignment: {report.reward_model_note}.",
        f"Channel interference: {report.interference.verdict}.",
    ]
    lines += [f"Note: {n}" for n in report.notes]
    if report.gate_failures:
        lines += ["", "Regressions:"] + [f"- {f}" for f in report.gate_failures]
    return "\n".join(lines)


def _pct(m: dict[str, float], key: str) -> str:
    return f"{m[key]:+.1%}" if key in m else "n/a"


def summary_line(report: EvalReport) -> str:
    """One evaluation in words: the two headline figures (taught facts in new phrasings vs base and vs
    parent; general-set drift vs base), then the rest."""
    m = report.flat_metrics()
    p = report.probes
    facts = (
        f"taught facts in new phrasings ({p.held_out} probes, {p.rows_found} rows): NLL {_pct(m, 'delta.knowledge_nll_rel')}"
        f" vs base, {_pct(m, 'delta_parent.knowledge_nll_rel')} vs parent"
        if p.held_out
        else "taught facts: no new-phrasing probes for the rows this adapter trained on"
    )
    if p.earlier:
        facts += (
            f"; earlier cycles' facts ({p.earlier} probes): NLL {_pct(m, 'delta_parent.knowledge_earlier_nll_rel')}"
            f" vs parent, {_pct(m, 'delta.knowledge_earlier_nll_rel')} vs base"
        )
    return (
        f"gate {'passed' if report.passed else 'FAILED'}; {facts}; general-set drift"
        f" {_pct(m, 'delta.general_nll_rel')} vs base; scenario margin {m['delta.scenario_margin']:+.3f};"
        f" interference {report.interference.verdict}; {report.reward_model_note}"
    )


def describe_lora(artifacts_dir: Path) -> list[str]:
    """Summary lines for `make run`: each model's adapter versions, pointers, and their evaluations."""
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
            try:
                lines.append(f"    eval {name}: {summary_line(read_report(path))}")
            except ValidationError:
                lines.append(
                    f"    eval {name}: report in an older format ({path}); re-run lora_eval to refresh"
                )
    return lines
