"""The server over real HTTP on loopback (uvicorn in a thread, the tiny model with a published adapter and
a real reward model): every endpoint, the OpenAI client with and without streaming, every exchange and
label in the event log exactly once (and ingestible), and the door's rules."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from hominem_pipeline.events.ingest import ingest_day
from hominem_pipeline.events.log import EventLog
from hominem_pipeline.events.schema import FeedbackEvent, MessageEvent
from hominem_pipeline.reward_model import load_current
from hominem_pipeline.serving.app import create_app
from hominem_pipeline.serving.server import BackgroundServer, Built, api_key_for, build
from hominem_pipeline.settings import ConfigError, Settings
from hominem_pipeline.store import TrainingDatabase
from hominem_pipeline_tests.serving_fixtures import (
    home_env,
    logged_events,
    make_home,
    publish_adapter,
    publish_reward_model,
    registry_of,
)


@dataclass
class Served:
    url: str
    settings: Settings
    built: Built
    adapter: str
    reward_model: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[Served]:
    home = make_home(tmp_path_factory.mktemp("serving"), tiny_model_dir)
    with home_env(home) as settings:
        adapter = publish_adapter(settings, tiny_model_dir, seed=1)
        registry_of(settings).promote(adapter)
        rm = publish_reward_model(settings)
        built = build(settings, "127.0.0.1", watch_interval_s=0.2)
        with BackgroundServer(built) as url:
            yield Served(url, settings, built, adapter, rm)


def _post(s: Served, path: str, body: object, **kw: object) -> httpx.Response:
    return httpx.post(s.url + path, json=body, timeout=60, **kw)  # type: ignore[arg-type]


def _by_id(s: Served) -> dict[str, MessageEvent | FeedbackEvent]:
    events = logged_events(s.settings)
    ids = Counter(e.event_id for e in events)
    assert max(ids.values()) == 1, f"duplicated events: {[i for i, n in ids.items() if n > 1]}"
    return {e.event_id: e for e in events}


def test_generate_answers_with_versions_and_reward_and_logs_the_exchange(served: Served) -> None:
    r = _post(served, "/generate", {"prompt": "What is the capital of France?", "max_tokens": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["adapter_version"] == served.adapter
    assert body["reward_model_version"] == served.reward_model
    assert body["base_model"] == served.settings.inference.student.model
    assert 1 <= body["completion_tokens"] <= 5
    manifold_dims = set(load_current(served.settings.artifacts_dir).manifold.names)
    assert set(body["reward"]["reward_vector"]) == manifold_dims
    events = _by_id(served)
    user, reply = events[body["user_message_id"]], events[body["message_id"]]
    assert isinstance(user, MessageEvent) and user.role == "user"
    assert user.content == "What is the capital of France?"
    assert isinstance(reply, MessageEvent) and reply.role == "assistant" and reply.parent_id == user.event_id
    assert reply.conversation_id == user.conversation_id == body["conversation_id"]
    assert reply.metadata["adapter_version"] == served.adapter
    assert reply.metadata["reward_model_version"] == served.reward_model
    assert reply.metadata["reward"] == body["reward"]
    assert reply.metadata["sampling"]["max_new_tokens"] == 5
    assert reply.metadata["latency_s"] > 0


def test_a_conversation_continues_with_its_history(served: Served) -> None:
    first = _post(served, "/generate", {"prompt": "My name is Ada."}).json()
    second = _post(
        served, "/generate", {"prompt": "What is my name?", "conversation_id": first["conversation_id"]}
    ).json()
    assert second["conversation_id"] == first["conversation_id"]
    # The second turn's prompt holds the first exchange: it is longer than the bare question alone.
    assert second["prompt_tokens"] > first["prompt_tokens"]
    view = httpx.get(f"{served.url}/conversations/{first['conversation_id']}").json()
    assert [m["role"] for m in view["messages"]] == ["user", "assistant", "user", "assistant"]
    assert [m["seq"] for m in view["messages"]] == [0, 1, 2, 3]
    unknown = _post(served, "/generate", {"prompt": "hi", "conversation_id": "no-such-conversation"})
    assert unknown.status_code == 404 and unknown.json()["field"] == "conversation_id"


def test_streamed_generate_sends_pieces_then_the_logged_reply(served: Served) -> None:
    with httpx.stream(
        "POST", served.url + "/generate", json={"prompt": "Tell me a story.", "stream": True}, timeout=60
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
    start, *deltas, done = events
    assert done["done"] is True
    reply = done["response"]
    assert start["conversation_id"] == reply["conversation_id"]
    assert "".join(d["delta"] for d in deltas).strip() == reply["text"]
    logged = _by_id(served)[reply["message_id"]]
    assert isinstance(logged, MessageEvent) and logged.parent_id == start["user_message_id"]


def test_openai_client_with_and_without_streaming(served: Served) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=served.url + "/v1", api_key="unused-on-loopback")
    assert [m.id for m in client.models.list().data] == ["hominem"]
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}]
    whole = client.chat.completions.create(model="hominem", messages=messages, max_tokens=6, temperature=0)
    assert whole.choices[0].finish_reason in ("stop", "length")
    assert whole.usage is not None and 1 <= whole.usage.completion_tokens <= 6
    stream = client.chat.completions.create(
        model="hominem", messages=messages, max_tokens=6, temperature=0, stream=True
    )
    pieces = [c.choices[0].delta.content or "" for c in stream]
    # Greedy decoding of the same messages by the same model: the stream must spell the same reply.
    assert "".join(pieces).strip() == whole.choices[0].message.content
    events = _by_id(served)
    replies = [
        e
        for e in events.values()
        if isinstance(e, MessageEvent)
        and e.role == "assistant"
        and e.metadata.get("endpoint") == "/v1/chat/completions"
    ]
    assert len(replies) == 2
    assert replies[0].conversation_id == replies[1].conversation_id  # one chat, named by its opening


def test_reward_scores_every_response_in_one_batch_like_the_model_in_process(served: Served) -> None:
    prompt = "I keep worrying about my exam. What should I do?"
    responses = ["I'm so sorry you're going through this. Make a plan.", "Make a plan.", "Go away."]
    r = _post(served, "/reward", {"prompt": prompt, "responses": responses})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["reward_model_version"] == served.reward_model
    expected = load_current(served.settings.artifacts_dir).score_batch([(prompt, x) for x in responses])
    assert [o["scalar_preference"] for o in body["outputs"]] == pytest.approx(
        [e.scalar_preference for e in expected], abs=1e-6
    )
    bad = _post(served, "/reward", {"prompt": prompt, "responses": ["fine", "  "]})
    assert bad.status_code == 422 and "responses.1" in bad.text


def test_feedback_labels_choices_and_corrections_each_land_once(served: Served) -> None:
    first = _post(served, "/generate", {"prompt": "How many moons does Mars have?"}).json()
    mid = first["message_id"]
    r = _post(served, "/feedback", {"message_id": mid, "labels": ["😊+1", "🚀"]})
    assert r.status_code == 200 and r.json()["labels"] == sorted(["😊+1", "🚀"])
    again = _post(served, "/feedback", {"message_id": mid, "labels": ["😊+1"]}).json()
    assert again["event_ids"] == []  # a repeated click changes nothing and writes nothing
    off = _post(served, "/feedback", {"message_id": mid, "remove_labels": ["🚀"]}).json()
    assert off["labels"] == ["😊+1"] and len(off["event_ids"]) == 1

    second = _post(
        served, "/generate", {"regenerate": first["user_message_id"], "seed": 3, "temperature": 1.0}
    ).json()
    assert second["draft_index"] == 1 and second["user_message_id"] == first["user_message_id"]
    choice = _post(
        served, "/feedback", {"chosen_message_id": second["message_id"], "rejected_message_id": mid}
    )
    assert choice.status_code == 200
    fix = _post(
        served, "/feedback", {"message_id": mid, "correction": "Mars has two moons, Phobos and Deimos."}
    )
    assert fix.status_code == 200

    events = _by_id(served)
    mine = [e for e in events.values() if e.conversation_id == first["conversation_id"]]
    kinds = Counter((e.type, getattr(e, "kind", None) or e.role) for e in mine)  # type: ignore[union-attr]
    assert kinds == {
        ("message", "user"): 2,
        ("message", "assistant"): 2,
        ("feedback", "emoji"): 2,
        ("feedback", "emoji_retracted"): 1,
        ("feedback", "preference"): 1,
    }
    pref = next(e for e in mine if isinstance(e, FeedbackEvent) and e.kind == "preference")
    assert (pref.chosen_message_id, pref.rejected_message_id) == (second["message_id"], mid)
    correction = next(
        e for e in mine if isinstance(e, MessageEvent) and e.metadata.get("kind") == "correction"
    )
    assert correction.content == "Correction: Mars has two moons, Phobos and Deimos."
    assert correction.parent_id == mid
    view = httpx.get(f"{served.url}/conversations/{first['conversation_id']}").json()
    by_id = {m["message_id"]: m for m in view["messages"]}
    assert by_id[mid]["labels"] == ["😊+1"] and by_id[mid]["chosen"] is False
    assert by_id[second["message_id"]]["chosen"] is True


def test_feedback_refuses_unknown_ids_labels_and_mismatched_choices(served: Served) -> None:
    a = _post(served, "/generate", {"prompt": "One?"}).json()
    b = _post(served, "/generate", {"prompt": "Two?"}).json()
    before = len(logged_events(served.settings))
    unknown = _post(served, "/feedback", {"message_id": "nope", "labels": ["🚀"]})
    assert unknown.status_code == 404 and unknown.json()["field"] == "message_id"
    bad_label = _post(served, "/feedback", {"message_id": a["message_id"], "labels": ["👍"]})
    assert bad_label.status_code == 422 and bad_label.json()["detail"][0]["loc"][:2] == ["body", "labels"]
    different_turns = _post(
        served, "/feedback", {"chosen_message_id": a["message_id"], "rejected_message_id": b["message_id"]}
    )
    assert different_turns.status_code == 409
    on_user = _post(served, "/feedback", {"message_id": a["user_message_id"], "labels": ["🚀"]})
    assert on_user.status_code == 409 and on_user.json()["field"] == "message_id"
    assert len(logged_events(served.settings)) == before  # nothing half-written


def test_malformed_bodies_get_4xx_naming_the_field(served: Served) -> None:
    cases = [
        ({}, "prompt"),
        ({"prompt": "hi", "messages": [{"role": "user", "content": "hi"}]}, "exactly one"),
        ({"prompt": "hi", "max_tokens": 0}, "max_tokens"),
        ({"prompt": "hi", "temperature": 5}, "temperature"),
        ({"prompt": "hi", "colour": "red"}, "colour"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "role"),
    ]
    for body, field in cases:
        r = _post(served, "/generate", body)
        assert r.status_code == 422, (body, r.text)
        assert field in r.text, (body, r.text)
    too_many = _post(served, "/generate", {"prompt": "hi", "max_tokens": 10**6})
    assert too_many.status_code == 422 and "max_tokens" in too_many.text
    big = httpx.post(
        served.url + "/generate",
        content=b'{"prompt": "' + b"x" * 300_000 + b'"}',
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert big.status_code == 413
    not_json = httpx.post(
        served.url + "/feedback", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 422


def test_served_events_are_ingested_by_the_pipeline(served: Served, tmp_path: Path) -> None:
    _post(served, "/generate", {"prompt": "Ingest me."})
    log = EventLog(served.settings.data_dir / "events")
    db = TrainingDatabase(tmp_path / "ingest.duckdb")
    try:
        results = [ingest_day(db, log, day) for day in log.days()]
    finally:
        db.close()
    assert sum(r.new_messages + r.new_feedback for r in results) == len(logged_events(served.settings))
    assert all(not r.rejected for r in results)


def test_health_shows_versions_uptime_and_last_swap(served: Served) -> None:
    h = httpx.get(served.url + "/health").json()
    assert h["serving"]["adapter_version"] == served.adapter
    assert h["serving"]["reward_model_version"] == served.reward_model
    assert h["uptime_s"] >= 0 and h["last_swap"]["outcome"] in ("swapped", "unchanged")
    doc = httpx.get(served.url + "/openapi.json").json()
    assert {"/generate", "/reward", "/feedback", "/v1/chat/completions", "/v1/models", "/health"} <= set(
        doc["paths"]
    )


def test_admin_always_needs_the_key_and_off_loopback_everything_does(served: Served, monkeypatch) -> None:
    assert httpx.post(served.url + "/admin/reload").status_code == 403  # no key configured at all
    env = "HOMINEM_API_KEY"
    monkeypatch.delenv(env, raising=False)
    with pytest.raises(ConfigError, match=env):
        api_key_for(served.settings, "0.0.0.0")
    monkeypatch.setenv(env, "s3cret")
    assert api_key_for(served.settings, "0.0.0.0") == ("s3cret", True)
    assert api_key_for(served.settings, "127.0.0.1") == ("s3cret", False)
    # The same service behind a door that wants the key everywhere (as when bound off loopback).
    locked = Built(
        create_app(served.built.service, "s3cret", True), served.built.engine, served.built.service
    )
    with BackgroundServer(locked) as url:
        assert httpx.post(url + "/generate", json={"prompt": "hi"}).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert (
            httpx.post(
                url + "/feedback", json={"message_id": "x", "labels": ["🚀"]}, headers=wrong
            ).status_code
            == 401
        )
        ok = {"Authorization": "Bearer s3cret"}
        assert httpx.get(url + "/v1/models", headers=ok).status_code == 200
        assert httpx.post(url + "/admin/reload", headers=ok, timeout=60).json()["outcome"] == "unchanged"


def test_no_prompt_text_or_key_in_the_log_at_info(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    secret_prompt = "my bank PIN is 4921 zebra"
    with caplog.at_level(logging.INFO):
        r = _post(
            served, "/generate", {"prompt": secret_prompt}, headers={"Authorization": "Bearer key-7731"}
        )
        _post(served, "/feedback", {"message_id": r.json()["message_id"], "correction": secret_prompt})
        served.built.engine.reload("test")
    text = "\n".join(rec.getMessage() for rec in caplog.records)
    assert "zebra" not in text and "key-7731" not in text


def test_hominem_serve_refuses_a_public_address_without_a_key(served: Served, monkeypatch) -> None:
    from click.testing import CliRunner

    from hominem_pipeline.cli import main

    monkeypatch.delenv("HOMINEM_API_KEY", raising=False)
    out = CliRunner().invoke(main, ["serve", "--host", "0.0.0.0", "--port", "0"])
    assert out.exit_code != 0
    assert "HOMINEM_API_KEY" in out.output and "0.0.0.0" in out.output


# -- the door (issue 12) -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "192.168.1.20", "my-laptop.local", "127.0.0.1.example.com"]
)
def test_every_non_loopback_address_needs_a_key(served: Served, monkeypatch, host: str) -> None:
    monkeypatch.delenv("HOMINEM_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="HOMINEM_API_KEY"):
        api_key_for(served.settings, host)
    for loopback in ("127.0.0.1", "127.8.9.10", "::1", "localhost"):
        assert api_key_for(served.settings, loopback) == (None, False)


def test_the_key_is_compared_in_constant_time(served: Served, monkeypatch) -> None:
    """Every key check goes through hmac.compare_digest (whose time does not depend on where the strings
    first differ); a prefix, a longer key and the right key each get the right answer."""
    import hmac

    seen: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    locked = Built(
        create_app(served.built.service, "k3y-s3cret", True), served.built.engine, served.built.service
    )
    with BackgroundServer(locked) as url:
        codes = {
            given: httpx.get(url + "/v1/models", headers={"Authorization": f"Bearer {given}"}).status_code
            for given in ("k3y", "k3y-s3cret-and-more", "x" * 10, "k3y-s3cret")
        }
    assert codes == {"k3y": 401, "k3y-s3cret-and-more": 401, "x" * 10: 401, "k3y-s3cret": 200}
    assert [a for a, _ in seen] == [k.encode() for k in codes]
    assert all(b == b"k3y-s3cret" for _, b in seen)


@pytest.mark.parametrize("path", ["/generate", "/v1/chat/completions", "/feedback", "/reward"])
def test_bodies_over_the_limit_are_refused_even_without_content_length(served: Served, path: str) -> None:
    limit = served.built.engine.config.server.max_body_bytes
    before = len(logged_events(served.settings))

    def chunks() -> Iterator[bytes]:  # chunked transfer: the size is known only while reading
        yield b'{"prompt": "'
        for _ in range(limit // 4096 + 2):
            yield b"x" * 4096
        yield b'"}'

    r = httpx.post(
        served.url + path, content=chunks(), headers={"content-type": "application/json"}, timeout=30
    )
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    assert len(logged_events(served.settings)) == before


def test_no_prompt_text_or_key_in_the_log_at_info_on_any_endpoint(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "my passport number is 77 walrus"
    with caplog.at_level(logging.INFO):
        _post(
            served,
            "/v1/chat/completions",
            {"model": "hominem", "messages": [{"role": "user", "content": secret}]},
            headers={"Authorization": "Bearer key-8842"},
        )
        _post(served, "/reward", {"prompt": secret, "responses": [secret]})
        _post(served, "/generate", {"prompt": secret, "temperature": 9})  # refused: 422
        locked = Built(
            create_app(served.built.service, "key-8842", True), served.built.engine, served.built.service
        )
        with BackgroundServer(locked) as url:
            httpx.post(
                url + "/generate", json={"prompt": secret}, headers={"Authorization": "Bearer key-wrong-99"}
            )
    text = "\n".join(rec.getMessage() for rec in caplog.records)
    assert caplog.records  # the server did log at INFO (access lines, swaps): just not these
    assert "walrus" not in text and "key-8842" not in text and "key-wrong-99" not in text
