"""The reward channel's rows in the store: preference pairs imported by the user (`imported_preferences`)
and the pairs built for training (`preference_pairs`, one `records.PreferencePair` per row)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hominem_pipeline.records import PreferencePair
from hominem_pipeline.store.connection import StoreConnection, naive_utc, utcnow


class PreferenceStore(StoreConnection):
    """`imported_preferences`, `preference_pairs`."""

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

    # -- preference pairs -------------------------------------------------------------------------
    def upsert_preference_pairs(self, pairs: Iterable[PreferencePair]) -> int:
        """Store pairs (replacing a stored pair with the same id: its scores may have been refreshed)."""
        now = utcnow()
        values = [
            (p.pair_id, p.prompt, p.chosen, p.rejected, p.source, p.model_dump_json(), naive_utc(p.created_at) or now)
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
