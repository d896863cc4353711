"""The simulation's report: a table per simulated week for the terminal and docs, the goals read against
the last week, and a plot of win rate, fact recall and drift over the weeks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hominem_pipeline.simulation.run import SimulationReport, WeekRow

#: The issue's goals, read against the last week's measurement.
GOALS = {"win_rate": 0.65, "fact_nll_change": -0.30, "drift": 0.05}


def _pct(v: float | None, signed: bool = True) -> str:
    return "-" if v is None else f"{v:+.1%}" if signed else f"{v:.0%}"


def _short(v: str | None) -> str:
    return "base" if not v or v == "base" else v[:12]


def header() -> str:
    return (
        f"{'week':>4} {'replies':>7} {'choices':>7} {'fixes':>5} {'failed':>6} {'cycles':>6} {'RHI':>5} "
        f"{'swaps':>5} {'current':>12} {'win':>5} {'sat cur/base':>12} {'fact NLL':>8} {'answers c/b':>11} {'drift':>6}"
    )


def row_line(row: WeekRow) -> str:
    m: dict[str, Any] = row.measure
    runs = row.runs.get("retraining_job", "0/0")
    answers = (
        "-"
        if m.get("fact_answer_rate_current") is None
        else (f"{m['fact_answer_rate_current']:.0%}/{m['fact_answer_rate_base']:.0%}")
    )
    win = "-" if not m else f"{m['win_rate']:.0%}"
    sat = "-" if not m else f"{m['satisfied_current']:.0%}/{m['satisfied_base']:.0%}"
    return (
        f"{row.week:>4} {row.chat.get('replies', 0):>7} {row.chat.get('choices', 0):>7} "
        f"{row.chat.get('corrections', 0):>5} {len(row.failed_requests):>6} {runs:>6} "
        f"{'-' if row.rhi is None else f'{row.rhi:.2f}':>5} {row.swaps:>5} {_short(m.get('adapter')):>12} "
        f"{win:>5} {sat:>12} {_pct(m.get('fact_nll_change')):>8} "
        f"{answers:>11} {_pct(m.get('general_nll_change')) if m else '-':>6}"
    )


def goals(report: SimulationReport) -> list[str]:
    last = report.weeks[-1].measure if report.weeks else {}
    if not last:
        return ["no measurement was taken"]
    out = []
    win, fact, drift = last["win_rate"], last.get("fact_nll_change"), last["general_nll_change"]
    out.append(
        f"win rate of current vs base: {win:.0%} (goal >= {GOALS['win_rate']:.0%}) -> "
        f"{'met' if win >= GOALS['win_rate'] else 'NOT met'}"
    )
    if fact is None:
        out.append("fact recall: the persona told no facts")
    else:
        out.append(
            f"fact NLL in new phrasings vs base: {fact:+.1%} (goal <= {GOALS['fact_nll_change']:+.0%}) -> "
            f"{'met' if fact <= GOALS['fact_nll_change'] else 'NOT met'}"
        )
    out.append(
        f"drift on the general set: {drift:+.1%} (goal |drift| < {GOALS['drift']:.0%}) -> "
        f"{'met' if abs(drift) < GOALS['drift'] else 'NOT met'}"
    )
    out.append(
        f"failed requests: {report.failed_requests} (goal 0) -> {'met' if report.failed_requests == 0 else 'NOT met'}"
    )
    return out


def render(report: SimulationReport) -> str:
    lines = [f"persona {report.persona}: {report.preference}; simulated from {report.started}", header()]
    lines += [row_line(w) for w in report.weeks]
    for w in report.weeks:
        m = w.measure
        if m.get("candidate"):
            lines.append(
                f"  week {w.week} newest cycle's adapter {m['candidate'][:12]} (held, not current): win {m['candidate_win_rate']:.0%}, "
                f"satisfied {m['candidate_satisfied']:.0%}, fact NLL {_pct(m.get('candidate_fact_nll_change'))}, "
                f"drift {m['candidate_general_nll_change']:+.1%}"
            )
        for name, said in w.sensors.items():
            lines.append(f"  week {w.week} {name}, last said: {said[:200]}")
        for d in w.decisions:
            lines.append(f"  week {w.week} decision: {d}")
        for f in w.run_failures:
            lines.append(f"  week {w.week} failed run: {f[:300]}")
        for f in w.failed_requests:
            lines.append(f"  week {w.week} failed request: {f[:300]}")
    lines += ["goals, on the last week:"] + [f"  {g}" for g in goals(report)]
    return "\n".join(lines)


def plot(report: SimulationReport, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    weeks = [w for w in report.weeks if w.measure]
    x = [w.week for w in weeks]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    ax.plot(x, [w.measure["win_rate"] for w in weeks], marker="o", label="win rate vs base (persona's rule)")
    if any(w.measure.get("fact_nll_change") is not None for w in weeks):
        ax.plot(x, [w.measure.get("fact_nll_change") for w in weeks], marker="s", label="fact NLL vs base")
    ax.plot(x, [w.measure["general_nll_change"] for w in weeks], marker="^", label="drift (general-set NLL)")
    ax.axhline(GOALS["win_rate"], color="tab:blue", linestyle=":", linewidth=1)
    ax.axhline(GOALS["fact_nll_change"], color="tab:orange", linestyle=":", linewidth=1)
    ax.axhline(0.0, color="grey", linewidth=0.8)
    for w in weeks:
        if w.swaps:
            ax.annotate(
                f"{w.swaps} swap{'s' if w.swaps > 1 else ''}",
                (w.week, w.measure["win_rate"]),
                textcoords="offset points",
                xytext=(0, 8),
                ha="center",
                fontsize=8,
            )
    ax.set_xlabel("simulated week")
    ax.set_xticks(x)
    ax.set_title(f"hominem simulate: persona {report.persona} ({report.preference})", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path
