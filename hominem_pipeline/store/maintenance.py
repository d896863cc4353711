"""The store side of nightly SFT maintenance (migration 0012; the plan is extraction/maintenance.py): row
embeddings and clusters kept between nights, removal of rows into `sft_pairs_removed` (kept whole, with
the reason and the row a duplicate was merged into), and re-emission (`sft_reemitted`). Plain SQL over
`TrainingDatabase.con`; no model code here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np

from hominem_pipeline.store.connection import naive_utc, utcnow

#: A row's value for re-emission and the keeper of a duplicate group: reward_intensity x confidence, an
#: unscored row counting as neutral 0.5 (the trainer's neutral intensity).
SCORE_SQL = "coalesce(reward_intensity, 0.5) * confidence"


def _arrow_vectors(ids: Sequence[str], vectors: np.ndarray, **columns: Any) -> Any:
    import pyarrow as pa

    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).ravel())
    data = {
        "pair_id": list(ids),
        **columns,
        "vector": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1]),
    }
    return pa.table(data)


def _read_vectors(db: Any, sql: str, params: Sequence[Any] = ()) -> tuple[list[Any], np.ndarray]:
    """(first column, matrix of the `vector` column) of a query whose last column is `vector`."""
    table = db.con.sql(sql, params=list(params) or None).to_arrow_table()
    keys = table.column(0).to_pylist()
    if not keys:
        return [], np.zeros((0, 0), np.float32)
    vectors = table.column("vector").combine_chunks()
    flat = vectors.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return keys, flat.reshape(len(keys), -1)


# -- embeddings ---------------------------------------------------------------------------------------
def forget_other_models(db: Any, model: str) -> int:
    """Drop embeddings, clusters and centroids made with another embedding model; returns the rows dropped."""
    n = int(db.scalar("SELECT count(*) FROM sft_embeddings WHERE model <> ?", [model]))
    stale_clusters = int(db.scalar("SELECT count(*) FROM sft_cluster_centroids WHERE model <> ?", [model]))
    if n or stale_clusters:
        db.con.execute("DELETE FROM sft_embeddings WHERE model <> ?", [model])
        db.con.execute("DELETE FROM sft_clusters")
        db.con.execute("DELETE FROM sft_cluster_centroids")
    return n


def rows_without_embedding(db: Any) -> list[tuple[str, str]]:
    """(pair_id, text) of stored rows that have no embedding yet; text = instruction + response."""
    return [
        (r[0], r[1])
        for r in db.con.execute(
            "SELECT s.pair_id, s.instruction || '\n' || s.response FROM sft_pairs s "
            "ANTI JOIN sft_embeddings e ON e.pair_id = s.pair_id ORDER BY s.pair_id"
        ).fetchall()
    ]


def store_embeddings(db: Any, ids: Sequence[str], vectors: np.ndarray, model: str) -> int:
    if not len(ids):
        return 0
    db.con.register("_new_embeddings", _arrow_vectors(ids, vectors, model=[model] * len(ids)))
    try:
        db.con.execute(
            "INSERT INTO sft_embeddings SELECT pair_id, model, vector::FLOAT[] FROM _new_embeddings "
            "ON CONFLICT (pair_id) DO UPDATE SET model = excluded.model, vector = excluded.vector"
        )
    finally:
        db.con.unregister("_new_embeddings")
    return len(ids)


def embedded_rows(db: Any) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Every stored row with its embedding, ordered by pair_id: (columns, vectors). Columns: pair_id,
    source, score (`SCORE_SQL`), cluster (-1 when unassigned)."""
    table = db.con.sql(
        f"SELECT s.pair_id, s.source, {SCORE_SQL} AS score, coalesce(c.cluster, -1) AS cluster, e.vector "
        "FROM sft_pairs s JOIN sft_embeddings e USING (pair_id) LEFT JOIN sft_clusters c USING (pair_id) "
        "ORDER BY s.pair_id"
    ).to_arrow_table()
    cols = {
        name: np.asarray(
            table.column(name).to_pylist() if name in ("pair_id", "source") else table.column(name).to_numpy()
        )
        for name in ("pair_id", "source", "score", "cluster")
    }
    if table.num_rows == 0:
        return cols, np.zeros((0, 0), np.float32)
    flat = table.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return cols, flat.astype(np.float32, copy=False).reshape(table.num_rows, -1)


# -- clusters ------------------------------------------------------------------------------------------
def centroids(db: Any, model: str) -> tuple[list[int], np.ndarray]:
    return _read_vectors(
        db, "SELECT cluster, vector FROM sft_cluster_centroids WHERE model = ? ORDER BY cluster", [model]
    )


def replace_clusters(
    db: Any, ids: Sequence[str], labels: np.ndarray, centres: np.ndarray, model: str
) -> None:
    """Every row's cluster and every centroid, replaced in one transaction."""
    db.con.execute("BEGIN TRANSACTION")
    try:
        db.con.execute("DELETE FROM sft_clusters")
        db.con.execute("DELETE FROM sft_cluster_centroids")
        _insert_assignments(db, ids, labels, model)
        cluster_ids = list(range(len(centres)))
        db.con.register(
            "_centres", _arrow_vectors([str(c) for c in cluster_ids], centres, model=[model] * len(centres))
        )
        db.con.execute(
            "INSERT INTO sft_cluster_centroids SELECT pair_id::INTEGER, model, vector::FLOAT[] FROM _centres"
        )
        db.con.unregister("_centres")
        db.con.execute("COMMIT")
    except BaseException:
        db.con.execute("ROLLBACK")
        raise


