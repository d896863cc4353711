"""`hominem train`: one dual-channel LoRA training cycle outside Dagster (same domain code as the
`dual_lora` asset)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import yaml

from hominem_pipeline.settings import ConfigError, Settings
from hominem_pipeline.store import TrainingDatabase


def _parse_set(values: tuple[str, ...]) -> dict:
    out = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--set")
        out[key.strip()] = yaml.safe_load(raw)
    return out


@click.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="training YAML (default: config/training/lora_dual.yaml)",
)
@click.option("--max-steps", type=int, default=None, help="override max_steps")
@click.option(
    "--set", "sets", multiple=True, metavar="KEY=VALUE", help="override a config field, e.g. lora.rank=16"
)
@click.option(
    "--no-store", is_flag=True, help="do not open the DuckDB store (SFT pairs from the JSONL export)"
)
@click.option("--progress/--no-progress", default=True, help="show a progress bar")
@click.option(
    "--force", is_flag=True, help="train even when nothing is new since the adapter these inputs gave"
)
def train(
    config_path: Path | None,
    max_steps: int | None,
    sets: tuple[str, ...],
    no_store: bool,
    progress: bool,
    force: bool,
) -> None:
    """Train one adapter (SFT + reward-weighted preference loss) and publish it under artifacts/lora/."""
    # Imported here so every other `hominem` command starts without torch.
    from hominem_pipeline.training import NoTrainingData, load_config, run_training

    settings = Settings()
    overrides = _parse_set(sets)
    if max_steps is not None:
        overrides["max_steps"] = max_steps
    try:
        config = load_config(settings, config_path, overrides)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc

    from tqdm import tqdm

    bar = tqdm(total=None, desc="train", unit="step", disable=not progress, file=sys.stderr)

    def on_step(step: int, total: int, row: dict) -> None:
        bar.total = total
        bar.update(1)
        bar.set_postfix({k: f"{row[k]:.3f}" for k in ("loss", "sft_loss", "preference_loss") if k in row})

    db = None if no_store or config.sft_source == "jsonl" else TrainingDatabase(settings.database_path)
    try:
        result = run_training(settings, config, db=db, progress=on_step, reuse=not force)
    except NoTrainingData as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        bar.close()
        if db is not None:
            db.close()
    meta = result.metadata
    if meta.get("reused"):
        click.echo(f"unchanged, nothing trained: {meta['reuse_reason']} (--force trains anyway)")
    click.echo(
        f"adapter {result.version} -> {result.path}"
        + ("" if result.published else " (identical version existed)")
    )
    click.echo(f"continued from: {meta['continued_from'] or 'base model'} (cycle {meta['cycle']})")
    for channel, c in meta["channel_contributions"].items():
        click.echo(
            f"  {channel:10s} weight {c['weight']:.2f}  examples {c['examples_seen']}/{c['examples_available']}  "
            f"tokens {c['tokens']}  loss share {c['loss_share']:.2f}"
        )
    click.echo(json.dumps({k: round(v, 4) for k, v in meta["metrics"].items()}, sort_keys=True))
