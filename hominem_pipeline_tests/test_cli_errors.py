"""The CLI's error boundary and issue 12's "known failures", each through the real `hominem` command on a
fresh home: one line naming the file / line / field, a non-zero exit, nothing stored changed; `--debug`
shows the traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from hominem_pipeline.cli import main
from hominem_pipeline.cli.errors import EXIT_BUG, ErrorBoundary
from hominem_pipeline.settings import REPO_ROOT, Settings
from hominem_pipeline.store import TrainingDatabase
from hominem_pipeline_tests.faults import store_held_by_another_process


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home with the repository's config and nothing made yet (no model needed by these commands)."""
    home = tmp_path / "home"
    shutil.copytree(REPO_ROOT / "config", home / "config")
    monkeypatch.setenv("HOMINEM_HOME", str(home))
    monkeypatch.setenv("HOMINEM_CONFIG_DIR", str(home / "config"))
    monkeypatch.delenv("HOMINEM_DEBUG", raising=False)
    return home


def hominem(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def assert_one_line_error(result: Result, *expected: str) -> str:
    """Exit 1 through click (not an escaped exception), one `Error:` line holding each expected part."""
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    assert "Traceback" not in result.output
    for part in expected:
        assert part in errors[0], errors[0]
    return errors[0]


def _events(home: Path) -> list[str]:
    folder = home / "data" / "events"
    return sorted(p.read_text() for p in folder.glob("*.jsonl")) if folder.is_dir() else []


def _preference_count(home: Path) -> int:
    with TrainingDatabase(Settings().database_path) as db:
        return int(db.scalar("SELECT count(*) FROM imported_preferences"))


# -- the boundary itself ---------------------------------------------------------------------------
def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hominem_pipeline.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )


def test_bad_config_is_one_line_and_debug_shows_the_traceback(home: Path) -> None:
    toml = home / "config" / "hominem.toml"
    toml.write_text(toml.read_text() + "\n[generation]\nprompts_limit = -3\n")
    env = {"HOMINEM_HOME": str(home), "HOMINEM_CONFIG_DIR": str(home / "config")}
    plain = _cli("summary", env=env)
    assert plain.returncode == 1
    assert plain.stderr.strip().splitlines() == [plain.stderr.strip()]  # one line
    assert str(toml) in plain.stderr and "Traceback" not in plain.stderr
    debug = _cli("--debug", "summary", env=env)
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr and "ConfigError" in debug.stderr


def test_a_bug_is_one_line_that_says_so_with_its_own_exit_status() -> None:
    @click.group(cls=ErrorBoundary)
    @click.option("--debug", is_flag=True)
    def cli(debug: bool) -> None:
        pass

    @cli.command()
    def boom() -> None:
        {}["missing"]  # noqa: B018 (a KeyError: no failure a user can act on)

    result = CliRunner().invoke(cli, ["boom"])
    assert result.exit_code == EXIT_BUG
    assert "unexpected KeyError" in result.stderr and "--debug" in result.stderr
    assert isinstance(CliRunner().invoke(cli, ["--debug", "boom"]).exception, KeyError)


# -- raw tracebacks before ---------------------------------------------------------------------------
def test_store_locked_by_another_process(home: Path, tmp_path: Path) -> None:
    db_path = Settings().database_path
    with TrainingDatabase(db_path):
        pass
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}) + "\n")
    with store_held_by_another_process(db_path):
        assert_one_line_error(hominem("import", "preferences", str(pairs)), str(db_path), "lock")
    assert hominem("import", "preferences", str(pairs)).exit_code == 0
    assert _preference_count(home) == 1


def test_truncated_store(home: Path) -> None:
    db_path = Settings().database_path
    with TrainingDatabase(db_path):
        pass
    with db_path.open("r+b") as fh:
        fh.truncate(5000)
    assert_one_line_error(hominem("extract-sft", "--all-conversations"), str(db_path))


def test_garbage_current_pointer_is_one_line(home: Path) -> None:
    root = home / "artifacts" / "lora" / "m"
    root.mkdir(parents=True)
    (root / "current.json").write_text('{"version": "abc", "hist')
    for args in (["adapters", "list", "--model", "m"], ["adapters", "promote", "abc", "--model", "m"]):
        assert_one_line_error(hominem(*args))


@pytest.mark.parametrize(
    ("name", "command"),
    [("hominem.toml", "summary"), ("hominem.toml", "extract-sft"), ("inference.toml", "extract-sft")],
)
def test_config_error_in_summary_and_extract_sft(home: Path, name: str, command: str) -> None:
    config = home / "config" / name
    config.write_text(config.read_text() + "\n[bogus_section]\nx = 1\n")
    args = [command]
    if command == "extract-sft":
        with TrainingDatabase(home / "data" / "hominem.duckdb"):
            pass
        args.append("--all-conversations")
    assert_one_line_error(hominem(*args), str(config), "bogus_section")


def test_lone_surrogate_in_an_imported_message(home: Path, tmp_path: Path) -> None:
    f = tmp_path / "chat.jsonl"
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    f.write_text(json.dumps(good) + "\n" + json.dumps(good).replace("hello", "hel\\ud800lo") + "\n")
    assert_one_line_error(
        hominem("import", "conversations", str(f)), f"{f}:2", "messages.1.content", "surrogate"
    )
    assert _events(home) == []  # all or nothing: the valid first line was not appended either


def test_lmstudio_created_at_out_of_range(home: Path, tmp_path: Path) -> None:
    f = tmp_path / "lm.json"
    conv = {
        "createdAt": 10**17,
        "messages": [
            {"versions": [{"role": "user", "content": "hi"}]},
            {"versions": [{"role": "assistant", "content": "yo"}]},
        ],
    }
    f.write_text(json.dumps(conv))
    assert_one_line_error(hominem("import", "conversations", str(f)), str(f), "createdAt")
    assert _events(home) == []


