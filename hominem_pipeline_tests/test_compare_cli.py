"""`hominem compare --prompt`: base vs LoRA side by side with a word diff, and reward scores when a reward
model is published (said plainly when not). Also the evaluation's alignment metrics with a real reward
model (trained on planted-signal labels with the packaged MiniLM embedder)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hominem_pipeline.adapters import AdapterRegistry, model_name_for_spec
from hominem_pipeline.cli import main
from hominem_pipeline.embedding import Embedder
from hominem_pipeline.evaluation.compare import word_diff
from hominem_pipeline.evaluation.config import GenerationSettings, LoraEvalConfig, load_regression_set
from hominem_pipeline.evaluation.evaluate import evaluate_version
from hominem_pipeline.evaluation.report import report_markdown
from hominem_pipeline.manifold import load_manifold
from hominem_pipeline.reward_model import RewardModel, load_current
from hominem_pipeline.reward_model.config import RewardModelConfig
from hominem_pipeline.reward_model.dataset import sample_from_row, teacher_pairs
from hominem_pipeline.reward_model.registry import publish as publish_reward_model
from hominem_pipeline.reward_model.train import TrainingResult, train_reward_model
from hominem_pipeline.settings import REPO_ROOT
from hominem_pipeline_tests.adapter_helpers import lora_model, perturb, publish
from hominem_pipeline_tests.reward_data import planted_rows

PROMPT = "I feel lonely since I moved to a new city. Any advice?"


@pytest.fixture(scope="module")
def trained_reward_model() -> TrainingResult:
    manifold = load_manifold(REPO_ROOT / "config" / "schemas" / "reward.yaml")
    samples = [sample_from_row(r, manifold) for r in planted_rows(manifold)]
    return train_reward_model(
        samples,
        teacher_pairs(samples, 0.05),
        manifold,
        Embedder("embedded:all-minilm-l6-v2"),
        RewardModelConfig(),
    )


def _registry_with_damaging_current(home: Path, tiny_model_dir: Path) -> tuple[AdapterRegistry, str]:
    registry = AdapterRegistry(home / "artifacts", model_name_for_spec(str(tiny_model_dir)))
    model, _ = lora_model(tiny_model_dir)
    perturb(model)  # outputs visibly differ from the base model's
    version = publish(registry, model, tiny_model_dir)
    registry.promote(version)
    return registry, version


def test_word_diff_marks_removed_and_added_words() -> None:
    assert (
        word_diff("the cat sat on the mat", "the dog sat on the mat today")
        == "the [-cat-] {+dog+} sat on the mat {+today+}"
    )
    assert word_diff("same words", "same words") == "same words"


def test_compare_without_reward_model(hominem_home: Path, tiny_model_dir: Path) -> None:
    _registry, version = _registry_with_damaging_current(hominem_home, tiny_model_dir)
    runner = CliRunner()
    res = runner.invoke(main, ["compare", "--prompt", PROMPT, "--max-new-tokens", "6"])
    assert res.exit_code == 0, res.output
    assert f"adapter: {version} (current)" in res.output
    assert "BASE + LoRA" in res.output and "diff ([-base only-] {+LoRA only+}):" in res.output
    assert "reward scores: not shown: no reward model published" in res.output

    as_json = json.loads(
        runner.invoke(main, ["compare", "-p", PROMPT, "--max-new-tokens", "6", "--json"]).stdout
    )
    assert as_json["base"]["output"] != as_json["lora"]["output"]
    assert "{+" in as_json["diff"] or "[-" in as_json["diff"]
    assert as_json["base"]["reward_vector"] is None and as_json["reward_model"] is None

    missing = runner.invoke(main, ["compare", "-p", PROMPT, "--adapter", "no-such-pointer"])
    assert missing.exit_code != 0 and "no adapter version or pointer" in missing.output


def test_compare_with_reward_model(
    hominem_home: Path, tiny_model_dir: Path, trained_reward_model: TrainingResult
) -> None:
    _registry, version = _registry_with_damaging_current(hominem_home, tiny_model_dir)
    published = publish_reward_model(trained_reward_model, hominem_home / "artifacts")
    assert published.accepted
    runner = CliRunner()
    res = runner.invoke(main, ["compare", "-p", PROMPT, "--adapter", version[:8], "--max-new-tokens", "6"])
    assert res.exit_code == 0, res.output
    assert f"reward scores (reward model {published.version})" in res.output
    assert res.output.count("intensity=") == 2 and "empathy=" in res.output

    data = json.loads(
        runner.invoke(main, ["compare", "-p", PROMPT, "--max-new-tokens", "6", "--json"]).stdout
    )
    names = load_manifold(REPO_ROOT / "config" / "schemas" / "reward.yaml").names
    rm = load_current(hominem_home / "artifacts")
    for side in ("base", "lora"):
        assert set(data[side]["reward_vector"]) == set(names)
        expected = rm.score(PROMPT, data[side]["output"])
        assert data[side]["safety_score"] == pytest.approx(expected.safety_score)
        assert data[side]["reward_vector"]["empathy"] == pytest.approx(expected.reward_vector["empathy"])


def test_evaluation_scores_alignment_with_the_reward_model(
    tmp_path: Path, tiny_model_dir: Path, trained_reward_model: TrainingResult
) -> None:
    published = publish_reward_model(trained_reward_model, tmp_path / "artifacts")
    reward_model = RewardModel.load(published.path)
    registry = AdapterRegistry(tmp_path / "artifacts", "tiny")
    model, _ = lora_model(tiny_model_dir)
    version = publish(registry, model, tiny_model_dir)
    full = load_regression_set(REPO_ROOT / "config" / "eval" / "regression_prompts.yaml")
    small = full.model_copy(
        update={"scenarios": full.scenarios[:1] + full.scenarios[4:5], "general": full.general[:2]}
    )
    cfg = LoraEvalConfig(
        generation=GenerationSettings(max_new_tokens=5, prompts_limit=3), require_reward_model=True
    )

    report = evaluate_version(
        registry, version, cfg, small, reward_model=reward_model, reward_model_note="rm"
    )
    base, cand = report.arms["base"].reward, report.arms["candidate"].reward
    assert base is not None and cand is not None and base.outputs == 3
    assert set(base.dimensions) == set(reward_model.manifold.names)
    assert base.dimensions == cand.dimensions and base.safety_score == cand.safety_score  # untouched adapter
    assert report.passed and report.reward_model == published.version
    assert "reward: empathy" in report_markdown(report)

    # With require_reward_model on, an evaluation without one fails the gate and says why.
    blind = evaluate_version(
        registry, version, cfg, small, reward_model=None, reward_model_note="no reward model published"
    )
    assert not blind.passed and "require_reward_model" in blind.gate_failures[0]
