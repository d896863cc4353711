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
def preferences(file: str) -> None:
    """Import JSONL rows {prompt, chosen, rejected} (HH-RLHF layout; raw HH transcripts are split too).

    Each line is validated; rejected lines are listed with their number and reason and the rest are
    stored. Importing the same file again adds nothing.
    """
    from hominem_pipeline.data.preference_import import import_preferences
    from hominem_pipeline.store import TrainingDatabase

    with TrainingDatabase(Settings().database_path) as db:
        report = import_preferences(db, file)
    for lineno, reason in report.rejected:
        click.echo(f"{file}:{lineno}: rejected: {reason}", err=True)
    click.echo(
        f"{report.lines} rows read: {report.added} imported, {report.already_present} already present, "
        f"{len(report.rejected)} rejected"
    )
    if report.lines and not report.valid:
        sys.exit(1)
