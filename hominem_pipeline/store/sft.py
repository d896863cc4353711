"""The memory channel's rows in the store: SFT pairs (validated by `records.validate_sft_pair` before
anything is written), their consumption by training, and the knowledge-update attempts that produce some
of them."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from hominem_pipeline.records import SFTPair, validate_sft_pair
from hominem_pipeline.store.connection import StoreConnection, filtered, naive_utc, utcnow


class SFTStore(StoreConnection):
    """`sft_pairs`, `knowledge_update_attempts`."""

    # -- SFT pairs (seed 002 section 1) ----------------------------------------------------------
    def insert_sft_pair(self, pair: SFTPair | dict[str, Any]) -> str:
        """Validate and store one pair; returns its pair_id (an existing pair with that id is kept)."""
        checked = validate_sft_pair(pair)
        self._insert_sft_rows([checked])
        return checked.pair_id

    def insert_sft_pairs(self, pairs: Iterable[SFTPair | dict[str, Any]], refresh: bool = False) -> int:
        """Validate every pair first (nothing is stored if one is invalid), then store them in one
        transaction. Returns how many were new. `refresh=True` also updates the content of pairs
        already stored (scores, context, weight, metadata) but keeps their is_used history."""
        checked = [validate_sft_pair(p, index=i) for i, p in enumerate(pairs)]
        if not checked:
            return 0
        before = int(self.scalar("SELECT count(*) FROM sft_pairs"))
        self.con.execute("BEGIN TRANSACTION")
        try:
            self._insert_sft_rows(checked, refresh=refresh)
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        return int(self.scalar("SELECT count(*) FROM sft_pairs")) - before

    def _insert_sft_rows(self, pairs: list[SFTPair], refresh: bool = False) -> None:
        now = utcnow()
        # Rows nightly maintenance removed (aged out, merged) stay removed: sft_pairs_removed keeps them.
        removed = self.existing_ids("sft_pairs_removed", "pair_id", [p.pair_id for p in pairs])
        pairs = [p for p in pairs if p.pair_id not in removed]
        on_conflict = (
            # A pair marked superseded (confidence 0, see mark_sft_superseded) stays so on refresh.
            "DO UPDATE SET context = excluded.context, category = excluded.category, "
            "confidence = CASE WHEN sft_pairs.confidence = 0 THEN 0 ELSE excluded.confidence END, "
            "reward_intensity = excluded.reward_intensity, safety_score = excluded.safety_score, "
            "weight = excluded.weight, metadata = json_merge_patch(sft_pairs.metadata, excluded.metadata)"
            if refresh
            else "DO NOTHING"
        )
        rows = [
            (
                p.pair_id,
                p.instruction,
                p.response,
                p.context,
                p.source,
                p.category,
                p.confidence,
                p.reward_intensity,
                p.safety_score,
                p.weight,
                p.conversation_id,
                p.message_id,
                len(p.instruction),
                len(p.response),
                json.dumps(p.metadata, sort_keys=True, default=str),
                naive_utc(p.created_at) or now,
                p.is_used,
                naive_utc(p.used_timestamp),
                p.cycle,
            )
            for p in pairs
        ]
        self._bulk_insert("sft_pairs", rows, on_conflict=on_conflict)

    def sft_usage_by_source(self) -> list[dict[str, Any]]:
        """Per source: how many rows the `current` adapter's lineage trained on (`used`), how many wait
        for the next cycle (`unused`), and how many of those are superseded (confidence 0, never trained)."""
        return self.query(
            "SELECT source, count(*) FILTER (WHERE is_used) AS used, count(*) FILTER (WHERE NOT is_used) AS unused, "
            "count(*) FILTER (WHERE NOT is_used AND confidence <= 0) AS superseded, count(*) AS total "
            "FROM sft_pairs GROUP BY source ORDER BY source"
        )

    def get_sft_pairs(
        self,
        source: str | Sequence[str] | None = None,
        is_used: bool | None = None,
        since: datetime | None = None,
        min_instruction_length: int | None = None,
        min_response_length: int | None = None,
        min_confidence: float | None = None,
        limit: int | None = None,
    ) -> list[SFTPair]:
        """Stored pairs matching every given filter, oldest first. `since` compares `created_at`."""
        sql, params = filtered(
            "SELECT * FROM sft_pairs",
            [
                (
                    "source IN (SELECT unnest(?))",
                    None if source is None else [source] if isinstance(source, str) else list(source),
                ),
                ("is_used = ?", None if is_used is None else bool(is_used)),
                ("created_at >= ?", naive_utc(since)),
                (
                    "instruction_length >= ?",
                    None if min_instruction_length is None else int(min_instruction_length),
                ),
                ("response_length >= ?", None if min_response_length is None else int(min_response_length)),
                ("confidence >= ?", None if min_confidence is None else float(min_confidence)),
            ],
        )
        sql += " ORDER BY created_at, pair_id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [_sft_from_row(r) for r in self.query(sql, params)]

    def sft_content_digest(self) -> str:
        """A digest of every row's content and scores (not its consumption state) and of re-emissions:
        it changes when training would see different SFT data (training.reuse)."""
        rows = self.con.execute(
            "SELECT count(*), coalesce(bit_xor(hash(pair_id, instruction, response, context, source, category, "
            "confidence, reward_intensity, safety_score, weight, metadata, created_at)), 0) FROM sft_pairs"
        ).fetchone()
        reemitted = self.con.execute(
            "SELECT count(*), coalesce(bit_xor(hash(pair_id, reemitted_at)), 0) FROM sft_reemitted"
        ).fetchone()
        return f"{rows[0]}:{rows[1]}-{reemitted[0]}:{reemitted[1]}"

    def sft_message_ids_among(self, message_ids: Sequence[str]) -> set[str]:
        """Which of these assistant message ids already have a stored SFT pair, or had one that maintenance
        removed (extraction's skip_existing: a removed row is never re-created)."""
        if not message_ids:
            return set()
        rows = self.con.execute(
            "SELECT message_id FROM sft_pairs WHERE message_id IN (SELECT unnest(?)) UNION "
            "SELECT message_id FROM sft_pairs_removed WHERE message_id IN (SELECT unnest(?))",
            [list(message_ids), list(message_ids)],
        ).fetchall()
        return {r[0] for r in rows}

    def update_sft_used(self, ids: Iterable[str], cycle: int, used_timestamp: datetime | None = None) -> int:
        """Mark pairs consumed by training. Returns how many stored pairs were updated."""
        ids = list(dict.fromkeys(ids))
        if not ids:
            return 0
        if cycle is None or int(cycle) < 0:
            raise ValueError("cycle: must be a non-negative integer")
        ts = naive_utc(used_timestamp) or utcnow()
        n = self.scalar("SELECT count(*) FROM sft_pairs WHERE pair_id IN (SELECT unnest(?))", [ids])
        self.con.execute(
            "UPDATE sft_pairs SET is_used = TRUE, used_timestamp = ?, cycle = ? "
            "WHERE pair_id IN (SELECT unnest(?))",
            [ts, int(cycle), ids],
        )
        return int(n)

    def mark_sft_superseded(self, message_ids: Sequence[str], reason: str) -> int:
        """Set confidence 0 on conversation pairs whose answer the user corrected (a knowledge update
        holds the right one), recording why in metadata. Returns how many pairs were marked."""
        if not message_ids:
            return 0
        where = "source = 'conversation' AND confidence > 0 AND message_id IN (SELECT unnest(?))"
        n = int(self.scalar(f"SELECT count(*) FROM sft_pairs WHERE {where}", [list(message_ids)]))
        self.con.execute(
            "UPDATE sft_pairs SET confidence = 0, metadata = json_merge_patch(metadata, json_object('superseded', ?)) "
            f"WHERE {where}",
            [reason, list(message_ids)],
        )
        return n

    def reset_sft_used(self, ids: Iterable[str]) -> int:
        """Clear is_used (maintenance re-emits curated older pairs). Returns how many were updated."""
        ids = list(dict.fromkeys(ids))
        if not ids:
            return 0
        n = self.scalar("SELECT count(*) FROM sft_pairs WHERE pair_id IN (SELECT unnest(?))", [ids])
        self.con.execute(
            "UPDATE sft_pairs SET is_used = FALSE, used_timestamp = NULL, cycle = NULL "
            "WHERE pair_id IN (SELECT unnest(?))",
            [ids],
        )
        return int(n)

    # -- knowledge-update attempts ---------------------------------------------------------------
    def knowledge_attempt(self, attempt_id: str) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM knowledge_update_attempts WHERE attempt_id = ?", [attempt_id])
        return rows[0] if rows else None

    def record_knowledge_attempt(self, row: dict[str, Any]) -> None:
        self.con.execute(
            "INSERT INTO knowledge_update_attempts VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (attempt_id) DO UPDATE SET "
            "ok = excluded.ok, pairs_found = excluded.pairs_found, reason = excluded.reason, "
            "raw_output = excluded.raw_output, created_at = excluded.created_at",
            [
                row["attempt_id"],
                row["conversation_id"],
                row["method"],
                row["ok"],
                row["pairs_found"],
                row.get("reason"),
                row.get("raw_output"),
                utcnow(),
            ],
        )


def _sft_from_row(r: dict[str, Any]) -> SFTPair:
    return SFTPair(
        pair_id=r["pair_id"],
        instruction=r["instruction"],
        response=r["response"],
        context=r["context"],
        source=r["source"],
        category=r["category"],
        confidence=r["confidence"],
        reward_intensity=r["reward_intensity"],
        safety_score=r["safety_score"],
        weight=r["weight"],
        conversation_id=r["conversation_id"],
        message_id=r["message_id"],
        created_at=r["created_at"],
        is_used=r["is_used"],
        used_timestamp=r["used_timestamp"],
        cycle=r["cycle"],
        metadata=json.loads(r["metadata"]),
    )
