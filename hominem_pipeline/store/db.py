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
    def insert_imported_preferences(self, rows: Iterable[dict[str, Any]]) -> int:
        """Insert {pair_id, prompt, chosen, rejected, source_file, line_no}; returns how many were new."""
        rows = list(rows)
        if not rows:
            return 0
        before = self.scalar("SELECT count(*) FROM imported_preferences")
        self.con.executemany(
            "INSERT INTO imported_preferences VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (pair_id) DO NOTHING",
            [(r["pair_id"], r["prompt"], r["chosen"], r["rejected"], r["source_file"], r["line_no"], utcnow()) for r in rows],
        )
        return int(self.scalar("SELECT count(*) FROM imported_preferences")) - int(before)

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
