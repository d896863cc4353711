"""Which adapter trained on which example (`trained_examples`, migration 0010), and the `is_used` flag of
`sft_pairs` that follows the `current` adapter.

The trainer records `(example, adapter_version)` for every example a cycle trained on and marks nothing.
When a pointer move makes an adapter `current` (promotion, rollback), `sync_used` sets `is_used` on
exactly the SFT rows trained by that adapter or its ancestors (its `continued_from` chain), so a
rejected, crashed or never-promoted cycle consumes nothing and a rollback hands its rows back.
Nightly maintenance may re-emit a used row (`sft_reemitted`): training recorded before its re-emission
no longer counts, so the row stays unused until an adapter of the `current` lineage trains on it again.
Plain SQL over `TrainingDatabase.con`; no training or registry code here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from hominem_pipeline.store.connection import utcnow


def record_trained(
    db: Any, model_name: str, adapter_version: str, cycle: int, examples: Iterable[tuple[str, str]]
) -> int:
    """Store (channel, example_id) pairs trained by `adapter_version`; idempotent. Returns how many are new."""
    rows = sorted(set(examples))
    if not rows:
        return 0
    before = int(db.scalar("SELECT count(*) FROM trained_examples"))
    db.con.execute(
        "INSERT INTO trained_examples (example_id, channel, model_name, adapter_version, cycle, trained_at) "
        "SELECT unnest(?), unnest(?), ?, ?, ?, ? ON CONFLICT DO NOTHING",
        [[r[1] for r in rows], [r[0] for r in rows], model_name, adapter_version, int(cycle), utcnow()],
    )
    return int(db.scalar("SELECT count(*) FROM trained_examples")) - before


def trained_by(db: Any, model_name: str, adapter_version: str, channel: str = "sft") -> set[str]:
    """Example ids of one channel that `adapter_version` trained on."""
    rows = db.con.execute(
        "SELECT example_id FROM trained_examples WHERE model_name = ? AND adapter_version = ? AND channel = ?",
        [model_name, adapter_version, channel],
    ).fetchall()
    return {r[0] for r in rows}


def times_trained(
    db: Any, model_name: str, lineage: Sequence[str], channel: str = "preference"
) -> dict[str, int]:
    """example id -> how many adapters of `lineage` (the current adapter and its ancestors) trained on it."""
    if not lineage:
        return {}
    rows = db.con.execute(
        "SELECT example_id, count(DISTINCT adapter_version) FROM trained_examples "
        "WHERE model_name = ? AND channel = ? AND adapter_version IN (SELECT unnest(?)) GROUP BY example_id",
        [model_name, channel, list(lineage)],
    ).fetchall()
    return {r[0]: int(r[1]) for r in rows}


# SFT rows trained by a lineage (params: model_name, lineage), counting only training recorded after the
# row's last re-emission.
_IN_LINEAGE = (
    "SELECT t.example_id, min(t.cycle) AS cycle FROM trained_examples t "
    "LEFT JOIN sft_reemitted r ON r.pair_id = t.example_id "
    "WHERE t.model_name = ? AND t.channel = 'sft' AND t.adapter_version IN (SELECT unnest(?)) "
    "AND (r.reemitted_at IS NULL OR t.trained_at > r.reemitted_at) GROUP BY t.example_id"
)


def sync_used(db: Any, model_name: str, lineage: Sequence[str]) -> tuple[int, int]:
    """Make `sft_pairs.is_used` say "trained by the current adapter's lineage": rows trained by a version
    in `lineage` become used (with the cycle that first trained them); rows this model's adapters trained
    that are not in the lineage become unused again. Rows never recorded here are left as they are.
    Returns (marked, unmarked)."""
    lineage = list(lineage)
    db.con.execute("BEGIN TRANSACTION")
    try:
        in_lineage = _IN_LINEAGE
        marked = int(
            db.scalar(
                f"SELECT count(*) FROM sft_pairs s JOIN ({in_lineage}) t ON s.pair_id = t.example_id WHERE NOT s.is_used",
                [model_name, lineage],
            )
        )
        db.con.execute(
            f"UPDATE sft_pairs SET is_used = TRUE, used_timestamp = ?, cycle = t.cycle FROM ({in_lineage}) t "
            "WHERE sft_pairs.pair_id = t.example_id AND NOT sft_pairs.is_used",
            [utcnow(), model_name, lineage],
        )
        stale = (
            "is_used AND pair_id IN (SELECT example_id FROM trained_examples WHERE model_name = ? AND channel = 'sft') "
            f"AND pair_id NOT IN (SELECT example_id FROM ({in_lineage}))"
        )
        unmarked = int(
            db.scalar(f"SELECT count(*) FROM sft_pairs WHERE {stale}", [model_name, model_name, lineage])
        )
        db.con.execute(
            f"UPDATE sft_pairs SET is_used = FALSE, used_timestamp = NULL, cycle = NULL WHERE {stale}",
            [model_name, model_name, lineage],
        )
        db.con.execute("COMMIT")
    except BaseException:
        db.con.execute("ROLLBACK")
        raise
    return marked, unmarked
