"""Nightly SFT maintenance (seed 002 section 7): old used rows leave, duplicates merge (same text, then
near-duplicates within clusters), valuable older rows are re-emitted and stay re-emitted through a
promotion, removed rows are kept whole and never re-extracted, clusters follow the embedding model. Real
DuckDB store, real MiniLM embedder (the near-duplicates differ by one character, the others by topic)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from hominem_pipeline.defs.maintenance import maintenance_schedule, sft_maintenance
from hominem_pipeline.defs.resources import HominemResource
from hominem_pipeline.embedding import Embedder
from hominem_pipeline.extraction.maintenance import (
    MaintenanceConfig,
    all_pairs_duplicate_groups,
    cluster_embeddings,
    near_duplicate_groups,
    run_maintenance,
)
from hominem_pipeline.records import SFTPair
from hominem_pipeline.settings import ConfigError, Settings
from hominem_pipeline.store import TrainingDatabase
from hominem_pipeline.store.consumption import record_trained, sync_used

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def _row(
    key: str,
    instruction: str,
    response: str,
    *,
    days_old: float,
    used: bool = False,
    intensity: float | None = 0.5,
    source: str = "conversation",
) -> SFTPair:
    created = NOW - timedelta(days=days_old)
    return SFTPair(
        pair_id=key,
        instruction=instruction,
        response=response,
        source=source,
        message_id=f"m-{key}",
        conversation_id="c",
        reward_intensity=intensity,
        created_at=created,
        is_used=used,
        used_timestamp=created if used else None,
        cycle=1 if used else None,
    )


ROWS = [
    _row("aged", "What did I have for lunch?", "You had a sandwich.", days_old=200, used=True),
    _row("same-a", "Which river runs through Paris?", "The Seine.", days_old=5, intensity=0.4),
    _row("same-b", "which river runs  through Paris? ", "the Seine.", days_old=4, intensity=0.8),
    _row(
        "near-a",
        "How long do I boil an egg?",
        "About nine minutes for a hard-boiled egg.",
        days_old=3,
        intensity=0.9,
    ),
    _row(
        "near-b",
        "How long do I boil an egg?",
        "About nine minutes for a hard-boiled egg!",
        days_old=2,
        intensity=0.3,
    ),
    _row(
        "valuable",
        "My sister's name is Ada.",
        "Noted: your sister is called Ada.",
        days_old=60,
        used=True,
        intensity=0.9,
    ),
    _row("dull", "Say ok.", "Ok.", days_old=60, used=True, intensity=0.2),
    _row("fresh", "Recommend a book about bees.", "Try 'The Hive' by Bee Wilson.", days_old=1),
]


@pytest.fixture
def db(tmp_path: Path):
    with TrainingDatabase(tmp_path / "store.duckdb") as store:
        store.insert_sft_pairs(ROWS)
        yield store


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder()


def _ids(db: TrainingDatabase) -> set[str]:
    return {r[0] for r in db.con.execute("SELECT pair_id FROM sft_pairs").fetchall()}


def test_one_night_removes_merges_and_reemits_and_a_second_night_changes_nothing(db, embedder) -> None:
    report = run_maintenance(db, MaintenanceConfig(), embedder, now=NOW)
    assert (report.rows_before, report.rows_after) == (8, 5)
    assert (report.removed_aged_out, report.merged_duplicate_content, report.merged_near_duplicate) == (
        1,
        1,
        1,
    )
    assert report.reemitted == 1 and report.embedded_now == 6 and report.clusters_recomputed
    assert _ids(db) == {"same-b", "near-a", "valuable", "dull", "fresh"}  # keepers: the higher score

    removed = {r["pair_id"]: r for r in db.query("SELECT * FROM sft_pairs_removed")}
    assert {k: (r["removed_reason"], r["kept_pair_id"]) for k, r in removed.items()} == {
        "aged": ("aged_out", None),
        "same-a": ("duplicate_content", "same-b"),
        "near-b": ("near_duplicate", "near-a"),
    }
    assert removed["near-b"]["response"].endswith("egg!")  # kept whole: nothing lost

    used = dict(db.con.execute("SELECT pair_id, is_used FROM sft_pairs").fetchall())
    assert used["valuable"] is False and used["dull"] is True  # only the high intensity x confidence row

    # Extraction never brings a removed row back, by pair id or by message id.
    assert db.insert_sft_pairs([ROWS[0]]) == 0
    assert db.sft_message_ids_among(["m-aged", "m-near-b", "m-unknown"]) == {"m-aged", "m-near-b"}

    again = run_maintenance(db, MaintenanceConfig(), embedder, now=NOW)
    assert (again.removed_aged_out, again.merged_duplicate_content, again.merged_near_duplicate) == (0, 0, 0)
    assert again.embedded_now == 0 and not again.clusters_recomputed and again.rows_after == 5


def test_a_fact_taught_under_several_phrasings_is_never_merged(tmp_path: Path, embedder) -> None:
    """Knowledge rows state one fact under several phrasings of its question on purpose: the nightly
    near-duplicate merge leaves them all (exact duplicates are still merged by content)."""
    phrasings = [
        "How long do I boil an egg?",
        "Can you tell me: How long do I boil an egg?",
        "How long do I boil an egg? Please answer in one or two sentences.",
    ]
    rows = [
        _row(f"k{i}", q, "About nine minutes for a hard-boiled egg.", days_old=1, source="knowledge_update")
        for i, q in enumerate(phrasings)
    ]
    rows += [
        _row("c0", phrasings[0], "About nine minutes for a hard-boiled egg.", days_old=1),
        _row("c1", phrasings[0], "About nine minutes for a hard-boiled egg!", days_old=1, intensity=0.1),
    ]
    with TrainingDatabase(tmp_path / "store.duckdb") as db:
        db.insert_sft_pairs(rows)
        report = run_maintenance(db, MaintenanceConfig(), embedder, now=NOW)
        assert report.merged_near_duplicate == 1  # the conversation pair: same lesson twice
        assert _ids(db) == {"k0", "k1", "k2", "c0"}


def test_clusters_are_recomputed_when_the_embedding_model_changes(db, embedder) -> None:
    run_maintenance(db, MaintenanceConfig(), embedder, now=NOW)
    db.insert_sft_pairs(
        [
            _row(
                "later",
                "What is the boiling point of water?",
                "100 degrees Celsius at sea level.",
                days_old=0,
            )
        ]
    )
    incremental = run_maintenance(db, MaintenanceConfig(), embedder, now=NOW)
    assert incremental.embedded_now == 1 and incremental.rows_assigned_to_clusters == 1
    assert not incremental.clusters_recomputed

    db.con.execute(
        "UPDATE sft_embeddings SET model = 'embedded:an-older-model'"
    )  # as if made by another model
    changed = run_maintenance(db, MaintenanceConfig(), embedder, now=NOW)
    assert changed.embeddings_replaced == 6 and changed.embedded_now == 6 and changed.clusters_recomputed
    assert set(db.con.execute("SELECT DISTINCT model FROM sft_clusters").fetchall()) == {(embedder.spec,)}


def test_a_reemitted_row_stays_unused_through_promotion_until_trained_again(db, embedder) -> None:
    record_trained(db, "tiny", "v1", 1, [("sft", "valuable")])
    keep_all = MaintenanceConfig.model_validate({"cleanup": {"max_age_days": 0}})
    run_maintenance(db, keep_all, embedder)  # now: after v1's training was recorded
    assert db.scalar("SELECT is_used FROM sft_pairs WHERE pair_id = 'valuable'") is False

    # `current` moves to v2, a child of v1 that did not train on the row: it is not consumed again.
    record_trained(db, "tiny", "v2", 2, [("sft", "fresh")])
    sync_used(db, "tiny", ["v2", "v1"])
    assert db.scalar("SELECT is_used FROM sft_pairs WHERE pair_id = 'valuable'") is False
    # v3 trains on it after the re-emission: promoted, it is used again.
    record_trained(db, "tiny", "v3", 3, [("sft", "valuable")])
    sync_used(db, "tiny", ["v3", "v2", "v1"])
    assert db.scalar("SELECT is_used FROM sft_pairs WHERE pair_id = 'valuable'") is True


def test_clustered_search_finds_the_planted_near_duplicates_that_all_pairs_finds() -> None:
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(30, 64))
    base = centres[rng.integers(0, 30, 3000)] + 0.6 * rng.normal(size=(3000, 64))
    copies = base[:200] + 0.01 * rng.normal(size=(200, 64))  # 200 planted near-duplicates
    vectors = np.vstack([base, copies]).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    sources = np.array(["conversation"] * len(vectors), dtype=object)

    labels, centroids = cluster_embeddings(vectors, target_size=64, seed=0)
    assert np.bincount(labels).max() <= 128 and len(centroids) >= 3200 // 128
    clustered = {tuple(g) for g in near_duplicate_groups(vectors, labels, sources, 0.99)}
    exact = {tuple(g) for g in all_pairs_duplicate_groups(vectors, sources, 0.99)}
    assert exact == {(i, 3000 + i) for i in range(200)}
    assert len(clustered & exact) >= 190  # a pair split across clusters may be missed; almost none are
    assert clustered <= exact


def test_the_asset_reports_counts_and_the_schedule_follows_the_config(hominem_home: Path) -> None:
    settings = Settings(home=hominem_home)
    with TrainingDatabase(settings.database_path) as store:
        store.insert_sft_pairs(ROWS)
    result = dg.materialize([sft_maintenance], resources={"hominem": HominemResource(home=str(hominem_home))})
    [event] = result.asset_materializations_for_node("sft_maintenance")
    meta = {k: v.value for k, v in event.metadata.items()}
    # The asset runs at the real time, months after NOW: every used row is past 90 days.
    assert meta["rows_before"] == 8 and meta["removed_aged_out"] == 3
    assert meta["rows_before"] - meta["rows_after"] == (
        meta["removed_aged_out"] + meta["merged_duplicate_content"] + meta["merged_near_duplicate"]
    )
    assert meta["merged_duplicate_content"] == 1 and meta["merged_near_duplicate"] == 1

    (settings.config_dir / "maintenance.toml").write_text(
        '[schedule]\ncron = "15 2 * * *"\ntimezone = "Europe/Berlin"\n'
    )
    schedule = maintenance_schedule(settings)
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("15 2 * * *", "Europe/Berlin")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    (settings.config_dir / "maintenance.toml").write_text('[schedule]\ntimezone = "Mars/Olympus"\n')
    with pytest.raises(ConfigError, match="schedule.timezone"):
        maintenance_schedule(settings)
