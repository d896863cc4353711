"""The server's HTTP bodies fuzzed with Hypothesis (FastAPI's TestClient over the real app, the tiny model
served): any body gets an answer, never a server error; a refused body gets a 4xx whose detail names the
field, and the event log does not change; raw bytes that are not JSON are refused the same way.

Derandomized with no example database and bounded example counts (the same inputs on every machine).
The real-HTTP behaviour of each endpoint is in test_serving.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from hominem_pipeline.serving.server import build
from hominem_pipeline_tests.fuzzing import any_text, fuzz
from hominem_pipeline_tests.serving_fixtures import home_env, make_home

FUZZ = fuzz(40)


@dataclass
class App:
    client: TestClient
    events: Path


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[App]:
    home = make_home(tmp_path_factory.mktemp("fuzz-http"), tiny_model_dir)
    with home_env(home) as s:
        built = build(s, "127.0.0.1", watch=False)
        try:
            with TestClient(built.app) as client:
                yield App(client, s.data_dir / "events")
        finally:
            built.engine.stop()


def _log_bytes(events: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(events.glob("*.jsonl"))} if events.is_dir() else {}


small_int = st.integers(-3, 12) | st.sampled_from([0, 10**6, -(10**12), 2**70])
anything = st.recursive(
    st.none() | st.booleans() | small_int | st.floats(allow_nan=False, allow_infinity=False) | any_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=8,
)
message = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "assistant", "system", "robot"]) | anything,
        "content": any_text | anything,
    }
)
sampling = {
    "max_tokens": small_int | anything,
    "temperature": st.floats(-1, 3) | anything,
    "top_p": st.floats(-0.5, 1.5) | anything,
    "seed": small_int,
}
EMOJI = st.sampled_from(["🚀", "❤️", "👎", "x", ""])

BODIES = {
    "/generate": st.fixed_dictionaries(
        {},
        optional={
            "prompt": any_text | anything,
            "messages": st.lists(message, max_size=3) | anything,
            "regenerate": any_text,
            "conversation_id": any_text,
            "stream": st.booleans() | anything,
            "colour": anything,
            **sampling,
        },
    ),
    "/v1/chat/completions": st.fixed_dictionaries(
        {"messages": st.lists(message, max_size=3) | anything},
        optional={
            "model": any_text | anything,
            "user": any_text | anything,
            "stream": st.booleans(),
            "max_completion_tokens": small_int,
            **sampling,
        },
    ),
    "/reward": st.fixed_dictionaries(
        {}, optional={"prompt": any_text | anything, "responses": st.lists(any_text, max_size=3) | anything}
    ),
    "/feedback": st.fixed_dictionaries(
        {},
        optional={
            "message_id": any_text | anything,
            "labels": st.lists(EMOJI, max_size=3) | anything,
            "remove_labels": st.lists(EMOJI, max_size=2),
            "chosen_message_id": any_text,
            "rejected_message_id": any_text,
            "correction": any_text | anything,
        },
    ),
}
# What each status may mean here: 200 served, 400 a body that is not text JSON at all, 404 unknown id,
# 409 conflict, 413 too large, 422 invalid, 503 no reward model served. Never 500.
ALLOWED = {200, 400, 404, 409, 413, 422, 503}


def _check(app: App, path: str, response: Any, before: dict[str, bytes], body: Any) -> None:
    assert response.status_code in ALLOWED, (path, body, response.status_code, response.text)
    if response.status_code == 200:
        return
    detail = response.json()["detail"]
    assert detail, (path, body, response.text)
    if response.status_code == 422 and isinstance(detail, list):
        # FastAPI's validation errors: each names where (body.<field>) and why.
        assert all(e.get("loc") and e.get("msg") for e in detail), detail
    assert _log_bytes(app.events) == before, (path, body)  # a refused body writes nothing


@FUZZ
@given(path_and_body=st.sampled_from(sorted(BODIES)).flatmap(lambda p: st.tuples(st.just(p), BODIES[p])))
def test_any_json_body_is_answered_never_a_server_error(app: App, path_and_body: tuple[str, dict]) -> None:
    path, body = path_and_body
    before = _log_bytes(app.events)
    response = app.client.post(
        path, content=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    _check(app, path, response, before, body)


@FUZZ
@given(
    path=st.sampled_from(sorted(BODIES)),
    raw=st.binary(max_size=60) | anything.map(lambda v: json.dumps(v).encode()),
)
def test_raw_bytes_are_refused_with_a_4xx_and_log_nothing(app: App, path: str, raw: bytes) -> None:
    before = _log_bytes(app.events)
    response = app.client.post(path, content=raw, headers={"content-type": "application/json"})
    _check(app, path, response, before, raw)
