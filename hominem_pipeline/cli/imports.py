"""`hominem import ...`: bring outside data into the store. One subcommand per kind of data."""

from __future__ import annotations

import sys

import click

from hominem_pipeline.settings import Settings


@click.group("import")
def import_group() -> None:
    """Import outside data (human preferences, ...) into the store."""


@import_group.command("preferences")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--source", default=None, help="Data-set name for rows that name none (default: the file name)")
@click.option(
    "--dimension",
    "dimensions",
    multiple=True,
    help="Reward dimension every pair is evidence for (repeatable); overrides the source map",
)
def preferences(file: str, source: str | None, dimensions: tuple[str, ...]) -> None:
    """Import human preference pairs (JSONL): {prompt, chosen, rejected}, raw HH-RLHF transcripts, TRL's
    {prompt, chosen: [messages], rejected: [messages]}, or {instruction, output_1, output_2, label}.

    Each line is validated; rejected lines are listed with their number and reason and the rest are
    stored. Importing the same file again adds nothing. Which dimensions a pair speaks to comes from
    --dimension, else the row's `dimensions`, else the source map in config/reward_model.toml.
    """
    from hominem_pipeline.data.preference_import import import_preferences
    from hominem_pipeline.manifold import load_manifold
    from hominem_pipeline.reward_model.config import load_reward_model_config
    from hominem_pipeline.store import TrainingDatabase

    settings = Settings()
    names = list(load_manifold(settings.manifold_path).names)
    rules = load_reward_model_config(settings).dimension_rules
    with TrainingDatabase(settings.database_path) as db:
        try:
            report = import_preferences(
                db,
                file,
                source=source,
                dimensions=list(dimensions) or None,
                dimension_names=names,
                rules=rules,
            )
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
    for lineno, reason in report.rejected:
        click.echo(f"{file}:{lineno}: rejected: {reason}", err=True)
    for name, valid in sorted(report.valid_by_source.items()):
        dims = ", ".join(report.dimensions_by_source.get(name, [])) or "none (inferred at training)"
        click.echo(
            f"  {name}: {valid} valid, {report.added_by_source.get(name, 0)} imported; dimensions: {dims}"
        )
    click.echo(
        f"{report.lines} rows read: {report.added} imported, {report.already_present} already present, "
        f"{len(report.rejected)} rejected"
    )
    if report.lines and not report.valid:
        sys.exit(1)