@pytest.mark.parametrize("layout", ["array", "object"])
def test_json_nested_100k_deep(home: Path, tmp_path: Path, layout: str) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    f = tmp_path / "deep.jsonl"
    f.write_text(deep + "\n" if layout == "array" else '{"messages": ' + deep + "}\n")
    assert_one_line_error(hominem("import", "conversations", str(f)), f"{f}:1", "nested too deeply")
    prefs = hominem("import", "preferences", str(f))  # line by line: this one line is rejected, by number
    assert prefs.exit_code == 1 and "Traceback" not in prefs.output
    assert f"{f}:1: rejected: JSON nested too deeply" in prefs.stderr


def test_non_utf8_preferences_file_imports_its_valid_lines(home: Path, tmp_path: Path) -> None:
    f = tmp_path / "prefs.jsonl"
    f.write_bytes(
        b'{"prompt": "p", "chosen": "a", "rejected": "b"}\n{"prompt": "p\xff", "chosen": "a", '
        b'"rejected": "b"}\n{"prompt": "q", "chosen": "a", "rejected": "b"}\n'
    )
    result = hominem("import", "preferences", str(f))
    assert result.exit_code == 0, result.output
    assert f"{f}:2: rejected: not UTF-8 text: byte 0xff" in result.stderr
    assert "2 imported" in result.output and "1 rejected" in result.output
    assert _preference_count(home) == 2


def test_adapter_promote_refuses_a_path_outside_the_registry(home: Path) -> None:
    rm = home / "artifacts" / "reward_model" / "rm-0123456789ab"
    rm.mkdir(parents=True)
    (rm / "METADATA.json").write_text(json.dumps({"version": "rm-0123456789ab"}))
    root = home / "artifacts" / "lora" / "m"
    root.mkdir(parents=True)
    assert_one_line_error(
        hominem("adapters", "promote", "../../reward_model/rm-0123456789ab", "--model", "m", "--force"),
        "no adapter version or pointer '../../reward_model/rm-0123456789ab'",
    )
    assert list(root.iterdir()) == []  # no pointer written


# -- wrong answers with exit 0 before ------------------------------------------------------------------
def test_db_path_on_a_missing_folder_or_a_non_database_file(home: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "store.duckdb"
    assert_one_line_error(
        hominem("extract-sft", "--all-conversations", "--db-path", str(missing)), str(missing)
    )
    assert not missing.parent.exists()
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text('{"prompt": "p"}\n')
    assert_one_line_error(
        hominem("extract-sft", "--all-conversations", "--db-path", str(jsonl)), str(jsonl), "not a DuckDB"
    )
    assert jsonl.read_text() == '{"prompt": "p"}\n'


def test_unknown_conversation_id_is_said(home: Path) -> None:
    with TrainingDatabase(Settings().database_path):
        pass
    assert_one_line_error(hominem("extract-sft", "--conversation-id", "imp-nope"), "imp-nope")


@pytest.mark.parametrize("responses", [["", "fine"], ["fine", "   "]])
def test_reward_probe_refuses_empty_text(home: Path, responses: list[str]) -> None:
    args = ["reward", "probe", "--prompt", "hi"] + [x for r in responses for x in ("--response", r)]
    assert_one_line_error(hominem(*args), f"response {responses.index(min(responses, key=len)) + 1}: empty")
    assert_one_line_error(hominem("reward", "probe", "--prompt", " ", "--response", "x"), "prompt: empty")


def test_empty_preferences_and_labels_files_are_refused(home: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    assert_one_line_error(hominem("import", "preferences", str(empty)), str(empty), "no rows")
    assert_one_line_error(hominem("labels", "validate", "--file", str(empty)), str(empty), "no label rows")
    assert_one_line_error(hominem("import", "conversations", str(empty)), str(empty), "empty file")


def test_pretty_printed_json_is_told_the_expected_format(home: Path, tmp_path: Path) -> None:
    chat = tmp_path / "chat.json"
    chat.write_text(
        json.dumps(
            {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
            indent=2,
        )
    )
    line = assert_one_line_error(hominem("import", "conversations", str(chat)), str(chat), "JSON Lines")
    assert "not valid JSON" not in line
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_text(json.dumps([{"prompt": "p", "chosen": "a", "rejected": "b"}], indent=2))
    line = assert_one_line_error(hominem("import", "preferences", str(prefs)), str(prefs), "JSON Lines")
    assert "not valid JSON" not in line
    assert _events(home) == []


@pytest.mark.parametrize(
    ("args", "blamed"),
    [
        (["--set", "lora.rank=abc"], "lora.rank='abc'"),
        (["--max-steps", "-5"], "max_steps=-5"),
        (["--set", "max_steps.x=1"], "override max_steps.x"),
    ],
)
def test_training_overrides_are_blamed_not_the_yaml_file(home: Path, args: list[str], blamed: str) -> None:
    line = assert_one_line_error(hominem("train", "--no-store", "--no-progress", *args), blamed)
    assert "override" in line


def test_undecodable_byte_in_a_labels_file_names_file_and_line(home: Path, tmp_path: Path) -> None:
    f = tmp_path / "labels.jsonl"
    f.write_bytes(b'{"label_id": "a"}\n{"label_id": "\xfe"}\n')
    for cmd in ("validate", "sample"):
        assert_one_line_error(hominem("labels", cmd, "--file", str(f)), f"{f}:2", "not UTF-8")
