"""Importing human preference JSONL: bad lines are named by number and skipped, the rest stored once."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from hominem_pipeline.cli import main
from hominem_pipeline.data.preference_import import import_preferences
from hominem_pipeline.records import content_hash
from hominem_pipeline.settings import Settings
from hominem_pipeline.store import TrainingDatabase
from hominem_pipeline_tests.reward_data import make_home

LINES = [
    json.dumps(
        {"prompt": "How do I boil an egg?", "chosen": "Simmer it for 8 minutes.", "rejected": "No idea."}
    ),
    "{not json",
    json.dumps({"prompt": "Hi", "rejected": "Go away."}),
    json.dumps({"prompt": "Hi", "chosen": "Hello!", "rejected": "Hello!"}),
    json.dumps({"prompt": "   ", "chosen": "a", "rejected": "b"}),
    "",
    json.dumps(["prompt", "chosen", "rejected"]),
    # Raw HH-RLHF layout: two transcripts sharing everything up to the last Assistant turn.
    json.dumps(
        {
            "chosen": "\n\nHuman: What is 2+2?\n\nAssistant: It is 4.",
            "rejected": "\n\nHuman: What is 2+2?\n\nAssistant: Probably 5.",
        }
    ),
    json.dumps({"prompt": "Name a colour", "chosen": "Blue.", "rejected": "Seven.", "id": 7, "source": "x"}),
]


def _write(tmp_path: Path) -> Path:
    path = tmp_path / "prefs.jsonl"
    path.write_text("\n".join(LINES) + "\n")
    return path


def test_malformed_rows_are_rejected_with_line_numbers_and_the_rest_imported(tmp_path: Path) -> None:
    path = _write(tmp_path)
    with TrainingDatabase(tmp_path / "store.duckdb") as db:
        report = import_preferences(db, path)
        stored = db.get_imported_preferences()
    rejected = dict(report.rejected)
    assert sorted(rejected) == [2, 3, 4, 5, 7]
    assert "not valid JSON" in rejected[2]
    assert "chosen" in rejected[3] and "Field required" in rejected[3]
    assert "same text" in rejected[4]
    assert "prompt" in rejected[5] and "empty" in rejected[5]
    assert report.lines == 8 and report.valid == 3 and report.added == 3
    by_line = {r["line_no"]: r for r in stored}
    assert sorted(by_line) == [1, 8, 9]
    assert (by_line[8]["prompt"], by_line[8]["chosen"], by_line[8]["rejected"]) == (
        "Human: What is 2+2?",
        "It is 4.",
        "Probably 5.",
    )
    assert by_line[1]["pair_id"] == content_hash(
        "How do I boil an egg?", "Simmer it for 8 minutes.", "No idea."
    )


def test_importing_the_same_file_twice_adds_nothing(tmp_path: Path) -> None:
    path = _write(tmp_path)
    with TrainingDatabase(tmp_path / "store.duckdb") as db:
        assert import_preferences(db, path).added == 3
        again = import_preferences(db, path)
        assert again.added == 0 and again.already_present == 3
        assert db.scalar("SELECT count(*) FROM imported_preferences") == 3


def test_cli_import_reports_rejects_and_is_idempotent(tmp_path: Path, monkeypatch) -> None:
    home = make_home(tmp_path)
    monkeypatch.setenv("HOMINEM_HOME", str(home))
    monkeypatch.setenv("HOMINEM_CONFIG_DIR", str(home / "config"))
    path = _write(tmp_path)
    runner = CliRunner()
    first = runner.invoke(main, ["import", "preferences", str(path)])
    assert first.exit_code == 0, first.output
    assert f"{path}:2: rejected: not valid JSON" in first.stderr
    assert f"{path}:7: rejected:" in first.stderr
    assert "8 rows read: 3 imported, 0 already present, 5 rejected" in first.stdout
    second = runner.invoke(main, ["import", "preferences", str(path)])
    assert "8 rows read: 0 imported, 3 already present, 5 rejected" in second.stdout
    with TrainingDatabase(Settings().database_path, read_only=True) as db:
        assert db.scalar("SELECT count(*) FROM imported_preferences") == 3

    only_bad = tmp_path / "bad.jsonl"
    only_bad.write_text("{oops\n")
    assert runner.invoke(main, ["import", "preferences", str(only_bad)]).exit_code == 1
