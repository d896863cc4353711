"""The `openai` teacher backend against a real OpenAI-compatible server (llama-cpp-python) on loopback.

The model behind it is the packaged SmolLM2-135M: small and weak, which is the point. Every rating comes back
either valid against the manifold or as a failure with its reason.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hominem_pipeline.manifold import load_manifold
from hominem_pipeline.settings import REPO_ROOT, TeacherConfig
from hominem_pipeline.teacher.openai_backend import OpenAITeacher

EXCHANGE = ("I failed my driving test for the third time.", "That sounds really discouraging. What went wrong this time?")


@pytest.fixture(scope="module")
def small_manifold(tmp_path_factory: pytest.TempPathFactory):
    """Two dimensions keep each request short on 2 CPU cores; the code path is the same for seven."""
    raw = yaml.safe_load((REPO_ROOT / "config/schemas/reward.yaml").read_text())
    raw["dimensions"] = [d for d in raw["dimensions"] if d["name"] in ("empathy", "curiosity")]
    path = tmp_path_factory.mktemp("manifold") / "reward.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_manifold(path)


def _teacher(url: str, **kw) -> OpenAITeacher:
    cfg = TeacherConfig(backend="openai", base_url=url, openai_model="smollm2", max_concurrency=1, **kw)
    return OpenAITeacher(cfg, rationale=False)


def test_generates_n_distinct_candidates_per_prompt(openai_server_url: str, small_manifold) -> None:
    t = _teacher(openai_server_url, sampling={"temperature": 0.9, "top_p": 0.95, "max_new_tokens": 24})
    out = t.generate(["Give me one tip for sleeping better."], n=2, seed=3)
    assert [len(c) for c in out] == [2]
    assert all(text.strip() for cands in out for text in cands)
    assert out[0][0] != out[0][1]  # different seeds, different samples


def test_json_object_mode_yields_a_schema_valid_label(openai_server_url: str, small_manifold) -> None:
    [outcome] = _teacher(openai_server_url, rating_mode="json_object").rate([EXCHANGE], small_manifold)
    assert outcome.ok, outcome.failure
    assert set(outcome.label.reward_vector) == {"empathy", "curiosity"}
    assert all(-1.0 <= v <= 1.0 for v in outcome.label.reward_vector.values())
    assert 0.0 <= outcome.label.safety_score <= 1.0
    assert outcome.raw_output and "reward_vector" in outcome.raw_output


def test_geval_mode_reads_top_logprobs_into_scores_with_confidence(openai_server_url: str, small_manifold) -> None:
    [outcome] = _teacher(openai_server_url, rating_mode="geval").rate([EXCHANGE], small_manifold)
    assert outcome.ok, outcome.failure
    assert set(outcome.label.confidence) == {"empathy", "curiosity", "reward_intensity", "safety_score"}
    assert all(0.0 <= c <= 1.0 for c in outcome.label.confidence.values())


def test_unparseable_output_is_retried_then_recorded_as_a_failure(openai_server_url: str, small_manifold) -> None:
    # Plain text mode with room for only a few tokens: the JSON can never be complete.
    t = _teacher(openai_server_url, rating_mode="none", rating_max_tokens=16, max_retries=1)
    [outcome] = t.rate([EXCHANGE], small_manifold)
    assert outcome.label is None
    assert outcome.attempts == 2
    assert outcome.failure.startswith("invalid rating:")
    assert outcome.raw_output  # what the teacher actually said is kept


def test_unreachable_endpoint_is_a_recorded_failure(small_manifold) -> None:
    t = _teacher("http://127.0.0.1:9/v1", rating_mode="json_object", max_retries=0, request_timeout_s=2)
    [outcome] = t.rate([EXCHANGE], small_manifold)
    assert outcome.label is None
    assert "request failed: APIConnectionError" in outcome.failure


def test_api_key_comes_from_the_named_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_TEACHER_KEY", "sk-test-123")
    cfg = TeacherConfig(backend="openai", base_url="http://127.0.0.1:9/v1", api_key_env="MY_TEACHER_KEY")
    assert OpenAITeacher(cfg).client.api_key == "sk-test-123"
    text = Path(REPO_ROOT / "config/inference.toml").read_text()
    assert "api_key_env" in text and "sk-" not in text
