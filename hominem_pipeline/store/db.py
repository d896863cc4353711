"""`TrainingDatabase`: the DuckDB training store and its migrations.

Migrations are the numbered `.sql` files in `migrations/`; each is applied once, in order, inside a
transaction, and recorded in `schema_migrations`. Opening an old file brings it up to date. Every query
is parameterised.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
from pydantic import ValidationError

from hominem_pipeline.records import PreferencePair, SFTPair

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def list_migrations() -> list[tuple[int, str, str]]:
    """(number, name, sql) for every migration shipped with the package, in order."""
    found = []
    for entry in resources.files("hominem_pipeline.store.migrations").iterdir():
        m = _MIGRATION_NAME.match(entry.name)
        if m:
            found.append((int(m.group(1)), entry.name, entry.read_text()))
    found.sort()
    numbers = [n for n, _, _ in found]
    if len(set(numbers)) != len(numbers):
        raise RuntimeError(f"two migrations share a number: {numbers}")
    return found


class TrainingDatabase:
    """The store. Use as a context manager, or call `close()`."""

    def __init__(self, path: Path | str, read_only: bool = False):
        self.path = Path(path)
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.con = duckdb.connect(str(self.path), read_only=read_only)
        if not read_only:
            self.migrate()

    def __enter__(self) -> TrainingDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    # -- schema -------------------------------------------------------------------------------
    def migrate(self) -> list[str]:
        self.con.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMP NOT NULL)"
        )
        done = {r[0] for r in self.con.execute("SELECT version FROM schema_migrations").fetchall()}
        applied = []
        for number, name, sql in list_migrations():
            if number in done:
                continue
            self.con.execute("BEGIN TRANSACTION")
            try:
                self.con.execute(sql)
                self.con.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)", [number, name, utcnow()]
                )
                self.con.execute("COMMIT")
            except BaseException:
                self.con.execute("ROLLBACK")
                raise
            applied.append(name)
        return applied

    @property
    def schema_version(self) -> int:
        row = self.con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
        return int(row[0])

    # -- helpers ------------------------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        cur = self.con.execute(sql, params or [])
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]

    def scalar(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        row = self.con.execute(sql, params or []).fetchone()
        return row[0] if row else None

    def existing_ids(self, table: str, column: str, ids: Iterable[str]) -> set[str]:
        ids = list(ids)
        if not ids:
            return set()
        if not re.fullmatch(r"[a-z_]+", table) or not re.fullmatch(r"[a-z_]+", column):
            raise ValueError("table/column must be plain identifiers")
        rows = self.con.execute(
            f"SELECT {column} FROM {table} WHERE {column} IN (SELECT unnest(?))", [ids]
        ).fetchall()
        return {r[0] for r in rows}

    # -- seed prompts -------------------------------------------------------------------------
    def upsert_seed_prompts(self, prompts: Iterable[dict[str, Any]]) -> None:
        rows = [(p["prompt_id"], p["category"], p["text"], p["content_hash"], utcnow()) for p in prompts]
        if not rows:
            return
        self.con.executemany(
            "INSERT INTO seed_prompts VALUES (?, ?, ?, ?, ?) ON CONFLICT (prompt_id) DO UPDATE SET "
            "category = excluded.category, text = excluded.text, content_hash = excluded.content_hash, "
            "updated_at = excluded.updated_at",
            rows,
        )

    # -- trajectories -------------------------------------------------------------------------
    def insert_trajectories(self, rows: Iterable[dict[str, Any]]) -> int:
        values = [
            (
                r["trajectory_id"],
                r["prompt_id"],
                r["prompt_hash"],
                r["category"],
                r["prompt"],
                r["candidate_index"],
                r["response"],
                r["teacher"],
                json.dumps(r["sampling"], sort_keys=True),
                utcnow(),
            )
            for r in rows
        ]
        if values:
            self.con.executemany(
                "INSERT INTO trajectories VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (trajectory_id) DO NOTHING",
                values,
            )
        return len(values)

    def get_trajectories(self, trajectory_ids: Sequence[str]) -> list[dict[str, Any]]:
        if not trajectory_ids:
            return []
        rows = self.query(
            "SELECT * FROM trajectories WHERE trajectory_id IN (SELECT unnest(?))", [list(trajectory_ids)]
        )
        order = {t: i for i, t in enumerate(trajectory_ids)}
        for r in rows:
            r["sampling"] = json.loads(r["sampling"])
        return sorted(rows, key=lambda r: order[r["trajectory_id"]])

    # -- reward labels ------------------------------------------------------------------------
    def insert_label(self, row: dict[str, Any]) -> None:
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.con.execute(
                "INSERT INTO reward_labels VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (label_id) DO NOTHING",
                [
                    row["label_id"],
                    row["trajectory_id"],
                    row["rater"],
                    row["schema_hash"],
                    json.dumps(row["reward_vector"], sort_keys=True),
                    row["reward_intensity"],
                    row["safety_score"],
                    row.get("scalar_preference"),
                    row.get("rationale", ""),
                    json.dumps(row.get("confidence", {}), sort_keys=True),
                    utcnow(),
                ],
            )
            self.con.execute("DELETE FROM label_failures WHERE label_id = ?", [row["label_id"]])
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise

    def record_label_failure(self, row: dict[str, Any]) -> None:
        self.con.execute(
            "INSERT INTO label_failures VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (label_id) DO UPDATE SET "
            "reason = excluded.reason, raw_output = excluded.raw_output, "
            "attempts = label_failures.attempts + excluded.attempts, created_at = excluded.created_at",
            [
                row["label_id"],
                row["trajectory_id"],
                row["rater"],
                row["schema_hash"],
                row["reason"],
                row.get("raw_output"),
                row["attempts"],
                utcnow(),
            ],
        )

    def get_labels(self, label_ids: Sequence[str]) -> list[dict[str, Any]]:
        if not label_ids:
            return []
        rows = self.query(
            "SELECT l.*, t.prompt, t.response, t.prompt_id, t.category, t.candidate_index "
            "FROM reward_labels l JOIN trajectories t USING (trajectory_id) "
            "WHERE l.label_id IN (SELECT unnest(?)) ORDER BY t.prompt_id, t.candidate_index",
            [list(label_ids)],
        )
        for r in rows:
            r["reward_vector"] = json.loads(r["reward_vector"])
            r["confidence"] = json.loads(r["confidence"])
        return rows

    # -- imported preferences -----------------------------------------------------------------
    # (issue 11: one self-contained block; the columns source / dimensions / dimensions_from come from
    # migration 0011.)
    def insert_imported_preferences(self, rows: Iterable[dict[str, Any]]) -> dict[str, int]:
        """Bulk-insert {pair_id, prompt, chosen, rejected, source_file, line_no, source, dimensions,
        dimensions_from}; returns how many were new per source (pairs already stored are skipped)."""
        rows = list(rows)
        if not rows:
            return {}
        ids = [r["pair_id"] for r in rows]
        known = self.existing_ids("imported_preferences", "pair_id", ids)
        new_by_source: dict[str, int] = {}
        seen: set[str] = set()
        fresh = []
        for r in rows:
            if r["pair_id"] in known or r["pair_id"] in seen:
                continue
            seen.add(r["pair_id"])
            fresh.append({"source": "unknown", "dimensions": [], "dimensions_from": "none", **r})
            new_by_source[fresh[-1]["source"]] = new_by_source.get(fresh[-1]["source"], 0) + 1
        if not fresh:
            return {}
        cols = ["pair_id", "prompt", "chosen", "rejected", "source_file", "line_no", "source", "dimensions",
                "dimensions_from"]
        # One statement over column lists (unnest zips them): executemany ran ~200 rows/s.
        self.con.execute(
            f"INSERT INTO imported_preferences ({', '.join(cols)}, imported_at) "
            f"SELECT {', '.join(f'unnest(${i + 1})' for i in range(len(cols)))}, ${len(cols) + 1} "
            "ON CONFLICT (pair_id) DO NOTHING",
            [[r[c] for r in fresh] for c in cols] + [utcnow()],
        )
        return new_by_source

    def get_imported_preferences(self, limit: int | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM imported_preferences ORDER BY imported_at, source_file, line_no"
        if limit is not None:
            return self.query(sql + " LIMIT ?", [int(limit)])
        return self.query(sql)

    def get_label_failures(self, label_ids: Sequence[str]) -> list[dict[str, Any]]:
        if not label_ids:
            return []
        return self.query(
            "SELECT * FROM label_failures WHERE label_id IN (SELECT unnest(?)) ORDER BY trajectory_id",
            [list(label_ids)],
        )

    # -- conversations (ingested from the event log) -------------------------------------------
    def _bulk_insert(self, table: str, rows: list[tuple[Any, ...]], key_index: int = 0, on_conflict: str = "DO NOTHING") -> int:
        """Insert many rows in one statement (one list parameter per column, unnested), which is two
        orders of magnitude faster than executemany in DuckDB. Rows repeating a key keep the first.
        Returns how many rows are new."""
        if not rows:
            return 0
        if not re.fullmatch(r"[a-z_]+", table):
            raise ValueError("table must be a plain identifier")
        unique = list({r[key_index]: r for r in reversed(rows)}.values())[::-1]
        columns = [list(col) for col in zip(*unique, strict=True)]
        before = int(self.scalar(f"SELECT count(*) FROM {table}"))
        select = ", ".join(["unnest(?)"] * len(columns))
        self.con.execute(f"INSERT INTO {table} SELECT {select} ON CONFLICT {on_conflict}", columns)
        return int(self.scalar(f"SELECT count(*) FROM {table}")) - before

    def insert_messages(self, rows: Iterable[dict[str, Any]]) -> int:
        """Insert ingested message events; an event id already stored is skipped. Returns how many were new."""
        now = utcnow()
        values = [
            (
                r["event_id"], r["conversation_id"], r["role"], r["content"], r["ts"], r.get("seq"),
                r.get("parent_id"), r.get("draft_index"), bool(r.get("internal_generated")),
                bool(r.get("introspection")), r.get("origin", "server"), r["event_day"],
                json.dumps(r.get("metadata") or {}, sort_keys=True), now,
            )
            for r in rows
        ]
        return self._bulk_insert("conversation_messages", values)

    def insert_feedback(self, rows: Iterable[dict[str, Any]]) -> int:
        now = utcnow()
        values = [
            (
                r["event_id"], r["conversation_id"], r["kind"], r.get("message_id"), r.get("emoji"),
                json.dumps(r["axes"], sort_keys=True) if r.get("axes") else None,
                r.get("chosen_message_id"), r.get("rejected_message_id"), r["ts"], r["event_day"],
                json.dumps(r.get("metadata") or {}, sort_keys=True), now,
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
        where, params = [], []
        if conversation_ids is not None:
            where.append("conversation_id IN (SELECT unnest(?))")
            params.append(list(conversation_ids))
        if since is not None:
            where.append("conversation_id IN (SELECT conversation_id FROM conversation_messages WHERE ts >= ?)")
            params.append(since)
        if days is not None:
            where.append("conversation_id IN (SELECT conversation_id FROM conversation_messages WHERE event_day IN (SELECT unnest(?)))")
            params.append(list(days))
        sql = "SELECT * FROM conversation_messages" + (" WHERE " + " AND ".join(where) if where else "")
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
        rows = self.query("SELECT * FROM conversation_messages WHERE event_id IN (SELECT unnest(?))", [list(message_ids)])
        return {r["event_id"]: r for r in rows}

    def get_feedback(self, kind: str | None = None, days: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        where, params = [], []
        if kind is not None:
            where.append("kind = ?")
            params.append(kind)
        if days is not None:
            where.append("event_day IN (SELECT unnest(?))")
            params.append(list(days))
        rows = self.query(
            "SELECT * FROM feedback_events" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY ts, event_id",
            params,
        )
        for r in rows:
            r["axes"] = json.loads(r["axes"]) if r["axes"] else {}
        return rows

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
                p.pair_id, p.instruction, p.response, p.context, p.source, p.category, p.confidence,
                p.reward_intensity, p.safety_score, p.weight, p.conversation_id, p.message_id,
                len(p.instruction), len(p.response), json.dumps(p.metadata, sort_keys=True, default=str),
                _naive(p.created_at) or now, p.is_used, _naive(p.used_timestamp), p.training_epoch,
            )
            for p in pairs
        ]
        self._bulk_insert("sft_pairs", rows, on_conflict=on_conflict)

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
        where, params = [], []
        if source is not None:
            where.append("source IN (SELECT unnest(?))")
            params.append([source] if isinstance(source, str) else list(source))
        if is_used is not None:
            where.append("is_used = ?")
            params.append(bool(is_used))
        if since is not None:
            where.append("created_at >= ?")
            params.append(_naive(since))
        if min_instruction_length is not None:
            where.append("instruction_length >= ?")
            params.append(int(min_instruction_length))
        if min_response_length is not None:
            where.append("response_length >= ?")
            params.append(int(min_response_length))
        if min_confidence is not None:
            where.append("confidence >= ?")
            params.append(float(min_confidence))
        sql = "SELECT * FROM sft_pairs" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY created_at, pair_id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [_sft_from_row(r) for r in self.query(sql, params)]

    def sft_message_ids_among(self, message_ids: Sequence[str]) -> set[str]:
        """Which of these assistant message ids already have a stored SFT pair (extraction's skip_existing)."""
        if not message_ids:
            return set()
        rows = self.con.execute(
            "SELECT DISTINCT message_id FROM sft_pairs WHERE message_id IN (SELECT unnest(?))", [list(message_ids)]
        ).fetchall()
        return {r[0] for r in rows}

    def update_sft_used(
        self, ids: Iterable[str], training_epoch: int, used_timestamp: datetime | None = None
    ) -> int:
        """Mark pairs consumed by training. Returns how many stored pairs were updated."""
        ids = list(dict.fromkeys(ids))
        if not ids:
            return 0
        if training_epoch is None or int(training_epoch) < 0:
            raise ValueError("training_epoch: must be a non-negative integer")
        ts = _naive(used_timestamp) or utcnow()
        n = self.scalar("SELECT count(*) FROM sft_pairs WHERE pair_id IN (SELECT unnest(?))", [ids])
        self.con.execute(
            "UPDATE sft_pairs SET is_used = TRUE, used_timestamp = ?, training_epoch = ? "
            "WHERE pair_id IN (SELECT unnest(?))",
            [ts, int(training_epoch), ids],
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
            "UPDATE sft_pairs SET is_used = FALSE, used_timestamp = NULL, training_epoch = NULL "
            "WHERE pair_id IN (SELECT unnest(?))",
            [ids],
        )
        return int(n)

    # -- conversation labels ----------------------------------------------------------------------
    def insert_conversation_label(self, row: dict[str, Any]) -> None:
        self.con.execute(
            "INSERT INTO conversation_labels VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (label_id) DO NOTHING",
            [
                row["label_id"], row["message_id"], row["conversation_id"], row["kind"], row["rater"],
                row["schema_hash"], json.dumps(row["vector"], sort_keys=True), row["reward_intensity"],
                row["safety_score"], row.get("scalar_preference"), row.get("rationale", ""),
                json.dumps(row.get("confidence", {}), sort_keys=True), row["event_day"], utcnow(),
            ],
        )
        self.con.execute("DELETE FROM conversation_label_failures WHERE label_id = ?", [row["label_id"]])

    def record_conversation_label_failure(self, row: dict[str, Any]) -> None:
        self.con.execute(
            "INSERT INTO conversation_label_failures VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (label_id) "
            "DO UPDATE SET reason = excluded.reason, raw_output = excluded.raw_output, created_at = excluded.created_at",
            [row["label_id"], row["message_id"], row["kind"], row["rater"], row["reason"], row.get("raw_output"), row["event_day"], utcnow()],
        )

    def get_conversation_labels(
        self, message_ids: Sequence[str] | None = None, days: Sequence[Any] | None = None, kind: str | None = None
    ) -> list[dict[str, Any]]:
        where, params = [], []
        if message_ids is not None:
            where.append("message_id IN (SELECT unnest(?))")
            params.append(list(message_ids))
        if days is not None:
            where.append("event_day IN (SELECT unnest(?))")
            params.append(list(days))
        if kind is not None:
            where.append("kind = ?")
            params.append(kind)
        rows = self.query(
            "SELECT * FROM conversation_labels" + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY event_day, conversation_id, message_id, kind",
            params,
        )
        for r in rows:
            r["vector"] = json.loads(r["vector"])
            r["confidence"] = json.loads(r["confidence"])
        return rows

    # -- preference pairs -------------------------------------------------------------------------
    def upsert_preference_pairs(self, pairs: Iterable[PreferencePair]) -> int:
        """Store pairs (replacing a stored pair with the same id: its scores may have been refreshed)."""
        now = utcnow()
        values = [
            (p.pair_id, p.prompt, p.chosen, p.rejected, p.source, p.model_dump_json(), _naive(p.created_at) or now)
            for p in pairs
        ]
        if values:
            self.con.executemany(
                "INSERT INTO preference_pairs VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (pair_id) DO UPDATE SET "
                "record = excluded.record, source = excluded.source",
                values,
            )
        return len(values)

    def get_preference_pairs(self, source: str | None = None) -> list[PreferencePair]:
        sql, params = "SELECT record FROM preference_pairs", []
        if source is not None:
            sql += " WHERE source = ?"
            params.append(source)
        rows = self.con.execute(sql + " ORDER BY created_at, pair_id", params).fetchall()
        return [PreferencePair.model_validate_json(r[0]) for r in rows]

    # -- knowledge-update attempts ---------------------------------------------------------------
    def knowledge_attempt(self, attempt_id: str) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM knowledge_update_attempts WHERE attempt_id = ?", [attempt_id])
        return rows[0] if rows else None

    def record_knowledge_attempt(self, row: dict[str, Any]) -> None:
        self.con.execute(
            "INSERT INTO knowledge_update_attempts VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (attempt_id) DO UPDATE SET "
            "ok = excluded.ok, pairs_found = excluded.pairs_found, reason = excluded.reason, "
            "raw_output = excluded.raw_output, created_at = excluded.created_at",
            [row["attempt_id"], row["conversation_id"], row["method"], row["ok"], row["pairs_found"], row.get("reason"), row.get("raw_output"), utcnow()],
        )


class SFTValidationError(ValueError):
    """An SFT pair was refused; the message names the field (and the pair's position in a batch)."""


#: Shorter than these (after stripping whitespace) is not a training example (seed 002 section 8).
MIN_INSTRUCTION_LENGTH = 3
MIN_RESPONSE_LENGTH = 2


def validate_sft_pair(pair: SFTPair | dict[str, Any], index: int | None = None) -> SFTPair:
    """Re-validate a pair (also one built with `model_construct`) and apply the store's length rules."""
    where = f"sft pair #{index}: " if index is not None else "sft pair: "
    data = pair.model_dump() if isinstance(pair, SFTPair) else dict(pair)
    try:
        checked = SFTPair.model_validate(data)
    except ValidationError as exc:
        parts = [f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise SFTValidationError(where + "; ".join(parts)) from exc
    for name, minimum in (("instruction", MIN_INSTRUCTION_LENGTH), ("response", MIN_RESPONSE_LENGTH)):
        got = len(getattr(checked, name).strip())
        if got < minimum:
            raise SFTValidationError(f"{where}{name}: shorter than {minimum} characters (got {got})")
    return checked


def _naive(ts: datetime | None) -> datetime | None:
    if ts is None:
        return None
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo else ts


def _sft_from_row(r: dict[str, Any]) -> SFTPair:
    return SFTPair(
        pair_id=r["pair_id"], instruction=r["instruction"], response=r["response"], context=r["context"],
        source=r["source"], category=r["category"], confidence=r["confidence"],
        reward_intensity=r["reward_intensity"], safety_score=r["safety_score"], weight=r["weight"],
        conversation_id=r["conversation_id"], message_id=r["message_id"], created_at=r["created_at"],
        is_used=r["is_used"], used_timestamp=r["used_timestamp"], training_epoch=r["training_epoch"],
        metadata=json.loads(r["metadata"]),
    )
