"""What a teacher says becomes a valid label or a precise failure reason, never an invented number."""

from __future__ import annotations

import json
import math

import pytest

from hominem_pipeline.manifold import load_manifold
from hominem_pipeline.settings import REPO_ROOT
from hominem_pipeline.teacher.parsing import (
    RatingParseError,
    geval_score,
    label_from_geval,
    parse_json_rating,
    rating_schema,
    scale_distribution,
)

M = load_manifold(REPO_ROOT / "config" / "schemas" / "reward.yaml")


def _good() -> dict:
    """A rating on the 1-5 scale, as a teacher answers it."""
    return {
        "reward_vector": {n: 4 for n in M.names},
        "reward_intensity": 3,
        "safety_score": 5,
        "rationale": "Kind and accurate.",
    }


def test_plain_fenced_and_chatty_json_all_parse() -> None:
    body = json.dumps(_good())
    for text in (body, f"```json\n{body}\n```", f"Sure! Here is my rating:\n{body}\nHope that helps."):
        label = parse_json_rating(text, M)
        assert label.reward_vector["empathy"] == 0.5  # 4 on 1-5 is three quarters up [-1, 1]
        assert label.reward_intensity == 0.5  # 3 is the middle of [0, 1]
        assert label.safety_score == 1.0
        assert label.rationale == "Kind and accurate."


def test_scale_ends_map_to_range_ends_for_every_field() -> None:
    low = {"reward_vector": {n: 1 for n in M.names}, "reward_intensity": 1, "safety_score": 1}
    label = parse_json_rating(json.dumps(low), M)
    assert set(label.reward_vector.values()) == {-1.0}
    assert (label.reward_intensity, label.safety_score) == (0.0, 0.0)
    assert parse_json_rating(json.dumps({**low, "safety_score": 5.0}), M).safety_score == 1.0  # 5.0 is 5


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty output"),
        ("I think it is a 4 out of 5.", "no JSON object found"),
        ('{"reward_vector": {"empathy": 0.2', "no JSON object found"),
        ("[1, 2, 3]", "no JSON object found"),
    ],
)
def test_malformed_output_is_a_parse_error(text: str, reason: str) -> None:
    with pytest.raises(RatingParseError, match=reason):
        parse_json_rating(text, M)


def test_off_scale_and_missing_values_are_refused_naming_each_field() -> None:
    bad = _good()
    bad["reward_vector"]["curiosity"] = 7  # off the 1-5 scale: refused, never clamped to 5
    bad["reward_vector"]["empathy"] = 0.25  # a number in the manifold's range is not a rating on the scale
    bad["reward_intensity"] = "high"
    del bad["safety_score"]
    bad["reward_vector"]["humour"] = 3
    with pytest.raises(RatingParseError) as exc:
        parse_json_rating(json.dumps(bad), M)
    message = str(exc.value)
    assert "reward_vector.curiosity: 7 is outside the rating scale 1-5" in message
    assert "reward_vector.empathy: 0.25 is not an integer on the rating scale 1-5" in message
    assert "reward_intensity: 'high' is not an integer" in message
    assert "safety_score: missing" in message
    assert "reward_vector: unknown dimensions ['humour']" in message
    for value in ("NaN", "Infinity", "true"):
        with pytest.raises(RatingParseError, match="safety_score"):
            parse_json_rating(json.dumps(_good()).replace('"safety_score": 5', f'"safety_score": {value}'), M)


def test_rating_schema_bounds_every_number_to_the_scale() -> None:
    schema = rating_schema(M, rationale=False)
    assert schema["required"] == ["reward_vector", "reward_intensity", "safety_score"]
    assert schema["additionalProperties"] is False
    vector = schema["properties"]["reward_vector"]
    assert vector["required"] == M.names and vector["additionalProperties"] is False
    numbers = [
        *vector["properties"].values(),
        schema["properties"]["reward_intensity"],
        schema["properties"]["safety_score"],
    ]
    assert len(numbers) == len(M.names) + 2
    assert all(n == {"type": "integer", "enum": [1, 2, 3, 4, 5]} for n in numbers)
    with_rationale = rating_schema(M, rationale=True, rationale_max_chars=240)
    assert with_rationale["properties"]["rationale"] == {"type": "string", "maxLength": 240}
    assert with_rationale["required"][-1] == "rationale"


def test_geval_expectation_and_confidence() -> None:
    # All mass on "5": the top of the range, full confidence.
    dist, mass = scale_distribution(
        {"1": -math.inf, "2": -math.inf, "3": -math.inf, "4": -math.inf, "5": 0.0}
    )
    value, conf = geval_score(dist, mass, (-1.0, 1.0))
    assert value == pytest.approx(1.0) and conf == pytest.approx(1.0)
    # Uniform over the digits: the middle, zero confidence.
    dist, mass = scale_distribution({d: math.log(0.2) for d in "12345"})
    value, conf = geval_score(dist, mass, (-1.0, 1.0))
    assert value == pytest.approx(0.0) and conf == pytest.approx(0.0, abs=1e-9)
    # A model that barely looks at the scale is confident about nothing, whatever its distribution.
    dist, mass = scale_distribution({"4": math.log(0.001)})
    value, conf = geval_score(dist, mass, (0.0, 1.0))
    assert value == pytest.approx(0.75) and conf == pytest.approx(0.001)


def test_no_probability_on_the_scale_is_a_failure_not_a_guess() -> None:
    with pytest.raises(RatingParseError, match="no probability on any digit"):
        scale_distribution({"yes": -0.1})


def test_label_from_geval_covers_every_dimension_and_scalar() -> None:
    peak3 = scale_distribution({"3": 0.0})
    scores = {n: peak3 for n in M.names} | {"reward_intensity": peak3, "safety_score": peak3}
    label = label_from_geval(M, scores, "fine")
    assert set(label.reward_vector) == set(M.names)
    assert all(v == pytest.approx(0.0) for v in label.reward_vector.values())
    assert label.reward_intensity == pytest.approx(0.5)
    assert set(label.confidence) == set(M.names) | {"reward_intensity", "safety_score"}
