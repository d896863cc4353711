"""Bad input fuzzed with Hypothesis on the file-reading faces: the conversation importers, the preference
importer, the TOML config files and the training YAML. Each input either loads or fails with the face's
own error naming the file (and line / field); nothing else escapes, and nothing stored changes on failure.

Derandomized with no example database and bounded example counts: the same inputs on every machine, a few
seconds each.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from hominem_pipeline.data.preference_import import import_preferences
from hominem_pipeline.events.importers import ChatImportError, import_conversations
from hominem_pipeline.events.log import EventLog
from hominem_pipeline.settings import REPO_ROOT, ConfigError, Settings
from hominem_pipeline.store import TrainingDatabase
from hominem_pipeline.training.config import load_training_config
from hominem_pipeline_tests.conftest import _dump_toml
from hominem_pipeline_tests.fuzzing import any_text, fuzz

FUZZ = fuzz(60)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | any_text
)


def json_values(keys: list[str]) -> st.SearchStrategy[Any]:
    """JSON values whose object keys are mostly the layout's own field names, so validation goes deep."""
    key = st.sampled_from(keys) | any_text
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(key, inner, max_size=5),
        max_leaves=16,
    )


def lines_of(values: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """A JSONL file: JSON lines, blank lines and raw byte lines (not UTF-8, truncated JSON, ...)."""
    line = values.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=40) | st.just(b"")
    return st.lists(line, min_size=0, max_size=6).map(lambda ls: b"\n".join(ls) + b"\n")


CHAT_KEYS = [
    "messages",
    "role",
    "content",
    "timestamp",
    "type",
    "text",
    "internal_generated",
    "introspection",
    "versions",
    "steps",
    "createdAt",
    "currentlySelected",
    "name",
]
ROLES = st.sampled_from(["user", "assistant", "system", "tool", "robot", ""])


def _message() -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries(
        {"role": ROLES, "content": any_text | st.none() | st.integers()},
        optional={"timestamp": scalars, "internal_generated": scalars},
    )


openai_line = st.fixed_dictionaries(
    {"messages": st.lists(_message(), max_size=4)}, optional={"timestamp": scalars}
)
lmstudio_doc = st.fixed_dictionaries(
    {"messages": st.lists(st.fixed_dictionaries({"versions": st.lists(_message(), max_size=3)}), max_size=4)},
    optional={"createdAt": st.integers(-(10**22), 10**22) | scalars, "name": scalars},
)
chat_files = (
    lines_of(json_values(CHAT_KEYS) | openai_line)
    | lmstudio_doc.map(lambda d: json.dumps(d, indent=2).encode())
    | json_values(CHAT_KEYS).map(lambda d: json.dumps(d, indent=1).encode())
)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*"))} if folder.is_dir() else {}


@FUZZ
@given(data=chat_files)
def test_conversation_import_loads_or_names_the_file_and_appends_nothing(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "chat.jsonl"
    path.write_bytes(data)
    log = EventLog(tmp_path / "events")
    before, ids_before = _snapshot(log.root), list(log.iter_event_ids())
    try:
        result = import_conversations(path, log)
    except ChatImportError as exc:
        assert str(exc).startswith(str(path)), exc
        assert "\n" not in str(exc)
        assert _snapshot(log.root) == before
        return
    assert result.appended + result.already_in_log == result.messages > 0
    ids = list(log.iter_event_ids())
    assert len(ids) == len(ids_before) + result.appended == len(set(ids))  # each appended once, readable


PREF_KEYS = [
    "prompt",
    "chosen",
    "rejected",
    "source",
    "dimensions",
    "instruction",
    "input",
    "output_1",
    "output_2",
    "label",
    "role",
    "content",
]
pref_line = st.fixed_dictionaries(
    {"prompt": any_text, "chosen": any_text | st.lists(_message(), max_size=2), "rejected": any_text},
    optional={
        "dimensions": st.lists(st.sampled_from(["empathy", "nope", ""]), max_size=2),
        "source": scalars,
    },
)


@pytest.fixture
def store(tmp_path: Path):
    """One real DuckDB store for all of a test's examples (opening one per example would dominate)."""
    with TrainingDatabase(tmp_path / "store.duckdb") as db:
        yield db


@FUZZ
@given(data=lines_of(json_values(PREF_KEYS) | pref_line))
def test_preference_import_reports_each_bad_line_and_stores_only_valid_rows(
    tmp_path: Path, store: TrainingDatabase, data: bytes
) -> None:
    path = tmp_path / "prefs.jsonl"
    path.write_bytes(data)
    n_lines = data.count(b"\n")
    before = int(store.scalar("SELECT count(*) FROM imported_preferences"))
    try:
        report = import_preferences(store, path, dimension_names=["empathy", "helpfulness"])
    except ValueError as exc:
        assert str(exc).startswith(str(path)), exc
        assert int(store.scalar("SELECT count(*) FROM imported_preferences")) == before
        return
    after = int(store.scalar("SELECT count(*) FROM imported_preferences"))
    assert report.valid + len(report.rejected) == report.lines
    assert all(1 <= lineno <= n_lines and reason for lineno, reason in report.rejected)
    assert after - before == report.added <= report.valid


# -- config files -------------------------------------------------------------------------------
TOML_FILES = {
    "hominem.toml": lambda s: s.pipeline,
    "inference.toml": lambda s: s.inference,
}


def _load_extra(name: str, s: Settings) -> Any:
    if name == "conversations.toml":
        from hominem_pipeline.extraction.config import load_conversations_config

        return load_conversations_config(s)
    if name == "serving.toml":
        from hominem_pipeline.serving.config import load_serving_config

        return load_serving_config(s)
    from hominem_pipeline.reward_model.config import load_reward_model_config

    return load_reward_model_config(s)


CONFIG_NAMES = ["hominem.toml", "inference.toml", "conversations.toml", "serving.toml", "reward_model.toml"]
toml_values = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.lists(st.integers(), max_size=2)
    | st.dictionaries(st.sampled_from(["x", "model"]), st.integers(), max_size=1)
)


