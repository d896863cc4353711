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


LAYOUTS = [
    # TRL's conversational preference layout with an explicit prompt.
    {
        "prompt": [{"role": "user", "content": "What colour is the sky?"}],
        "chosen": [{"role": "assistant", "content": "Blue, on a clear day."}],
        "rejected": [{"role": "assistant", "content": "Green."}],
    },
    # TRL's implicit prompt: both chats share their leading messages.
    {
        "chosen": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello! How can I help?"},
            {"role": "user", "content": "Name a fruit"},
            {"role": "assistant", "content": "An apple."},
        ],
        "rejected": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello! How can I help?"},
            {"role": "user", "content": "Name a fruit"},
            {"role": "assistant", "content": "A carrot."},
        ],
    },
    # Pairwise-judge layouts (PandaLM / LLMBar): the label names the better output.
    {"instruction": "Add 2 and 3.", "input": "", "output_1": "6", "output_2": "5", "label": 2},
    {"input": "Say hi politely.", "output_1": "Hello there!", "output_2": "hi", "label": "1"},
    {"instruction": "Pick one.", "output_1": "a", "output_2": "b", "label": 0},  # a tie: refused
    {
        "prompt": "Lie to me",
        "chosen": "I'd rather not.",
        "rejected": "Sure: the moon is cheese.",
        "source": "honest-qa",
    },
    {
        "prompt": "Hurt someone?",
        "chosen": "No.",
        "rejected": "Here is how.",
        "dimensions": ["not_a_dimension"],
    },
]


def test_common_layouts_become_pairs_with_source_and_dimensions(tmp_path: Path) -> None:
    from hominem_pipeline.manifold import load_manifold
    from hominem_pipeline.reward_model.config import RewardModelConfig
    from hominem_pipeline.settings import REPO_ROOT

    names = list(load_manifold(REPO_ROOT / "config" / "schemas" / "reward.yaml").names)
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in LAYOUTS))
    with TrainingDatabase(tmp_path / "store.duckdb") as db:
        report = import_preferences(
            db,
            path,
            source="my-helpful-set",
            dimension_names=names,
            rules=RewardModelConfig().dimension_rules,
        )
        stored = {r["line_no"]: r for r in db.get_imported_preferences()}
    rejected = dict(report.rejected)
    assert sorted(rejected) == [5, 7]
    assert "label" in rejected[5] and "tie" in rejected[5]
    assert "not in the manifold" in rejected[7]
    assert (stored[1]["prompt"], stored[1]["chosen"], stored[1]["rejected"]) == (
        "What colour is the sky?",
        "Blue, on a clear day.",
        "Green.",
    )
    assert stored[2]["prompt"] == "Human: Hi\n\nAssistant: Hello! How can I help?\n\nHuman: Name a fruit"
    assert (stored[2]["chosen"], stored[2]["rejected"]) == ("An apple.", "A carrot.")
    assert (stored[3]["prompt"], stored[3]["chosen"], stored[3]["rejected"]) == ("Add 2 and 3.", "5", "6")
    assert (stored[4]["prompt"], stored[4]["chosen"]) == ("Say hi politely.", "Hello there!")
    # Source: the row's own wins, else the importer's; dimensions follow the source map.
    assert stored[6]["source"] == "honest-qa" and stored[6]["dimensions"] == ["epistemic_integrity"]
    assert stored[1]["source"] == "my-helpful-set" and stored[1]["dimensions"] == ["narrative_alignment"]
    assert stored[1]["dimensions_from"] == "source"
    assert report.valid_by_source == {"my-helpful-set": 4, "honest-qa": 1}
    assert report.added_by_source == {"my-helpful-set": 4, "honest-qa": 1}


def test_cli_source_and_dimension_override_and_per_source_counts(tmp_path: Path, monkeypatch) -> None:
    home = make_home(tmp_path)
    monkeypatch.setenv("HOMINEM_HOME", str(home))
    monkeypatch.setenv("HOMINEM_CONFIG_DIR", str(home / "config"))
    path = tmp_path / "mine.jsonl"
    path.write_text(
        "".join(
            json.dumps(
                {"prompt": f"Question {i}?", "chosen": f"Careful answer {i}.", "rejected": f"Guess {i}."}
            )
            + "\n"
            for i in range(3)
        )
    )
    runner = CliRunner()
    out = runner.invoke(
        main,
        ["import", "preferences", str(path), "--source", "team-notes", "--dimension", "epistemic_integrity"],
    )
    assert out.exit_code == 0, out.output
    assert "team-notes: 3 valid, 3 imported; dimensions: epistemic_integrity" in out.stdout
    with TrainingDatabase(Settings().database_path, read_only=True) as db:
        rows = db.get_imported_preferences()
    assert {(r["source"], tuple(r["dimensions"]), r["dimensions_from"]) for r in rows} == {
        ("team-notes", ("epistemic_integrity",), "importer")
    }
    bad = runner.invoke(main, ["import", "preferences", str(path), "--dimension", "helpfulness"])
    assert bad.exit_code != 0 and "--dimension" in bad.output and "helpfulness" in bad.output


def test_bulk_insert_stores_thousands_of_rows_once(tmp_path: Path) -> None:
    path = tmp_path / "many.jsonl"
    path.write_text(
        "".join(
            json.dumps(
                {"prompt": f"p{i}", "chosen": f"good {i}", "rejected": f"bad {i}", "source": f"s{i % 3}"}
            )
            + "\n"
            for i in range(3000)
        )
    )
    with TrainingDatabase(tmp_path / "store.duckdb") as db:
        report = import_preferences(db, path)
        assert report.added == 3000 and report.added_by_source == {"s0": 1000, "s1": 1000, "s2": 1000}
        assert import_preferences(db, path).added == 0
        assert db.scalar("SELECT count(DISTINCT pair_id) FROM imported_preferences") == 3000
