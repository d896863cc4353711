"""Teacher data in the store: seed prompts, trajectories (candidate answers), reward labels and the
failures of labelling, which are kept with their reason and retried on the next run."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from hominem_pipeline.store.connection import StoreConnection, utcnow


class TeacherDataStore(StoreConnection):
    """`seed_prompts`, `trajectories`, `reward_labels`, `label_failures`."""

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

    def get_label_failures(self, label_ids: Sequence[str]) -> list[dict[str, Any]]:
        if not label_ids:
            return []
        return self.query(
            "SELECT * FROM label_failures WHERE label_id IN (SELECT unnest(?)) ORDER BY trajectory_id",
            [list(label_ids)],
        )
