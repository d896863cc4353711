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
    # The columns source / dimensions / dimensions_from come from migration 0011.
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
        cols = [
            "pair_id",
            "prompt",
            "chosen",
            "rejected",
            "source_file",
            "line_no",
            "source",
            "dimensions",
            "dimensions_from",
        ]
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

    # -- preference pairs -------------------------------------------------------------------------
    def upsert_preference_pairs(self, pairs: Iterable[PreferencePair]) -> int:
        """Store pairs (replacing a stored pair with the same id: its scores may have been refreshed)."""
        now = utcnow()
        values = [
            (
                p.pair_id,
                p.prompt,
                p.chosen,
                p.rejected,
                p.source,
                p.model_dump_json(),
                naive_utc(p.created_at) or now,
            )
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