def _leaves(d: dict, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for k, v in d.items():
        out.extend(_leaves(v, (*prefix, k)) if isinstance(v, dict) else [(*prefix, k)])
    return out


@pytest.fixture
def config_home(tmp_path: Path) -> Path:
    import shutil

    shutil.copytree(REPO_ROOT / "config", tmp_path / "config")
    return tmp_path


@FUZZ
@given(
    name=st.sampled_from(CONFIG_NAMES),
    choice=st.integers(0, 10_000),
    extra=st.booleans(),
    value=toml_values,
    raw=st.none() | st.binary(max_size=30),
)
def test_config_files_load_or_fail_naming_file_and_field(
    config_home: Path, name: str, choice: int, extra: bool, value: Any, raw: bytes | None
) -> None:
    path = config_home / "config" / name
    original = (REPO_ROOT / "config" / name).read_text()
    data = tomllib.loads(original)
    leaves = _leaves(data)
    key = (*leaves[choice % len(leaves)][:-1], "unexpected_field") if extra else leaves[choice % len(leaves)]
    if raw is not None or name == "reward_model.toml":  # its arrays of tables: mutated as raw bytes only
        raw = raw or b"[["
        path.write_bytes(original.encode() + b"\n" + raw)
    else:
        node = data
        for part in key[:-1]:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(key[-1], None)
        else:
            node[key[-1]] = value
        path.write_text(_dump_toml(data))
    s = Settings(config_home, config_home / "config")
    try:
        TOML_FILES[name](s) if name in TOML_FILES else _load_extra(name, s)
    except ConfigError as exc:
        message = str(exc)
        assert str(path) in message and "\n" not in message, message
        if "not valid TOML" in message or "not UTF-8" in message:
            assert "line" in message or "end of document" in message, message
        else:
            assert any(part in message for part in key), (key, message)


train_yaml = st.dictionaries(
    st.sampled_from(
        [
            "max_steps",
            "lora",
            "rank",
            "learning_rate",
            "sft_weight",
            "preference_weight",
            "seed",
            "batch_size",
            "x",
        ]
    ),
    toml_values
    | st.dictionaries(st.sampled_from(["rank", "alpha", "dropout", "x"]), toml_values, max_size=3),
    max_size=4,
)


@FUZZ
@given(patch=train_yaml, raw=st.none() | st.text(max_size=30))
def test_training_yaml_loads_or_fails_naming_the_file(tmp_path: Path, patch: dict, raw: str | None) -> None:
    base = yaml.safe_load((REPO_ROOT / "config" / "training" / "lora_dual.yaml").read_text())
    path = tmp_path / "train.yaml"
    path.write_text(raw if raw is not None else yaml.safe_dump({**base, **patch}))
    try:
        load_training_config(path)
    except ConfigError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc), str(exc)
