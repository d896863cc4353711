"""The reward manifold is one config file; labels are validated against it with errors that name the field."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from hominem_pipeline.manifold import load_manifold, validate_label
from hominem_pipeline.settings import REPO_ROOT

DEFAULT = REPO_ROOT / "config" / "schemas" / "reward.yaml"
SEVEN = [
    "empathy",
    "social_coherence",
    "agency_support",
    "epistemic_integrity",
    "harm_avoidance",
    "narrative_alignment",
    "curiosity",
]


def _label(names: list[str], value: float = 0.5) -> dict:
    return {
        "reward_vector": {n: value for n in names},
        "reward_intensity": 0.7,
        "safety_score": 0.9,
        "rationale": "ok",
    }


def test_default_manifold_has_the_seven_dimensions_and_both_scalars() -> None:
    m = load_manifold(DEFAULT)
    assert m.names == SEVEN
    assert m.reward_intensity.range == (0.0, 1.0)
    assert m.safety_score.range == (0.0, 1.0)
    label = validate_label(_label(SEVEN), m)
    # The scalar aggregate is derived from the vector when the teacher does not give it.
    assert label.scalar_preference == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["reward_vector"].pop("curiosity"), "missing dimensions ['curiosity']"),
        (
            lambda d: d["reward_vector"].update(empathy=1.5),
            "reward_vector.empathy: 1.5 is outside [-1.0, 1.0]",
        ),
        (lambda d: d["reward_vector"].update(humour=0.1), "unknown dimensions ['humour']"),
        (lambda d: d.update(reward_intensity=-0.1), "reward_intensity: -0.1 is outside [0.0, 1.0]"),
        (lambda d: d.update(safety_score=math.nan), "safety_score: NaN is not a score"),
        (lambda d: d.pop("safety_score"), "safety_score"),
        (lambda d: d["reward_vector"].update(empathy="very"), "reward_vector.empathy"),
    ],
)
def test_bad_labels_fail_naming_the_field(mutate, field: str) -> None:
    m = load_manifold(DEFAULT)
    data = _label(SEVEN)
    mutate(data)
    with pytest.raises(ValidationError) as exc:
        validate_label(data, m)
    assert field in str(exc.value)


def test_changing_the_dimension_list_in_config_changes_validation_and_the_teacher_schema(
    tmp_path: Path,
) -> None:
    raw = yaml.safe_load(DEFAULT.read_text())
    raw["dimensions"] = [d for d in raw["dimensions"] if d["name"] in ("empathy", "curiosity")]
    raw["dimensions"].append({"name": "humour", "range": [0, 1], "description": "Is it funny?"})
    path = tmp_path / "reward.yaml"
    path.write_text(yaml.safe_dump(raw))
    m = load_manifold(path)
    assert m.names == ["empathy", "curiosity", "humour"]
    assert m.schema_hash != load_manifold(DEFAULT).schema_hash
    assert validate_label(_label(["empathy", "curiosity", "humour"]), m).reward_vector["humour"] == 0.5
    with pytest.raises(ValidationError, match="missing dimensions"):
        validate_label(_label(SEVEN), m)
    schema = m.json_schema_for_rating()
    assert schema["properties"]["reward_vector"]["required"] == ["empathy", "curiosity", "humour"]
    assert schema["properties"]["reward_vector"]["properties"]["humour"]["minimum"] == 0


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r["dimensions"].append(dict(r["dimensions"][0])), "duplicate names ['empathy']"),
        (lambda r: r["dimensions"][0].update(range=[1, -1]), "low < high"),
        (lambda r: r["scalar_preference"].update(weights={"nope": 1.0}), "unknown dimensions ['nope']"),
        (lambda r: r.pop("safety_score"), "safety_score"),
    ],
)
def test_invalid_manifold_files_are_refused_with_the_reason(tmp_path: Path, edit, message: str) -> None:
    raw = yaml.safe_load(DEFAULT.read_text())
    edit(raw)
    path = tmp_path / "reward.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match="invalid reward manifold") as exc:
        load_manifold(path)
    assert message in str(exc.value)
