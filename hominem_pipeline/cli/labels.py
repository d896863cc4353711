"""`hominem labels ...`, `hominem summary`, `hominem manifold`: teacher data and the manifold."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import click

from hominem_pipeline.manifold import load_manifold
from hominem_pipeline.settings import Settings
from hominem_pipeline.validation import label_row_problems, read_jsonl


def _settings() -> Settings:
    return Settings()


# -- labels ---------------------------------------------------------------------------------------
@click.group()
def labels() -> None:
    """Inspect and validate teacher reward labels (data/labeled/reward_samples.jsonl)."""


def _labels_file(path: str | None) -> Path:
    p = Path(path) if path else _settings().reward_samples_export
    if not p.is_file():
        raise click.ClickException(f"{p} does not exist; materialise reward_labels first (make run)")
    return p


@labels.command("sample")
@click.option("--file", "path", type=click.Path(dir_okay=False), help="Labels JSONL (default: the export)")
@click.option("-n", "count", default=3, show_default=True, help="How many rows to print")
@click.option("--seed", default=None, type=int, help="Random seed for a repeatable sample")
def labels_sample(path: str | None, count: int, seed: int | None) -> None:
    """Print a random sample of labelled exchanges."""
    rows = read_jsonl(_labels_file(path))
    if not rows:
        raise click.ClickException("no labels in the file")
    rng = random.Random(seed)
    for row in rng.sample(rows, min(count, len(rows))):
        click.echo(f"--- {row.get('label_id')} [{row.get('category')}]")
        click.echo(f"prompt:   {row.get('prompt')}")
        click.echo(f"response: {str(row.get('response'))[:300]}")
        vec = row.get("reward_vector") or {}
        click.echo("vector:   " + ", ".join(f"{k}={v:+.2f}" for k, v in vec.items()))
        click.echo(
            f"intensity={row.get('reward_intensity', float('nan')):.2f} safety={row.get('safety_score', float('nan')):.2f}"
            f" scalar={row.get('scalar_preference')}"
        )
        conf = row.get("confidence") or {}
        if conf:
            click.echo(f"mean confidence: {sum(conf.values()) / len(conf):.3f}")
        if row.get("rationale"):
            click.echo(f"rationale: {row['rationale']}")


@labels.command("validate")
@click.option("--file", "path", type=click.Path(dir_okay=False), help="Labels JSONL (default: the export)")
def labels_validate(path: str | None) -> None:
    """Check every label's fields and ranges against the manifold; exit 1 on any problem."""
    settings = _settings()
    manifold = load_manifold(settings.manifold_path)
    file = _labels_file(path)
    try:
        rows = read_jsonl(file)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    if not rows:
        raise click.ClickException(f"{file}: no label rows (an empty file validates nothing)")
    problems = label_row_problems(rows, manifold)
    for p in problems:
        click.echo(p, err=True)
    if problems:
        click.echo(f"{len(problems)} problem(s) in {len(rows)} rows of {file}", err=True)
        sys.exit(1)
    click.echo(
        f"{len(rows)} labels valid against manifold {manifold.schema_hash} ({len(manifold.names)} dimensions)"
    )


# -- summary --------------------------------------------------------------------------------------
@click.command()
def summary() -> None:
    """What the pipeline has made and where it went."""
    from hominem_pipeline.summary import build_summary

    s = _settings()
    click.echo(build_summary(s))


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the manifold as JSON")
def manifold(as_json: bool) -> None:
    """Show the reward manifold (config/schemas/reward.yaml)."""
    m = load_manifold(_settings().manifold_path)
    if as_json:
        click.echo(json.dumps(m.model_dump(mode="json"), indent=2))
        return
    for d in m.dimensions:
        click.echo(f"{d.name:22s} [{d.range[0]:+.1f}, {d.range[1]:+.1f}]  {d.description}")
    click.echo(
        f"{'reward_intensity':22s} [{m.reward_intensity.range[0]:.1f}, {m.reward_intensity.range[1]:.1f}]"
    )
    click.echo(f"{'safety_score':22s} [{m.safety_score.range[0]:.1f}, {m.safety_score.range[1]:.1f}]")
