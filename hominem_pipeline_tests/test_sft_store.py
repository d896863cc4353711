"""The SFT-pair store (seed 002 section 1): validation errors name the field, every filter of
`get_sft_pairs` narrows what the trainer gets, and `update_sft_used` toggles is_used with its cycle."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from hominem_pipeline.records import SFTPair, SFTValidationError
from hominem_pipeline.store import TrainingDatabase

T0 = datetime(2026, 3, 1, 12, 0, 0)


def _pair(i: int, **kw: object) -> SFTPair:
    base = {
        "instruction": f"question number {i}?",
        "response": f"answer {i}",
        "source": "conversation",
        "created_at": T0 + timedelta(hours=i),
    }
    return SFTPair(**{**base, **kw})


def test_insert_validation_names_the_field(tmp_path: Path) -> None:
    with TrainingDatabase(tmp_path / "db.duckdb") as db:
        with pytest.raises(SFTValidationError, match="instruction: shorter than 3"):
            db.insert_sft_pair(_pair(0, instruction="hi"))
        with pytest.raises(SFTValidationError, match="response: shorter than 2"):
            db.insert_sft_pair(_pair(0, response=" x "))
        with pytest.raises(SFTValidationError, match="source"):
            db.insert_sft_pair({"instruction": "what?", "response": "that", "source": "rumour"})
        with pytest.raises(SFTValidationError, match="confidence"):
            db.insert_sft_pair(SFTPair.model_construct(**{**_pair(1).model_dump(), "confidence": 1.5}))
        # One bad pair in a batch: nothing stored, and the message says which.
        with pytest.raises(SFTValidationError, match="#1: instruction"):
            db.insert_sft_pairs([_pair(1), _pair(2, instruction="ok")])
        assert db.get_sft_pairs() == []
        assert db.insert_sft_pair(_pair(1)) == _pair(1).pair_id
        assert db.insert_sft_pairs([_pair(1), _pair(2)]) == 1  # the first is already stored


def test_filters(tmp_path: Path) -> None:
    with TrainingDatabase(tmp_path / "db.duckdb") as db:
        db.insert_sft_pairs(
            [
                _pair(0),
                _pair(1, source="knowledge_update", confidence=0.5),
                _pair(2, instruction="a much longer question than the others?", confidence=0.9),
                _pair(3, response="a long and detailed answer", source="introspection", weight=0.3),
            ]
        )

        def ids(**kw: object) -> list[str]:
            return [p.instruction for p in db.get_sft_pairs(**kw)]

        assert len(ids()) == 4
        assert ids(source="knowledge_update") == ["question number 1?"]
        assert len(ids(source=["conversation", "introspection"])) == 3
        assert ids(since=T0 + timedelta(hours=2)) == [
            "a much longer question than the others?",
            "question number 3?",
        ]
        assert ids(min_instruction_length=30) == ["a much longer question than the others?"]
        assert ids(min_response_length=20) == ["question number 3?"]
        assert len(ids(min_confidence=0.9)) == 3
        assert ids(limit=2) == ["question number 0?", "question number 1?"]
        assert ids(source="conversation", min_confidence=0.95) == ["question number 0?"]
        stored = db.get_sft_pairs(source="introspection")[0]
        assert stored.weight == 0.3 and stored.created_at == T0 + timedelta(hours=3)


def test_is_used_toggling(tmp_path: Path) -> None:
    with TrainingDatabase(tmp_path / "db.duckdb") as db:
        pairs = [_pair(i) for i in range(4)]
        db.insert_sft_pairs(pairs)
        assert len(db.get_sft_pairs(is_used=False)) == 4
        before = datetime.now()
        assert db.update_sft_used([pairs[0].pair_id, pairs[1].pair_id, "no-such-id"], cycle=3) == 2
        used = db.get_sft_pairs(is_used=True)
        assert [p.pair_id for p in used] == [pairs[0].pair_id, pairs[1].pair_id]
        assert all(p.cycle == 3 and p.used_timestamp >= before - timedelta(seconds=5) for p in used)
        when = datetime(2026, 4, 1, 8, 30)
        db.update_sft_used([pairs[2].pair_id], cycle=4, used_timestamp=when)
        [p2] = [p for p in db.get_sft_pairs(is_used=True) if p.pair_id == pairs[2].pair_id]
        assert p2.used_timestamp == when and p2.cycle == 4
        assert [p.pair_id for p in db.get_sft_pairs(is_used=False)] == [pairs[3].pair_id]
        assert db.reset_sft_used([pairs[0].pair_id]) == 1
        assert len(db.get_sft_pairs(is_used=False)) == 2
        with pytest.raises(ValueError, match="cycle"):
            db.update_sft_used([pairs[3].pair_id], cycle=-1)


def test_migrations_bring_an_old_file_up_to_date(tmp_path: Path) -> None:
    import duckdb

    from hominem_pipeline.store.connection import list_migrations

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMP NOT NULL)"
    )
    for number, name, sql in list_migrations()[:2]:
        con.execute(sql)
        con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [number, name])
    con.close()
    with TrainingDatabase(path) as db:
        assert db.schema_version >= 9
        indexes = {
            r["index_name"]
            for r in db.query("SELECT index_name FROM duckdb_indexes() WHERE table_name = 'sft_pairs'")
        }
        assert {"idx_sft_pairs_source", "idx_sft_pairs_is_used", "idx_sft_pairs_created_at"} <= indexes
