"""`hominem health show|measure|nightly|online`: the Reward Health Index from the command line
(docs/REWARD_HEALTH.md). The same domain calls as the `rhi_report` asset and the nightly replay job."""

from __future__ import annotations

import json

import click

from hominem_pipeline.cli.adapters import _model_option, _store, registry_for
from hominem_pipeline.health.config import COMPONENTS
from hominem_pipeline.health.gate import read_decisions
from hominem_pipeline.health.report import interpret, read_history
from hominem_pipeline.settings import Settings


def _fmt(v: float | None) -> str:
    return "  -  " if v is None else f"{v:.3f}"


@click.group()
def health() -> None:
    """The Reward Health Index: history, measurements, the nightly replay, online updates."""


@health.command("show")
@click.option("--last", default=10, show_default=True, help="How many measurements and decisions to print")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output")
@_model_option
def show_cmd(last: int, as_json: bool, model_name: str | None) -> None:
    """RHI and its components over time, the reading of the trend, and the latest gate decisions."""
    registry = registry_for(model_name)
    history = read_history(registry.artifacts_dir, registry.model_name)
    decisions = read_decisions(registry.artifacts_dir, registry.model_name)
    if as_json:
        click.echo(
            json.dumps({"history": history[-last:], "decisions": decisions[-last:]}, indent=2, default=str)
        )
        return
    if not history:
        click.echo(
            f"no RHI measurements yet for {registry.model_name} (materialise rhi_report, or `hominem health measure`)"
        )
        return
    click.echo(
        f"{'measured at':<26} {'kind':<8} {'version':<17} {'RHI':>5} "
        + " ".join(f"{c.upper():>5}" for c in COMPONENTS)
    )
    for r in history[-last:]:
        click.echo(
            f"{str(r['measured_at'])[:25]:<26} {r['kind']:<8} {r['version']:<17} {_fmt(r.get('rhi'))} "
            + " ".join(_fmt(r.get(c)) for c in COMPONENTS)
        )
    latest = history[-1]
    same_kind = [r.get("rhi") for r in history if r.get("kind") == latest["kind"]]
    click.echo(f"\nreading: {interpret(same_kind, {c: latest.get(c) for c in COMPONENTS})}")
    for d in decisions[-last:]:
        click.echo(f"{str(d['at'])[:25]}  {d['loop']:<13} {'+'.join(d['actions']):<28} {d['reason']}")


@health.command("measure")
@click.argument("version", default="current")
@_model_option
def measure_cmd(version: str, model_name: str | None) -> None:
    """Measure VERSION (a version, prefix or pointer; default `current`) and add it to the history."""
    from hominem_pipeline.health.run import measure_and_record

    registry = registry_for(model_name)
    resolved = registry.resolve(version).name
    with _store() as db:
        measured = measure_and_record(Settings(), registry.model_name, resolved, "cycle", db=db)
    r = measured.report
    click.echo(
        f"RHI {_fmt(r.rhi)} for {resolved}: "
        + ", ".join(f"{c.upper()} {_fmt(v)}" for c, v in r.values().items())
    )
    if r.missing:
        click.echo(f"not measured: {', '.join(r.missing)}")
    click.echo(f"reading: {r.interpretation}\nreport: {measured.path}\nplot: {measured.plot}")


@health.command("nightly")
@_model_option
def nightly_cmd(model_name: str | None) -> None:
    """Run the nightly replay now: the full RHI of `current`, the dip check and the slow loop."""
    from hominem_pipeline.health.run import nightly_replay

    registry = registry_for(model_name)
    with _store() as db:
        measured = nightly_replay(Settings(), registry.model_name, db=db)
    if measured is None:
        click.echo("no `current` adapter yet: nothing to replay")
        return
    click.echo(f"RHI of current ({measured.report.version}): {_fmt(measured.report.rhi)}")
    for d in measured.decisions:
        click.echo(f"{d.loop} loop: {d.action}: {d.reason}")


@health.command("online")
def online_cmd() -> None:
    """One online update (fast loop) from the feedback pairs no earlier update learned from (at most
    `[fast_loop] max_age_hours` old), gated by partial RHI; `current` never moves (the `online` pointer does)."""
    from hominem_pipeline.health.run import read_user_signal, run_online_update

    with _store() as db:
        user = read_user_signal(Settings(), db)
    result = run_online_update(Settings(), user=user)
    d = result.decision
    click.echo(f"fast loop: {d.action}: {d.reason}")
    click.echo(f"candidate: {result.candidate or 'none'}; online pointer: {result.online or 'unset'}")
