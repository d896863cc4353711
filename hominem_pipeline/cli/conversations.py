"""`hominem import conversations FILE` and `hominem extract-sft`: chat histories into the event log, and
SFT pairs out of stored conversations (seed 002's flags)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click

from hominem_pipeline.events.importers import ChatImportError, import_conversations
from hominem_pipeline.events.log import EventLog
from hominem_pipeline.extraction.config import events_dir, load_conversations_config
from hominem_pipeline.settings import Settings


@click.command("conversations")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--events-dir",
    "events_path",
    type=click.Path(file_okay=False),
    help="Event log folder (default: data/events)",
)
def conversations_cmd(path: str, events_path: str | None) -> None:
    """Append a chat history to the event log: OpenAI-style {"messages": [...]} JSONL, or an LM Studio
    saved conversation (.json). Importing the same file twice adds nothing. The `conversations` asset
    ingests it into the store on its next materialisation (today's partition)."""
    log = EventLog(Path(events_path) if events_path else events_dir(Settings()))
    try:
        result = import_conversations(path, log)
    except ChatImportError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"{result.path} ({result.format}): {result.conversations} conversations, {result.messages} messages; "
        f"{result.appended} appended to {log.root}, {result.already_in_log} already in the log"
        + (f", {result.skipped_messages} skipped (tool calls / empty)" if result.skipped_messages else "")
    )


def register_import(main: click.Group) -> None:
    """Put `conversations` under the `import` group when one is registered; otherwise create the group."""
    group = main.commands.get("import")
    if not isinstance(group, click.Group):
        group = click.Group("import", help="Import existing data (chat histories, preferences).")
        main.add_command(group)
    group.add_command(conversations_cmd)


def _parse_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"not an ISO date/time: {value!r}", param_hint="--since") from exc


@click.command("extract-sft")
@click.option("--conversation-id", default=None, help="Extract from this conversation only")
@click.option("--all-conversations", is_flag=True, help="Extract from every stored conversation")
@click.option("--since", default=None, help="Conversations with a message at or after this ISO time/date")
@click.option("--include-context", is_flag=True, help="Store the earlier turns as each pair's context")
@click.option(
    "--no-skip-existing", is_flag=True, help="Re-extract turns that already have a pair (refreshes them)"
)
@click.option(
    "--include-introspection",
    is_flag=True,
    help="Opt in: internal-generated introspection, deduped, down-weighted, tagged",
)
@click.option(
    "--db-path",
    type=click.Path(dir_okay=False),
    default=None,
    help="DuckDB store (default: data/hominem.duckdb)",
)
@click.option(
    "--export-jsonl",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write every stored pair here as JSONL",
)
def extract_sft(
    conversation_id: str | None,
    all_conversations: bool,
    since: str | None,
    include_context: bool,
    no_skip_existing: bool,
    include_introspection: bool,
    db_path: str | None,
    export_jsonl: str | None,
) -> None:
    """Extract SFT pairs (memory channel) from stored conversations under seed 002's rules."""
    from hominem_pipeline.embedding import Embedder
    from hominem_pipeline.extraction.intensity import best_intensity_source
    from hominem_pipeline.extraction.store import extract_and_store_sft_pairs
    from hominem_pipeline.store import TrainingDatabase
    from hominem_pipeline.store.connection import require_store_file

    if not (conversation_id or all_conversations or since):
        raise click.UsageError("say which conversations: --conversation-id, --all-conversations or --since")
    settings = Settings()
    cfg = load_conversations_config(settings).extraction
    # Extraction reads stored conversations: a missing or foreign file is refused, never created empty.
    path = require_store_file(Path(db_path) if db_path else settings.database_path)
    with TrainingDatabase(path) as db:
        result = extract_and_store_sft_pairs(
            db,
            conversation_id=conversation_id,
            all_conversations=all_conversations,
            since=_parse_since(since),
            include_context=include_context,
            skip_existing=not no_skip_existing,
            include_introspection=include_introspection,
            options=cfg.options(),
            embedder=Embedder(settings.inference.embeddings.model),
            intensity=best_intensity_source(db, settings.artifacts_dir, cfg.use_reward_model),
            export_jsonl=export_jsonl,
        )
    click.echo(json.dumps(result.summary(), indent=2))
    if result.export:
        click.echo(f"exported {result.exported} pairs to {result.export}")