def assign_clusters(db: Any, ids: Sequence[str], labels: np.ndarray, model: str) -> int:
    _insert_assignments(db, ids, labels, model)
    return len(ids)


def _insert_assignments(db: Any, ids: Sequence[str], labels: np.ndarray, model: str) -> None:
    if not len(ids):
        return
    db.con.execute(
        "INSERT INTO sft_clusters SELECT unnest(?), unnest(?), ? "
        "ON CONFLICT (pair_id) DO UPDATE SET cluster = excluded.cluster, model = excluded.model",
        [list(ids), [int(x) for x in labels], model],
    )


def cluster_sizes(db: Any) -> list[int]:
    return [
        int(r[0]) for r in db.con.execute("SELECT count(*) FROM sft_clusters GROUP BY cluster").fetchall()
    ]


# -- removal and re-emission ---------------------------------------------------------------------------
def aged_out_ids(db: Any, older_than: datetime) -> list[str]:
    """Used rows created before `older_than`."""
    return [
        r[0]
        for r in db.con.execute(
            "SELECT pair_id FROM sft_pairs WHERE is_used AND created_at < ? ORDER BY pair_id",
            [naive_utc(older_than)],
        ).fetchall()
    ]


def duplicate_content(db: Any) -> list[tuple[str, str]]:
    """(duplicate, keeper) for rows whose normalised instruction and response (case, surrounding and
    repeated whitespace) equal another row's of the same source; the keeper has the highest score,
    then the oldest, then the smallest pair_id."""
    norm = "regexp_replace(lower(trim({c})), '\\s+', ' ', 'g')"
    key = f"md5({norm.format(c='instruction')} || chr(31) || {norm.format(c='response')})"
    rows = db.con.execute(
        f"SELECT pair_id, first_value(pair_id) OVER w AS keeper FROM ("
        f"SELECT pair_id, source, created_at, {SCORE_SQL} AS score, {key} AS h FROM sft_pairs) "
        "WINDOW w AS (PARTITION BY source, h ORDER BY score DESC, created_at, pair_id) "
        "QUALIFY pair_id <> keeper ORDER BY pair_id"
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def remove_rows(db: Any, removals: Sequence[tuple[str, str, str | None]], now: datetime | None = None) -> int:
    """Move rows (pair_id, reason, kept_pair_id) from `sft_pairs` to `sft_pairs_removed` in one
    transaction, with their embeddings, clusters and re-emission marks. Returns how many moved."""
    if not removals:
        return 0
    ids = [r[0] for r in removals]
    now = naive_utc(now) or utcnow()
    db.con.execute("BEGIN TRANSACTION")
    try:
        db.con.execute(
            "INSERT INTO sft_pairs_removed SELECT s.*, ?, m.reason, m.kept FROM sft_pairs s JOIN "
            "(SELECT unnest(?) AS pid, unnest(?) AS reason, unnest(?) AS kept) m ON s.pair_id = m.pid",
            [now, ids, [r[1] for r in removals], [r[2] for r in removals]],
        )
        n = int(db.scalar("SELECT count(*) FROM sft_pairs WHERE pair_id IN (SELECT unnest(?))", [ids]))
        for table in ("sft_embeddings", "sft_clusters", "sft_reemitted", "sft_pairs"):
            db.con.execute(f"DELETE FROM {table} WHERE pair_id IN (SELECT unnest(?))", [ids])
        db.con.execute("COMMIT")
    except BaseException:
        db.con.execute("ROLLBACK")
        raise
    return n


def reemission_candidates(db: Any, older_than: datetime, min_score: float, limit: int) -> list[str]:
    """Used rows created before `older_than` scoring at least `min_score`, best first, at most `limit`."""
    if limit <= 0:
        return []
    return [
        r[0]
        for r in db.con.execute(
            f"SELECT pair_id FROM sft_pairs WHERE is_used AND created_at < ? AND {SCORE_SQL} >= ? "
            f"ORDER BY {SCORE_SQL} DESC, created_at, pair_id LIMIT ?",
            [naive_utc(older_than), float(min_score), int(limit)],
        ).fetchall()
    ]


def reemit(db: Any, ids: Sequence[str], now: datetime | None = None) -> int:
    """Clear is_used on these rows and record when (see store/consumption.py)."""
    if not ids:
        return 0
    now = naive_utc(now) or utcnow()
    db.con.execute("BEGIN TRANSACTION")
    try:
        db.reset_sft_used(ids)
        db.con.execute(
            "INSERT INTO sft_reemitted SELECT unnest(?), ? ON CONFLICT (pair_id) DO UPDATE SET "
            "reemitted_at = excluded.reemitted_at",
            [list(ids), now],
        )
        db.con.execute("COMMIT")
    except BaseException:
        db.con.execute("ROLLBACK")
        raise
    return len(ids)
