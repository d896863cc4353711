"""Crash safety of published files and versions, and the store's migrations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hominem_pipeline.atomic import Pointer, hash_tree, publish_dir, staging_dir, write_jsonl_atomic
from hominem_pipeline.store import TrainingDatabase
from hominem_pipeline.store.connection import list_migrations


def test_a_crash_while_writing_an_export_leaves_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    write_jsonl_atomic(path, [{"a": 1}, {"a": 2}])

    def rows():
        yield {"a": 3}
        raise RuntimeError("crash mid-write")

    with pytest.raises(RuntimeError):
        write_jsonl_atomic(path, rows())
    assert [json.loads(x) for x in path.read_text().splitlines()] == [{"a": 1}, {"a": 2}]
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind


def test_versions_are_staged_then_published_and_pointer_rolls_back(tmp_path: Path) -> None:
    root = tmp_path / "reward_model"
    versions = []
    for content in ("one", "two"):
        with staging_dir(root) as tmp:
            (tmp / "weights.bin").write_text(content)
            version = hash_tree(tmp)[:12]
            assert publish_dir(tmp, root / version)
        versions.append(version)
    # A failure inside staging leaves nothing published.
    with pytest.raises(ValueError), staging_dir(root) as tmp:
        (tmp / "weights.bin").write_text("half")
        raise ValueError("training crashed")
    assert sorted(p.name for p in root.iterdir()) == sorted(versions)

    pointer = Pointer(root)
    pointer.set(versions[0])
    pointer.set(versions[1])
    assert pointer.target == versions[1]
    assert pointer.rollback() == versions[0]
    assert pointer.target == versions[0]
    with pytest.raises(RuntimeError, match="no earlier version"):
        pointer.rollback()
    with pytest.raises(FileNotFoundError):
        pointer.set("does-not-exist")


def test_republishing_identical_content_is_a_no_op(tmp_path: Path) -> None:
    root = tmp_path / "v"
    with staging_dir(root) as tmp:
        (tmp / "f").write_text("x")
        final = root / hash_tree(tmp)[:12]
        assert publish_dir(tmp, final)
    with staging_dir(root) as tmp:
        (tmp / "f").write_text("x")
        assert not publish_dir(tmp, root / hash_tree(tmp)[:12])
    assert [p.name for p in root.iterdir()] == [final.name]


def test_migrations_apply_once_in_order_and_reopen_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "store.duckdb"
    with TrainingDatabase(path) as db:
        assert db.schema_version == max(n for n, _, _ in list_migrations())
        applied = [r["name"] for r in db.query("SELECT name FROM schema_migrations ORDER BY version")]
        assert applied == [name for _, name, _ in list_migrations()]
        db.upsert_seed_prompts([{"prompt_id": "p1", "category": "c", "text": "hello", "content_hash": "h"}])
    with TrainingDatabase(path) as db:
        assert db.migrate() == []  # nothing new to apply
        assert db.scalar("SELECT text FROM seed_prompts WHERE prompt_id = ?", ["p1"]) == "hello"
