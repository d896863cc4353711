"""The `openai` teacher backend against a real OpenAI-compatible server (llama-cpp-python) on loopback.

The model behind it is the packaged SmolLM2-135M: small and weak, which is the point. With the rating schema
the server itself keeps every number on the 1-5 scale; without it, what comes back is checked and refused
when off the scale. Failure paths (a server that hangs up, hangs, errors or talks nonsense) run against real
loopback endpoints started here (`loopback_http`), which count exactly how many requests were made.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from hominem_pipeline.manifold import load_manifold
from hominem_pipeline.settings import REPO_ROOT, TeacherConfig
from hominem_pipeline.teacher.openai_backend import OpenAITeacher
from hominem_pipeline_tests.loopback_http import (
    ScriptedChatServer,
    closed_port_url,
    completion,
    counting_socket,
)

EXCHANGE = (
    "I failed my driving test for the third time.",
    "That sounds really discouraging. What went wrong this time?",
)
MORE = [
    ("Can you help me plan a birthday party for my mum?", "Sure. How many guests, and what does she enjoy?"),
    ("I think my friend is avoiding me.", "Whatever. People drift apart."),
]


@pytest.fixture(scope="module")
def small_manifold(tmp_path_factory: pytest.TempPathFactory):
    """Two dimensions keep each request short on 2 CPU cores; the code path is the same for seven."""
    raw = yaml.safe_load((REPO_ROOT / "config/schemas/reward.yaml").read_text())
    raw["dimensions"] = [d for d in raw["dimensions"] if d["name"] in ("empathy", "curiosity")]
    path = tmp_path_factory.mktemp("manifold") / "reward.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_manifold(path)


def _teacher(url: str, **kw) -> OpenAITeacher:
    # A generous timeout: on a loaded 2-core box one SmolLM2 rating has taken over a minute.
    kw.setdefault("request_timeout_s", 600)
    cfg = TeacherConfig(backend="openai", base_url=url, openai_model="smollm2", max_concurrency=1, **kw)
    return OpenAITeacher(cfg, rationale=False)


def test_generates_n_distinct_candidates_per_prompt(openai_server_url: str, small_manifold) -> None:
    t = _teacher(openai_server_url, sampling={"temperature": 0.9, "top_p": 0.95, "max_new_tokens": 24})
    out = t.generate(["Give me one tip for sleeping better."], n=2, seed=3)
    assert [len(c) for c in out] == [2]
    assert all(text.strip() for cands in out for text in cands)
    assert out[0][0] != out[0][1]  # different seeds, different samples


def test_json_object_mode_with_the_rating_schema_is_enforced_by_the_server(
    openai_server_url: str, small_manifold
) -> None:
    # The grammar, not the model, keeps the numbers on the scale: the exact request the teacher sends, at a
    # sampling temperature high enough that free text would wander, must come back on the scale every time.
    from openai import OpenAI

    from hominem_pipeline.teacher import prompts as P

    teacher = _teacher(openai_server_url, rating_mode="json_object")
    client = OpenAI(base_url=openai_server_url, api_key="unused", timeout=600, max_retries=0)
    for seed, (prompt, response) in enumerate([EXCHANGE, *MORE]):
        answer = client.chat.completions.create(
            model="smollm2",
            messages=[
                {"role": "system", "content": P.EVALUATOR_SYSTEM},
                {"role": "user", "content": P.json_rating_request(prompt, response, small_manifold, False)},
            ],
            response_format=teacher._response_format(small_manifold),
            temperature=1.5,
            seed=seed,
            max_tokens=200,
        )
        raw = json.loads(answer.choices[0].message.content)
        assert set(raw) == {"reward_vector", "reward_intensity", "safety_score"}, raw
        assert set(raw["reward_vector"]) == {"empathy", "curiosity"}, raw
        on_scale = [*raw["reward_vector"].values(), raw["reward_intensity"], raw["safety_score"]]
        assert all(isinstance(v, int) and 1 <= v <= 5 for v in on_scale), raw
    # Through the teacher: every item becomes a label in the manifold's ranges.
    for outcome in teacher.rate([EXCHANGE, *MORE], small_manifold):
        assert outcome.ok, (outcome.failure, outcome.raw_output)
        assert set(outcome.label.reward_vector) == {"empathy", "curiosity"}
        assert all(-1.0 <= v <= 1.0 for v in outcome.label.reward_vector.values())
        assert 0.0 <= outcome.label.safety_score <= 1.0 and 0.0 <= outcome.label.reward_intensity <= 1.0


def test_the_request_carries_the_schema_in_both_structured_modes(small_manifold) -> None:
    answer = json.dumps(
        {"reward_vector": {"empathy": 5, "curiosity": 2}, "reward_intensity": 4, "safety_score": 5}
    )
    for mode, expected_type in (("json_object", "json_object"), ("json_schema", "json_schema")):
        with ScriptedChatServer([(200, completion(answer))]) as server:
            [outcome] = _teacher(server.url, rating_mode=mode).rate([EXCHANGE], small_manifold)
        fmt = server.requests[0]["response_format"]
        assert fmt["type"] == expected_type
        schema = fmt["schema"] if mode == "json_object" else fmt["json_schema"]["schema"]
        assert schema["properties"]["safety_score"] == {"type": "integer", "enum": [1, 2, 3, 4, 5]}
        assert outcome.label.reward_vector == {"empathy": 1.0, "curiosity": -0.5}
        assert (outcome.label.reward_intensity, outcome.label.safety_score) == (0.75, 1.0)


def test_an_off_scale_answer_is_refused_re_asked_then_recorded(small_manifold) -> None:
    # What SmolLM2 once said without the schema's grammar: numbers off the scale. Never clamped.
    off = json.dumps(
        {"reward_vector": {"empathy": 1, "curiosity": 2}, "reward_intensity": 3, "safety_score": 9}
    )
    with ScriptedChatServer([(200, completion(off))]) as server:
        [outcome] = _teacher(server.url, rating_mode="none", max_retries=2).rate([EXCHANGE], small_manifold)
    assert outcome.label is None
    assert outcome.failure == "invalid rating: safety_score: 9 is outside the rating scale 1-5"
    assert outcome.attempts == len(server.requests) == 3  # the first ask and two re-asks
    assert "safety_score: 9 is outside" in server.requests[1]["messages"][-1]["content"]  # told why
    assert outcome.raw_output == off


def test_a_garbled_answer_is_re_asked_and_the_valid_one_kept(small_manifold) -> None:
    good = json.dumps(
        {"reward_vector": {"empathy": 3, "curiosity": 3}, "reward_intensity": 1, "safety_score": 5}
    )
    with ScriptedChatServer([(200, completion("I'd say it was nice")), (200, completion(good))]) as server:
        [outcome] = _teacher(server.url, rating_mode="json_object", max_retries=3).rate(
            [EXCHANGE], small_manifold
        )
    assert outcome.ok and outcome.attempts == len(server.requests) == 2


def test_geval_mode_reads_top_logprobs_into_scores_with_confidence(
    openai_server_url: str, small_manifold
) -> None:
    [outcome] = _teacher(openai_server_url, rating_mode="geval").rate([EXCHANGE], small_manifold)
    assert outcome.ok, outcome.failure
    assert set(outcome.label.confidence) == {"empathy", "curiosity", "reward_intensity", "safety_score"}
    assert all(0.0 <= c <= 1.0 for c in outcome.label.confidence.values())


def test_unparseable_output_is_retried_then_recorded_as_a_failure(
    openai_server_url: str, small_manifold
) -> None:
    # Plain text mode with room for only a few tokens: the JSON can never be complete.
    t = _teacher(openai_server_url, rating_mode="none", rating_max_tokens=16, max_retries=1)
    [outcome] = t.rate([EXCHANGE], small_manifold)
    assert outcome.label is None
    assert outcome.attempts == 2
    assert outcome.failure.startswith("invalid rating:")
    assert outcome.raw_output  # what the teacher actually said is kept


def test_unreachable_endpoint_is_a_recorded_failure_after_one_retry(small_manifold) -> None:
    t = _teacher(closed_port_url(), rating_mode="json_object", max_retries=3, request_timeout_s=2)
    [outcome] = t.rate([EXCHANGE], small_manifold)
    assert outcome.label is None
    assert outcome.failure.startswith("request failed: APIConnectionError")
    assert (
        outcome.attempts == 2
    )  # the request and its one transport retry; no re-ask of an unanswered question


def test_a_transport_failure_is_retried_exactly_once_in_one_place(small_manifold) -> None:
    # A server that accepts and hangs up: the client's own retries are off, re-asks are for bad answers
    # only, so max_retries=3 still means exactly two connections, not (3+1)^2.
    with counting_socket() as (url, connections):
        [outcome] = _teacher(url, rating_mode="json_object", max_retries=3, request_timeout_s=2).rate(
            [EXCHANGE], small_manifold
        )
    assert connections[0] == 2 and outcome.attempts == 2
    assert outcome.failure.startswith("request failed: APIConnectionError")


def test_a_hung_endpoint_times_out_twice_then_fails(small_manifold) -> None:
    with counting_socket(hang=True) as (url, connections):
        [outcome] = _teacher(url, rating_mode="json_object", max_retries=3, request_timeout_s=0.5).rate(
            [EXCHANGE], small_manifold
        )
    assert connections[0] == 2 and outcome.attempts == 2
    assert outcome.failure.startswith("request failed: APITimeoutError")


@pytest.mark.parametrize(("status", "requests"), [(500, 2), (503, 2), (429, 2), (400, 1), (401, 1)])
def test_server_errors_are_retried_once_and_client_errors_not_at_all(
    small_manifold, status: int, requests: int
) -> None:
    with ScriptedChatServer([(status, {"error": {"message": f"status {status}"}})]) as server:
        [outcome] = _teacher(server.url, rating_mode="json_object", max_retries=3).rate(
            [EXCHANGE], small_manifold
        )
    assert len(server.requests) == outcome.attempts == requests
    assert outcome.label is None and outcome.failure.startswith("request failed:")


def test_generation_fails_with_the_reason_after_one_retry() -> None:
    with ScriptedChatServer([(500, {"error": {"message": "boom"}})]) as server:
        t = _teacher(server.url)
        with pytest.raises(Exception, match="failed to generate: request failed: InternalServerError"):
            t.generate(["Hello?"], n=1)
    assert len(server.requests) == 2


def test_api_key_comes_from_the_named_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_TEACHER_KEY", "sk-test-123")
    cfg = TeacherConfig(backend="openai", base_url=closed_port_url(), api_key_env="MY_TEACHER_KEY")
    assert OpenAITeacher(cfg).client.api_key == "sk-test-123"
    text = Path(REPO_ROOT / "config/inference.toml").read_text()
    assert "api_key_env" in text and "sk-" not in text
