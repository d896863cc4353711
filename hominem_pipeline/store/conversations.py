"""Conversations in the store: messages and feedback ingested from the event log (idempotent by event
id), the ingest state per day, and the teacher's labels of assistant turns."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from hominem_pipeline.store.connection import StoreConnection, filtered, utcnow


class ConversationStore(StoreConnection):
    """`conversation_messages`, `feedback_events`, `event_ingest_state`, `conversation_labels` (+ failures)."""

    # -- conversations (ingested from the event log) -------------------------------------------
    def insert_messages(self, rows: Iterable[dict[str, Any]]) -> int:
        """Insert ingested message events; an event id already stored is skipped. Returns how many were new."""
        now = utcnow()
        values = [
            (
                r["event_id"],
                r["conversation_id"],
                r["role"],
                r["content"],
                r["ts"],
                r.get("seq"),
                r.get("parent_id"),
                r.get("draft_index"),
                bool(r.get("internal_generated")),
                bool(r.get("introspection")),
                r.get("origin", "server"),
                r["event_day"],
                json.dumps(r.get("metadata") or {}, sort_keys=True),
                now,
            )
            for r in rows
        ]
        return self._bulk_insert("conversation_messages", values)

    def insert_feedback(self, rows: Iterable[dict[str, Any]]) -> int:
        now = utcnow()
        values = [
            (
                r["event_id"],
                r["conversation_id"],
                r["kind"],
                r.get("message_id"),
                r.get("emoji"),
                json.dumps(r["axes"], sort_keys=True) if r.get("axes") else None,
                r.get("chosen_message_id"),
                r.get("rejected_message_id"),
                r["ts"],
                r["event_day"],
                json.dumps(r.get("metadata") or {}, sort_keys=True),
                now,
            )
            for r in rows
        ]
        return self._bulk_insert("feedback_events", values)

    def record_ingest_state(self, day: Any, bytes_ingested: int, lines: int, torn_tail_bytes: int) -> None:
        self.con.execute(
            "INSERT INTO event_ingest_state VALUES (?, ?, ?, ?, ?) ON CONFLICT (event_day) DO UPDATE SET "
            "bytes_ingested = excluded.bytes_ingested, lines_ingested = excluded.lines_ingested, "
            "torn_tail_bytes = excluded.torn_tail_bytes, updated_at = excluded.updated_at",
            [day, bytes_ingested, lines, torn_tail_bytes, utcnow()],
        )

    _MESSAGE_ORDER = "ORDER BY conversation_id, ts, coalesce(seq, 0), coalesce(draft_index, 0), event_id"

    def iter_conversation_messages(
        self,
        conversation_ids: Sequence[str] | None = None,
        since: datetime | None = None,
        days: Sequence[Any] | None = None,
        batch_rows: int = 50_000,
    ) -> Iterable[list[dict[str, Any]]]:
        """Messages grouped by conversation, in conversation order, streamed from DuckDB in batches so
        memory holds one batch (plus one conversation), not the whole store. `since` keeps conversations
        with any message at or after it; `days` keeps conversations with a message in those partitions."""
        sql, params = filtered(
            "SELECT * FROM conversation_messages",
            [
                (
                    "conversation_id IN (SELECT unnest(?))",
                    None if conversation_ids is None else list(conversation_ids),
                ),
                (
                    "conversation_id IN (SELECT conversation_id FROM conversation_messages WHERE ts >= ?)",
                    since,
                ),
                (
                    "conversation_id IN (SELECT conversation_id FROM conversation_messages"
                    " WHERE event_day IN (SELECT unnest(?)))",
                    None if days is None else list(days),
                ),
            ],
        )
        cur = self.con.cursor()
        cur.execute(sql + " " + self._MESSAGE_ORDER, params)
        cols = [d[0] for d in cur.description]
        current: list[dict[str, Any]] = []
        while True:
            chunk = cur.fetchmany(batch_rows)
            if not chunk:
                break
            for row in chunk:
                r = dict(zip(cols, row, strict=True))
                if current and current[0]["conversation_id"] != r["conversation_id"]:
                    yield current
                    current = []
                current.append(r)
        if current:
            yield current
        cur.close()

    def get_messages(self, message_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not message_ids:
            return {}
        rows = self.query(
            "SELECT * FROM conversation_messages WHERE event_id IN (SELECT unnest(?))", [list(message_ids)]
        )
        return {r["event_id"]: r for r in rows}

    def get_feedback(
        self, kind: str | None = None, days: Sequence[Any] | None = None
    ) -> list[dict[str, Any]]:
        """Feedback as it stands now. An emoji label counts once, and only while the user has it on: of all
        `emoji` / `emoji_retracted` events for one (message, emoji), only the latest is considered (over
        every day, so a label retracted the next day is gone from the day it was set), and it is returned
        only if it is an `emoji` event. Retraction events themselves are never returned."""
        where, params = ["f.kind <> 'emoji_retracted'"], []
        if kind is not None:
            where.append("f.kind = ?")
            params.append(kind)
        if days is not None:
            where.append("f.event_day IN (SELECT unnest(?))")
            params.append(list(days))
        superseded = (
            "f.kind = 'emoji' AND EXISTS (SELECT 1 FROM feedback_events later "
            "WHERE later.kind IN ('emoji', 'emoji_retracted') AND later.message_id = f.message_id "
            "AND later.emoji = f.emoji AND (later.ts > f.ts OR (later.ts = f.ts AND later.event_id > f.event_id)))"
        )
        rows = self.query(
            f"SELECT * FROM feedback_events f WHERE {' AND '.join(where)} AND NOT ({superseded}) "
            "ORDER BY f.ts, f.event_id",
            params,
        )
        for r in rows:
            r["axes"] = json.loads(r["axes"]) if r["axes"] else {}
        return rows

    # -- conversation labels ----------------------------------------------------------------------
    def insert_conversation_label(self, row: dict[str, Any]) -> None:
        """Store one label and clear its recorded failure, in one transaction (a crash between the two
        must not leave a stored label beside a failure that says it is missing)."""
        with self.transaction():
            self._insert_conversation_label(row)

    def _insert_conversation_label(self, row: dict[str, Any]) -> None:
        self.con.execute(
            "INSERT INTO conversation_labels VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (label_id) DO NOTHING",
            [
                row["label_id"],
                row["message_id"],
                row["conversation_id"],
                row["kind"],
                row["rater"],
                row["schema_hash"],
                json.dumps(row["vector"], sort_keys=True),
                row["reward_intensity"],
                row["safety_score"],
                row.get("scalar_preference"),
                row.get("rationale", ""),
                json.dumps(row.get("confidence", {}), sort_keys=True),
                row["event_day"],
                utcnow(),
            ],
        )
        self.con.execute("DELETE FROM conversation_label_failures WHERE label_id = ?", [row["label_id"]])

    def record_conversation_label_failure(self, row: dict[str, Any]) -> None:
        self.con.execute(
            "INSERT INTO conversation_label_failures VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (label_id) "
            "DO UPDATE SET reason = excluded.reason, raw_output = excluded.raw_output, created_at = excluded.created_at",
            [
                row["label_id"],
                row["message_id"],
                row["kind"],
                row["rater"],
                row["reason"],
                row.get("raw_output"),
                row["event_day"],
                utcnow(),
            ],
        )

    def get_conversation_labels(
        self,
        message_ids: Sequence[str] | None = None,
        days: Sequence[Any] | None = None,
        kind: str | None = None,
    ) -> list[dict[str, Any]]:
        sql, params = filtered(
            "SELECT * FROM conversation_labels",
            [
                ("message_id IN (SELECT unnest(?))", None if message_ids is None else list(message_ids)),
                ("event_day IN (SELECT unnest(?))", None if days is None else list(days)),
                ("kind = ?", kind),
            ],
        )
        rows = self.query(sql + " ORDER BY event_day, conversation_id, message_id, kind", params)
        for r in rows:
            r["vector"] = json.loads(r["vector"])
            r["confidence"] = json.loads(r["confidence"])
        return rows
