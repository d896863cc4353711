"""Ingest one day of the event log into the store, idempotently by event id.

The whole day's file is re-read each time and every record is inserted with ON CONFLICT DO NOTHING, so
ingesting twice, or again after a crash part-way through (of the writer or of the ingester), stores each
record exactly once and loses none; a torn last line is left for the next ingestion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from hominem_pipeline.events.log import DayRead, EventLog, RejectedLine
from hominem_pipeline.events.schema import FeedbackEvent, MessageEvent
from hominem_pipeline.store import TrainingDatabase


@dataclass
class IngestResult:
    day: date
    messages_in_file: int = 0
    feedback_in_file: int = 0
    new_messages: int = 0
    new_feedback: int = 0
    conversations: int = 0
    torn_tail_bytes: int = 0
    rejected: list[RejectedLine] = field(default_factory=list)
    digest: str = ""

    @property
    def already_stored(self) -> int:
        return self.messages_in_file + self.feedback_in_file - self.new_messages - self.new_feedback


def message_row(e: MessageEvent, day: date) -> dict:
    return {
        "event_id": e.event_id,
        "conversation_id": e.conversation_id,
        "role": e.role,
        "content": e.content,
        "ts": e.timestamp,
        "seq": e.seq,
        "parent_id": e.parent_id,
        "draft_index": e.draft_index,
        "internal_generated": e.internal_generated,
        "introspection": e.introspection,
        "origin": e.origin,
        "event_day": day,
        "metadata": e.metadata,
    }


def feedback_row(e: FeedbackEvent, day: date) -> dict:
    return {
        "event_id": e.event_id,
        "conversation_id": e.conversation_id,
        "kind": e.kind,
        "message_id": e.message_id,
        "emoji": e.emoji,
        "axes": e.axes,
        "chosen_message_id": e.chosen_message_id,
        "rejected_message_id": e.rejected_message_id,
        "ts": e.timestamp,
        "event_day": day,
        "metadata": e.metadata,
    }


def ingest_day(db: TrainingDatabase, log: EventLog, day: date, batch_size: int = 5000) -> IngestResult:
    """Store the day's complete records, streaming the file in batches, each batch in its own
    transaction: a crash between batches leaves whole batches, and the next run adds the rest."""
    stats = DayRead()
    result = IngestResult(day=day)
    conversations: set[str] = set()
    messages: list[dict] = []
    feedback: list[dict] = []

    def flush() -> None:
        with db.transaction():
            result.new_messages += db.insert_messages(messages)
            result.new_feedback += db.insert_feedback(feedback)
        messages.clear()
        feedback.clear()

    for e in log.scan_day(day, stats):
        if isinstance(e, MessageEvent):
            result.messages_in_file += 1
            conversations.add(e.conversation_id)
            messages.append(message_row(e, day))
        else:
            result.feedback_in_file += 1
            feedback.append(feedback_row(e, day))
        if len(messages) + len(feedback) >= batch_size:
            flush()
    flush()
    result.conversations = len(conversations)
    result.torn_tail_bytes, result.rejected, result.digest = (
        stats.torn_tail_bytes,
        stats.rejected,
        stats.digest,
    )
    db.record_ingest_state(day, stats.complete_bytes, stats.lines, stats.torn_tail_bytes)
    return result
