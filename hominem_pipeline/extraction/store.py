"""`extract_and_store_sft_pairs`: run the extraction rules over stored conversations and keep the pairs.

Conversations stream out of DuckDB in batches and pairs go back in batches, so memory holds one batch
(plus one conversation), whatever the size of the store; `skip_existing` is checked per batch against
the store (by assistant message id) rather than by loading every stored id.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from hominem_pipeline.extraction.intensity import IntensitySource, NoIntensity
from hominem_pipeline.extraction.sft import (
    Conversation,
    ExtractionOptions,
    ExtractionStats,
    PrecomputedEmbedder,
    extract_sft_pairs_from_conversation,
    texts_to_embed,
)
from hominem_pipeline.records import SFTPair
from hominem_pipeline.store import TrainingDatabase


@dataclass
class ExtractionResult:
    conversations: int = 0
    pairs_found: int = 0
    pairs_stored: int = 0  # new rows in sft_pairs
    pairs_skipped_existing: int = 0
    stats: ExtractionStats = field(default_factory=ExtractionStats)
    export: Path | None = None
    exported: int = 0

    def summary(self) -> dict[str, Any]:
        s = {k: v for k, v in vars(self.stats).items() if isinstance(v, int)}
        return {
            "conversations": self.conversations,
            "pairs_found": self.pairs_found,
            "pairs_stored": self.pairs_stored,
            "pairs_skipped_existing": self.pairs_skipped_existing,
            **s,
            "ranked_by": dict(self.stats.ranked_by),
        }


def extract_and_store_sft_pairs(
    db: TrainingDatabase,
    conversation_id: str | None = None,
    all_conversations: bool = False,
    since: datetime | None = None,
    include_context: bool = False,
    skip_existing: bool = True,
    *,
    include_introspection: bool = False,
    days: Sequence[date] | None = None,
    options: ExtractionOptions | None = None,
    embedder: Any = None,
    intensity: IntensitySource | None = None,
    export_jsonl: Path | str | None = None,
    batch_pairs: int = 2000,
    window_size: int = 20_000,
) -> ExtractionResult:
    """Extract pairs from one conversation, every conversation, those touched since a time, or those
    with a message in the given event-log days; store them (dedup by message id unless
    `skip_existing=False`, which refreshes stored pairs but keeps their is_used history)."""
    if not (conversation_id or all_conversations or since or days is not None):
        raise ValueError("say which conversations: conversation_id, all_conversations, since or days")
    if (
        conversation_id
        and not all_conversations
        and not db.existing_ids("conversation_messages", "conversation_id", [conversation_id])
    ):
        # Reporting "0 pairs" here would read as "nothing to learn" when the id is simply wrong.
        raise ValueError(
            f"conversation_id: no conversation {conversation_id!r} in {db.path}; ids are the event log's "
            "conversation_id (imported ones start with 'imp-'), stored once the `conversations` asset ran"
        )
    opts = options or ExtractionOptions()
    opts = ExtractionOptions(
        **{
            **vars(opts),
            "include_context": include_context or opts.include_context,
            "include_introspection": include_introspection or opts.include_introspection,
        }
    )
    if embedder is None:
        from hominem_pipeline.embedding import Embedder

        embedder = Embedder()  # loads the model only if a turn has several drafts
    source = intensity or NoIntensity()
    result = ExtractionResult()
    pending: list[SFTPair] = []

    def flush() -> None:
        if not pending:
            return
        if skip_existing:
            stored = db.sft_message_ids_among([p.message_id for p in pending if p.message_id])
            fresh = [p for p in pending if p.message_id not in stored]
            result.pairs_skipped_existing += len(pending) - len(fresh)
            result.pairs_stored += db.insert_sft_pairs(fresh)
        else:
            result.pairs_stored += db.insert_sft_pairs(pending, refresh=True)
        pending.clear()

    batches = db.iter_conversation_messages(
        conversation_ids=[conversation_id] if conversation_id and not all_conversations else None,
        since=since,
        days=days,
    )
    window: list[Conversation] = []

    def extract_window() -> None:
        # Drafts from many conversations are embedded in one call: per-call overhead dominates
        # when each user turn has only two or three drafts.
        texts = list(dict.fromkeys(t for c in window for t in texts_to_embed(c, opts)))
        vectors = dict(zip(texts, embedder.embed(texts), strict=True)) if texts else {}
        batch_embedder = PrecomputedEmbedder(vectors, embedder)
        for conv in window:
            pairs = extract_sft_pairs_from_conversation(
                conv, options=opts, embedder=batch_embedder, intensity=source, stats=result.stats
            )
            result.pairs_found += len(pairs)
            pending.extend(pairs)
        window.clear()
        if len(pending) >= batch_pairs:
            flush()

    window_messages = 0
    for rows in batches:
        result.conversations += 1
        window.append(Conversation.from_rows(rows))
        window_messages += len(rows)
        if window_messages >= window_size:
            extract_window()
            window_messages = 0
    extract_window()
    flush()
    if export_jsonl:
        result.export = Path(export_jsonl)
        result.exported = export_sft_jsonl(db, result.export)
    return result


def sft_export_rows(db: TrainingDatabase, **filters: Any) -> list[dict[str, Any]]:
    return [json.loads(p.model_dump_json()) for p in db.get_sft_pairs(**filters)]


def export_sft_jsonl(db: TrainingDatabase, path: Path | str, **filters: Any) -> int:
    """Write `data/sft/sft_training.jsonl` (one SFTPair per line), atomically."""
    from hominem_pipeline.atomic import write_jsonl_atomic

    return write_jsonl_atomic(Path(path), sft_export_rows(db, **filters))
