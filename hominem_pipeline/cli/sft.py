"""`hominem sft stats|introspection`: the memory channel's admin commands (seed 002 section 7)."""

from __future__ import annotations

import json

import click

from hominem_pipeline.extraction.config import load_conversations_config, set_include_introspection
from hominem_pipeline.settings import ConfigError, Settings
from hominem_pipeline.store import TrainingDatabase


@click.group()
def sft() -> None:
    """Inspect the memory channel's SFT pairs and switch introspection in or out."""


@sft.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table")
def stats_cmd(as_json: bool) -> None:
    """Used / unused SFT pairs per source. "Used" means the `current` adapter (or one it continued from)
    trained on the row; unused rows wait for the next cycle (superseded ones, confidence 0, never train)."""
    settings = Settings()
    path = settings.database_path
    if not path.is_file():
        raise click.ClickException(
            f"no store at {path} yet: run the pipeline (make run) or import conversations"
        )
    try:
        with TrainingDatabase(path, read_only=True) as db:
            rows = db.sft_usage_by_source()
    except Exception as exc:  # duckdb.IOException: the pipeline holds the file's lock
        raise click.ClickException(
            f"cannot read {path}: {exc} (a pipeline step may be writing it; retry)"
        ) from exc
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'source':16s} {'used':>8s} {'unused':>8s} {'superseded':>10s} {'total':>8s}")
    for r in rows:
        click.echo(f"{r['source']:16s} {r['used']:8d} {r['unused']:8d} {r['superseded']:10d} {r['total']:8d}")
    totals = {k: sum(r[k] for r in rows) for k in ("used", "unused", "superseded", "total")}
    click.echo(
        f"{'all':16s} {totals['used']:8d} {totals['unused']:8d} {totals['superseded']:10d} {totals['total']:8d}"
    )


@sft.command("introspection")
@click.argument("state", required=False, type=click.Choice(["on", "off"]))
def introspection_cmd(state: str | None) -> None:
    """Show, or switch on/off, whether introspection enters SFT (`[extraction] include_introspection` in
    config/conversations.toml). Off by default (seed 002); when on, only internal-generated introspection
    with a known safety score above `introspection_min_safety` is taken, down-weighted and tagged. The
    next `sft_pairs` materialisation (or `hominem extract-sft`) applies it."""
    settings = Settings()
    try:
        if state is None:
            on = load_conversations_config(settings).extraction.include_introspection
            click.echo(
                f"introspection in SFT: {'on' if on else 'off'} ({settings.config_dir / 'conversations.toml'})"
            )
            return
        path, previous = set_include_introspection(settings, state == "on")
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    was = "on" if previous else "off"
    click.echo(f"introspection in SFT: {state} (was {was}; {path})")
