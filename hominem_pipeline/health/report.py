"""Where the Reward Health Index lives on disk and how it reads: one report per measurement, the history
across measurements (what the plot and the trend reading use), the plain-text interpretation.

Layout under `artifacts/rhi/<model>/`: `reports/<adapter version>.json` (the latest measurement of that
version, replaced atomically), `history.jsonl` (one line per measurement, appended durably),
`decisions.jsonl` (every gating decision with its inputs, see `health.gate`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from hominem_pipeline.atomic import append_jsonl_durable, write_json_atomic
from hominem_pipeline.health.components import Component
from hominem_pipeline.health.config import COMPONENTS, Weights
from hominem_pipeline.validation import scan_jsonl

Kind = Literal["cycle", "nightly", "online"]


class ComponentValue(BaseModel):
    value: float | None = Field(None, ge=0.0, le=1.0)
    inputs: dict[str, Any] = Field(default_factory=dict)
    note: str = ""

    @classmethod
    def of(cls, c: Component) -> ComponentValue:
        return cls(value=c.value, inputs=c.inputs, note=c.note)


class HealthReport(BaseModel):
    """One measurement of the index for one adapter version."""

    model_name: str
    version: str
    kind: Kind
    measured_at: str
    rhi: float | None = Field(None, ge=0.0, le=1.0)
    partial: float | None = Field(None, ge=0.0, le=1.0)
    components: dict[str, ComponentValue]
    weights: Weights
    reward_model: str | None = None
    probe_set_hash: str | None = None
    reward_rdm: list[float] | None = None  # the RDM later reports measure drift against
    interpretation: str = ""
    notes: list[str] = Field(default_factory=list)

    @property
    def missing(self) -> list[str]:
        return [c for c in COMPONENTS if self.components.get(c, ComponentValue()).value is None]

    @property
    def complete(self) -> bool:
        return not self.missing

    def values(self) -> dict[str, float | None]:
        return {c: self.components[c].value if c in self.components else None for c in COMPONENTS}

    def history_row(self) -> dict[str, Any]:
        return {
            "measured_at": self.measured_at,
            "version": self.version,
            "kind": self.kind,
            "rhi": self.rhi,
            "partial": self.partial,
            **self.values(),
        }


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def health_root(artifacts_dir: Path, model_name: str) -> Path:
    return Path(artifacts_dir) / "rhi" / model_name


def report_path(artifacts_dir: Path, model_name: str, version: str) -> Path:
    return health_root(artifacts_dir, model_name) / "reports" / f"{version}.json"


def history_path(artifacts_dir: Path, model_name: str) -> Path:
    return health_root(artifacts_dir, model_name) / "history.jsonl"


def read_report(path: Path) -> HealthReport:
    return HealthReport.model_validate_json(Path(path).read_text())


def find_report(artifacts_dir: Path, model_name: str, version: str) -> HealthReport | None:
    path = report_path(artifacts_dir, model_name, version)
    return read_report(path) if path.is_file() else None


def read_log(path: Path) -> list[dict[str, Any]]:
    """The rows of an append-only log (history, decisions), oldest first; a line a crash tore is skipped."""
    if not Path(path).is_file():
        return []
    return [row for _, row, _ in scan_jsonl(path) if row is not None]


def read_history(artifacts_dir: Path, model_name: str) -> list[dict[str, Any]]:
    """Every measurement so far, oldest first."""
    return read_log(history_path(artifacts_dir, model_name))


def save_report(report: HealthReport, artifacts_dir: Path) -> Path:
    """The report file (atomic), then its history line (durable append)."""
    path = report_path(artifacts_dir, report.model_name, report.version)
    write_json_atomic(path, report.model_dump(mode="json"))
    append_jsonl_durable(history_path(artifacts_dir, report.model_name), report.history_row())
    return path


# -- reading the trend ------------------------------------------------------------------------------
SHARP_DROP = 0.15  # one step down by this much is a sharp drop
FLAT_RANGE = 0.05  # the last few values within this band are flat
OSCILLATION_AMPLITUDE = 0.05


def interpret(values: list[float], components: dict[str, float | None] | None = None) -> str:
    """The seed's reading of the index over time: sharp drop = dimensions fighting; oscillation =
    curvature instability; flat near 0.5 = the evaluator is failing; flat near 1.0 = healthy."""
    values = [v for v in values if v is not None]
    if not values:
        return "no index yet: no component could be measured"
    last = values[-1]
    comps = components or {}
    weakest = min((k for k, v in comps.items() if v is not None), key=lambda k: comps[k], default=None)
    hint = f" (weakest component: {weakest.upper()} {comps[weakest]:.2f})" if weakest else ""
    if len(values) >= 2 and values[-2] - last >= SHARP_DROP:
        return (
            f"sharp drop ({values[-2]:.2f} -> {last:.2f}): reward dimensions are fighting; look at DCS and "
            f"the most opposed dimension pair{hint}"
        )
    tail = values[-5:]
    if len(tail) >= 4:
        diffs = [b - a for a, b in zip(tail, tail[1:], strict=False)]
        turns = sum(1 for a, b in zip(diffs, diffs[1:], strict=False) if a * b < 0)
        if turns >= 2 and max(abs(d) for d in diffs) >= OSCILLATION_AMPLITUDE:
            return f"oscillation over the last {len(tail)} measurements: curvature instability; look at MSS{hint}"
    if len(tail) >= 3 and max(tail) - min(tail) <= FLAT_RANGE:
        mean = sum(tail) / len(tail)
        if abs(mean - 0.5) <= 0.1:
            return f"flat near 0.5 ({mean:.2f}): the evaluator (reward model) is failing to tell answers apart{hint}"
        if mean >= 0.9:
            return f"flat near 1.0 ({mean:.2f}): healthy"
        return f"steady at {mean:.2f}{hint}"
    if len(values) < 3:
        return f"RHI {last:.2f}; too few measurements to read a trend{hint}"
    trend = "rising" if values[-1] > values[-3] else "falling"
    return f"RHI {last:.2f}, {trend} over the last three measurements{hint}"


def report_markdown(report: HealthReport) -> str:
    rows = ["| component | value | weight | note |", "|---|---|---|---|"]
    for c in COMPONENTS:
        v = report.components.get(c, ComponentValue())
        value = "not measured" if v.value is None else f"{v.value:.3f}"
        rows.append(f"| {c.upper()} | {value} | {getattr(report.weights, c):.2f} | {v.note} |")
    rhi = "n/a" if report.rhi is None else f"{report.rhi:.3f}"
    partial = "n/a" if report.partial is None else f"{report.partial:.3f}"
    head = f"**RHI {rhi}** (partial, DCS+GVS: {partial}) for `{report.version}` ({report.kind})\n\n"
    missing = (
        f"\n\nNot measured (left out of the weighted mean): {', '.join(report.missing)}"
        if report.missing
        else ""
    )
    return head + "\n".join(rows) + f"\n\n{report.interpretation}" + missing
