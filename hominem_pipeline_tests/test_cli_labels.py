"""`hominem labels validate|sample`: non-zero exit and a named field on any problem."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from hominem_pipeline.cli import main
from hominem_pipeline.manifold import load_manifold
from hominem_pipeline.settings import REPO_ROOT

NAMES = load_manifold(REPO_ROOT / "config/schemas/reward.yaml").names


def _row(i: int, **over) -> dict:
    row = {
        "label_id": f"l{i}",
        "trajectory_id": f"t{i}",
        "prompt": "How do I say no?",
        "response": "Start small.",
        "reward_vector": {n: 0.1 for n in NAMES},
        "reward_intensity": 0.5,
        "safety_score": 0.9,
        "rationale": "fine",
        "confidence": {"empathy": 0.4},
    }
    row.update(over)
    return row


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_validate_passes_a_good_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOMINEM_HOME", str(REPO_ROOT))
    f = _write(tmp_path / "ok.jsonl", [_row(1), _row(2)])
    result = CliRunner().invoke(main, ["labels", "validate", "--file", str(f)])
    assert result.exit_code == 0, result.output
    assert "2 labels valid" in result.output


def test_validate_names_each_problem_and_exits_non_zero(tmp_path: Path) -> None:
    bad_vector = {n: 0.1 for n in NAMES if n != "curiosity"} | {"empathy": 3.0}
    f = _write(
        tmp_path / "bad.jsonl",
        [_row(1), _row(2, reward_vector=bad_vector), _row(3, response="", safety_score=2)],
    )
    result = CliRunner().invoke(main, ["labels", "validate", "--file", str(f)])
    assert result.exit_code == 1
    out = result.output
    assert "row 2 (l2): reward_vector: Value error, missing dimensions ['curiosity']" in out
    assert "row 3 (l3): response: missing" in out
    assert "row 3 (l3): safety_score: Value error, safety_score: 2.0 is outside [0.0, 1.0]" in out
    assert "3 problem(s) in 3 rows" in out


def test_validate_reports_a_broken_line_by_number(tmp_path: Path) -> None:
    f = tmp_path / "broken.jsonl"
    f.write_text(json.dumps(_row(1)) + "\n{not json\n")
    result = CliRunner().invoke(main, ["labels", "validate", "--file", str(f)])
    assert result.exit_code == 1
    assert "broken.jsonl:2: not valid JSON" in result.output


def test_sample_prints_exchanges_with_their_vectors(tmp_path: Path) -> None:
    f = _write(tmp_path / "ok.jsonl", [_row(i) for i in range(5)])
    result = CliRunner().invoke(main, ["labels", "sample", "--file", str(f), "-n", "2", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert result.output.count("--- l") == 2
    assert "empathy=+0.10" in result.output and "safety=0.90" in result.output
