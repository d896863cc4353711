"""`hominem adapters list|show|promote|rollback|pointer` and `hominem note`: the LoRA adapter registry from
the command line."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import click

from hominem_pipeline.adapters import CURRENT, AdapterRegistry, AdapterRegistryError, model_name_for_spec
from hominem_pipeline.settings import Settings
from hominem_pipeline.store import TrainingDatabase
from hominem_pipeline.training import promotion


def registry_for(model_name: str | None) -> AdapterRegistry:
    """The registry of `model_name`, by default the configured student model's."""
    settings = Settings()
    return AdapterRegistry(
        settings.artifacts_dir, model_name or model_name_for_spec(settings.inference.student.model)
    )


@contextlib.contextmanager
def _store() -> Iterator[TrainingDatabase | None]:
    """The project's store when it exists (pointer moves keep `is_used` in step), else None."""
    path = Settings().database_path
    if not path.is_file():
        yield None
        return
    with TrainingDatabase(path) as db:
        yield db


_model_option = click.option(
    "--model",
    "model_name",
    default=None,
    help="Model folder under artifacts/lora/ (default: the configured student)",
)


@click.group()
def adapters() -> None:
    """List, promote and roll back LoRA adapter versions (artifacts/lora/<model>/)."""


@adapters.command("list")
@_model_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table")
def list_cmd(model_name: str | None, as_json: bool) -> None:
    """Every published version, oldest first, with the pointers that name it."""
    registry = registry_for(model_name)
    try:
        versions = registry.versions()
    except AdapterRegistryError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        rows = [
            {
                "version": v.version,
                "pointers": v.pointers,
                "created_at": v.metadata.created_at.isoformat(),
                "parent_version": v.metadata.parent_version,
                "base_model": v.metadata.base_model,
                "metrics": v.metadata.metrics,
                "path": str(v.path),
                "notes": registry.notes(v.version),
            }
            for v in versions
        ]
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not versions:
        click.echo(f"no adapter versions under {registry.root}")
        return
    click.echo(f"adapters under {registry.root}")
    click.echo(f"{'version':18s} {'created_at':20s} {'parent':18s} pointers / metrics")
    for v in versions:
        metrics = ", ".join(
            f"{k}={val:.4g}" if isinstance(val, float) else f"{k}={val}"
            for k, val in v.metadata.metrics.items()
        )
        created = v.metadata.created_at.strftime("%Y-%m-%d %H:%M:%S")
        pointers = ",".join(v.pointers) or "-"
        click.echo(
            f"{v.version:18s} {created:20s} {v.metadata.parent_version or '-':18s} [{pointers}] {metrics}"
        )
        notes = registry.notes(v.version)
        if notes:
            more = (
                f" (+{len(notes) - 1} earlier; `hominem adapters show {v.version}`)" if len(notes) > 1 else ""
            )
            click.echo(f"{'':18s} note {notes[-1]['at'][:16]}: {notes[-1]['text']}{more}")


@adapters.command("show")
@click.argument("version", default=CURRENT)
@_model_option
def show_cmd(version: str, model_name: str | None) -> None:
    """One version (a version, unique prefix or pointer; default `current`): lineage, metrics and notes."""
    registry = registry_for(model_name)
    try:
        v = registry.get(version)
        notes = registry.notes(v.version)
        lineage = registry.lineage(v.version)
    except AdapterRegistryError as exc:
        raise click.ClickException(str(exc)) from exc
    meta = v.metadata
    click.echo(f"version     {v.version}  [{', '.join(v.pointers) or 'no pointer'}]")
    click.echo(f"path        {v.path}")
    click.echo(f"created_at  {meta.created_at.isoformat()}")
    click.echo(f"base_model  {meta.base_model}")
    click.echo(f"lineage     {' <- '.join(lineage)}")
    for key, val in meta.metrics.items():
        click.echo(f"  {key}: {val:.4g}" if isinstance(val, float) else f"  {key}: {val}")
    click.echo(f"notes       {len(notes)}")
    for n in notes:
        click.echo(f"  {n['at'][:19]}  {n['text']}")


@click.command("note")
@click.argument("version")
@click.argument("text")
@_model_option
def note_cmd(version: str, text: str, model_name: str | None) -> None:
    """Attach a qualitative note to an adapter VERSION (a version, unique prefix or pointer), e.g.
    `hominem note current "warmer, but forgets names"` (seed 000 9.3). Notes are kept beside the version
    (artifacts/lora/<model>/notes/<version>.json) and shown by `adapters list` and `adapters show`."""
    registry = registry_for(model_name)
    try:
        target, path = registry.add_note(version, text)
    except AdapterRegistryError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"noted on {target} ({path})")


@adapters.command("promote")
@click.argument("version")
@click.option("--pointer", default=CURRENT, show_default=True, help="Pointer to move")
@click.option("--force", is_flag=True, help="Promote even without a passing evaluation report")
@_model_option
def promote_cmd(version: str, pointer: str, force: bool, model_name: str | None) -> None:
    """Point `current` (or --pointer) at VERSION (a version, unique prefix, or another pointer's name).
    Refused unless artifacts/lora_eval/<model>/<version>.json says the evaluation passed and, for
    `current`, the Reward Health Index report (artifacts/rhi/<model>/reports/) is above
    config/health.toml's consolidation threshold (or --force); the SFT rows the new `current` trained on
    are then marked used in the store."""
    from hominem_pipeline.health.config import load_health_config

    registry = registry_for(model_name)
    try:
        health = load_health_config(Settings()).consolidation
        with _store() as db:
            move = promotion.promote(registry, version, db=db, force=force, pointer=pointer, health=health)
    except AdapterRegistryError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"{move.pointer} -> {move.version} (was {move.previous or 'unset'}; evaluation: {move.evaluation})"
    )
    if move.health:
        click.echo(f"Reward Health Index: {move.health}")
    if pointer == CURRENT:
        click.echo(f"SFT rows marked used: {move.marked_used}, handed back: {move.unmarked}")


@adapters.command("rollback")
@click.option("--pointer", default=CURRENT, show_default=True, help="Pointer to move back")
@_model_option
def rollback_cmd(pointer: str, model_name: str | None) -> None:
    """Move `current` (or --pointer) back to the version it named before; the SFT rows only the
    rolled-back adapter trained on become available to the next cycle again."""
    registry = registry_for(model_name)
    try:
        with _store() as db:
            move = promotion.rollback(registry, db=db, pointer=pointer)
    except AdapterRegistryError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{move.pointer} -> {move.version} (rolled back from {move.previous})")
    if pointer == CURRENT:
        click.echo(f"SFT rows marked used: {move.marked_used}, handed back: {move.unmarked}")


@adapters.command("pointer")
@click.argument("name")
@click.argument("version", required=False)
@_model_option
def pointer_cmd(name: str, version: str | None, model_name: str | None) -> None:
    """Show pointer NAME, or set it to VERSION: user-named pointers keep adapters for different training
    emphases (e.g. `empathy-heavy`) next to `current`."""
    registry = registry_for(model_name)
    if version is not None and name == CURRENT:
        raise click.ClickException("`current` moves only with `hominem adapters promote` (evaluation-gated)")
    try:
        if version is None:
            state = registry.pointer(name).read()
            if state is None:
                raise AdapterRegistryError(f"no pointer {name!r} under {registry.root}")
            click.echo(
                f"{name} -> {state['version']} (history: {', '.join(state.get('history', [])) or 'none'})"
            )
            return
        target = registry.set_pointer(name, version)
    except AdapterRegistryError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{name} -> {target}")
