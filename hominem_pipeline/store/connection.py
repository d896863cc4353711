"""The store's connection and schema: opening the DuckDB file, numbered migrations, shared query helpers.

Migrations are the numbered `.sql` files in `migrations/`; each is applied once, in order, inside a
transaction, and recorded in `schema_migrations`. Opening an old file brings it up to date. Every query
is parameterised. The per-area repositories (`teacher_data`, `conversations`, `sft`, `preferences`)
build on `StoreConnection`; `TrainingDatabase` (`store/db.py`) is all of them in one object.

Opening fails with a domain error that names the file and what to do: `StoreBusy` when another process
holds it (DuckDB lets one process open a file for writing), `StoreCorrupt` when it is not a readable
DuckDB file (truncated, overwritten).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Self

import duckdb

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def utcnow() -> datetime:
    """Now, in UTC, without tzinfo: the form DuckDB TIMESTAMP columns store."""
    return datetime.now(UTC).replace(tzinfo=None)


def naive_utc(ts: datetime | None) -> datetime | None:
    """`ts` converted to UTC and stripped of tzinfo (naive timestamps are taken as UTC already)."""
    if ts is None:
        return None
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo else ts


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


class StoreError(RuntimeError):
    """The store cannot be opened; the message names the file and what to do."""


class StoreBusy(StoreError):
    """Another process holds the store's lock: retry when it has finished."""


class StoreCorrupt(StoreError):
    """The file is not a readable DuckDB database."""


def _is_damage(exc: duckdb.Error) -> bool:
    damage = (duckdb.IOException, duckdb.InternalException, duckdb.SerializationException)
    return isinstance(exc, damage) or "corrupt" in str(exc).lower()


def _open_error(path: Path, exc: duckdb.Error) -> StoreError:
    text = str(exc)
    if "lock" in text.lower():
        holder = re.search(r"\(PID (\d+)\)", text)
        return StoreBusy(
            f"{path} is busy: another process{f' (PID {holder.group(1)})' if holder else ''} has it open "
            "(a Dagster run, the CLI); retry when it has finished"
        )
    return StoreCorrupt(
        f"{path} is not a readable DuckDB database ({text.splitlines()[0]}); restore it from a backup, or "
        "move it aside and re-run: conversations are re-ingested from the event log (data/events) and teacher "
        "data is regenerated"
    )


def filtered(select: str, conditions: Sequence[tuple[str, Any]]) -> tuple[str, list[Any]]:
    """`select` with a WHERE clause of the conditions whose value is not None, AND-ed, and their
    parameters in order: `[("kind = ?", kind), ("event_day IN (SELECT unnest(?))", days)]`. The one
    builder of the repositories' optional filters."""
    used = [(sql, value) for sql, value in conditions if value is not None]
    where = " WHERE " + " AND ".join(sql for sql, _ in used) if used else ""
    return select + where, [value for _, value in used]


def _identifier(name: str) -> str:
    if not re.fullmatch(r"[a-z_]+", name):
        raise ValueError(f"{name!r}: table/column must be a plain identifier")
    return name


class StoreConnection:
    """One open DuckDB file, migrated on open unless read-only. Use as a context manager, or `close()`."""

    def __init__(self, path: Path | str, read_only: bool = False):
        self.path = Path(path)
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.Error as exc:
            raise _open_error(self.path, exc) from exc
        if not read_only:
            try:
                self.migrate()
            except duckdb.Error as exc:
                self.con.close()
                if not _is_damage(exc):
                    raise  # a migration's own error, not the file's
                raise _open_error(self.path, exc) from exc

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Run the block's statements as one transaction: all of them are stored, or (on an error, or a
        process killed part-way) none."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    # -- schema -------------------------------------------------------------------------------
    def migrate(self) -> list[str]:
        """Apply every migration not yet recorded; returns the names applied."""
        self.con.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMP NOT NULL)"
        )
        done = {r[0] for r in self.con.execute("SELECT version FROM schema_migrations").fetchall()}
        applied = []
        for number, name, sql in list_migrations():
            if number in done:
                continue
            with self.transaction():
                self.con.execute(sql)
                self.con.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", [number, name, utcnow()])
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
        table, column = _identifier(table), _identifier(column)
        rows = self.con.execute(
            f"SELECT {column} FROM {table} WHERE {column} IN (SELECT unnest(?))", [ids]
        ).fetchall()
        return {r[0] for r in rows}

    def _bulk_insert(
        self, table: str, rows: list[tuple[Any, ...]], key_index: int = 0, on_conflict: str = "DO NOTHING"
    ) -> int:
        """Insert many rows in one statement (one list parameter per column, unnested), which is two
        orders of magnitude faster than executemany in DuckDB. Rows repeating a key keep the first.
        Returns how many rows are new."""
        if not rows:
            return 0
        table = _identifier(table)
        unique = list({r[key_index]: r for r in reversed(rows)}.values())[::-1]
        columns = [list(col) for col in zip(*unique, strict=True)]
        before = int(self.scalar(f"SELECT count(*) FROM {table}"))
        select = ", ".join(["unnest(?)"] * len(columns))
        self.con.execute(f"INSERT INTO {table} SELECT {select} ON CONFLICT {on_conflict}", columns)
        return int(self.scalar(f"SELECT count(*) FROM {table}")) - before


class NotAStoreError(ValueError):
    """A path given as the store is not one: a missing file or folder, or a file DuckDB did not write."""


# A DuckDB database file carries this magic at byte 8 (after an 8-byte checksum) of its main header.
_DUCKDB_MAGIC = b"DUCK"


def require_store_file(path: Path | str) -> Path:
    """`path` when it is an existing DuckDB database file; otherwise NotAStoreError naming the path and what
    to do. For commands that read a store: opening a missing path would silently create an empty one."""
    path = Path(path)
    if not path.exists():
        where = "folder" if not path.parent.is_dir() else "file"
        raise NotAStoreError(
            f"{path}: no such {where}; give the path of an existing store (default data/hominem.duckdb, "
            "made by materialising the pipeline)"
        )
    if not path.is_file():
        raise NotAStoreError(f"{path}: not a file; give the path of the DuckDB store file")
    with path.open("rb") as fh:
        header = fh.read(12)
    if header[8:12] != _DUCKDB_MAGIC:
        raise NotAStoreError(f"{path}: not a DuckDB database file (no DuckDB header); check the path")
    return path
