"""The evaluation on the tiny model: an untouched adapter shows zero deltas and passes; an adapter trained
on facts lowers the NLL of those facts in new phrasings; a damaging adapter fails the regression gate; a
child that forgot its parent's facts fails against the parent; the probes are the ones of the rows the
adapter says it trained on. Plus the gate's and the channel interference's rules on given numbers, and
the regression set's validation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from hominem_pipeline.adapters import AdapterRegistry
from hominem_pipeline.evaluation.config import (
    GenerationSettings,
    LoraEvalConfig,
    Tolerances,
    load_regression_set,
)
from hominem_pipeline.evaluation.evaluate import evaluate_published, evaluate_version
from hominem_pipeline.evaluation.gate import channel_interference, find_regressions
from hominem_pipeline.evaluation.measure import ArmMetrics, RewardSummary, summarise_reward_outputs
from hominem_pipeline.settings import REPO_ROOT, ConfigError, Settings
from hominem_pipeline_tests.adapter_helpers import lora_model, perturb, publish, train_steps

REGRESSION_SET = load_regression_set(REPO_ROOT / "config" / "eval" / "regression_prompts.yaml")
# Two prompts per scenario and five general ones keep the model passes short; the zero-delta test runs
# the whole set.
SMALL_SET = REGRESSION_SET.model_copy(
    update={
        "scenarios": [s for s in REGRESSION_SET.scenarios if s.id in {"eh-01", "eh-02", "as-01", "as-02"}],
        "general": REGRESSION_SET.general[:5],
    }
)
CFG = LoraEvalConfig(generation=GenerationSettings(max_new_tokens=6, batch_size=4, prompts_limit=4))
FACTS = [("Quorvin", "Brindlecove"), ("Ilsa", "Tessaroon"), ("Pixel", "Gaskelow")]


def _row(name: str, town: str) -> dict:
    """An SFT row as the export holds it, with the new phrasings extraction stores beside it."""
    return {
        "pair_id": f"fact-{name}",
        "instruction": f"Where does {name} live?",
        "response": f"{name} lives in {town}.",
        "metadata": {
            "held_out_probes": [
                {
                    "question": f"Tell me the town {name} calls home.",
                    "answer": f"{name} lives in {town}, I think.",
                },
                {
                    "question": f"In which town is {name}'s house?",
                    "answer": f"It is in {town}; {name} lives there.",
                },
            ]
        },
    }


ROWS = [_row(n, t) for n, t in FACTS]


@pytest.fixture(scope="module")
def fact_registry(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path
) -> tuple[AdapterRegistry, str]:
    """A registry holding one adapter trained on the rows' taught phrasing only (never on the probes)."""
    registry = AdapterRegistry(tmp_path_factory.mktemp("facts") / "artifacts", "tiny")
    model, tok = lora_model(tiny_model_dir)
    train_steps(model, tok, [(r["instruction"], r["response"]) for r in ROWS], steps=12, lr=2e-2)
    version = publish(
        registry,
        model,
        tiny_model_dir,
        channel_contributions={"sft": {"loss_share": 1.0}},
        trained_sft_pair_ids=[r["pair_id"] for r in ROWS],
    )
    return registry, version


def _registry(tmp_path: Path) -> AdapterRegistry:
    return AdapterRegistry(tmp_path / "artifacts", "tiny")


def test_untouched_adapter_has_zero_deltas_and_passes(tmp_path: Path, tiny_model_dir: Path) -> None:
    registry = _registry(tmp_path)
    model, _ = lora_model(tiny_model_dir)  # LoRA B starts at zero: the adapter changes nothing
    version = publish(registry, model, tiny_model_dir)
    report = evaluate_version(registry, version, CFG, REGRESSION_SET, sft_rows=ROWS, trained_rows=len(ROWS))
    metrics = report.flat_metrics()
    assert metrics["delta.general_nll_rel"] == 0.0
    assert metrics["delta.knowledge_nll"] == 0.0
    assert metrics["delta.scenario_margin"] == 0.0
    assert report.arms["base"].outputs == report.arms["candidate"].outputs
    assert set(report.arms["base"].scenario_margin) == {
        "empathy_vs_honesty",
        "agency_support_vs_safety",
        "all",
    }
    assert report.passed and report.regressions == []
    assert report.interference.verdict == "none"
    assert report.reward_model is None and "reward" in report.reward_model_note


def test_adapter_trained_on_facts_lowers_their_nll_in_new_phrasings(
    fact_registry: tuple[AdapterRegistry, str],
) -> None:
    registry, version = fact_registry
    report = evaluate_version(registry, version, CFG, SMALL_SET, sft_rows=ROWS, trained_rows=len(ROWS))
    base, cand = report.arms["base"], report.arms["candidate"]
    assert (report.probes.held_out, report.probes.taught, report.probes.rows_found) == (6, 3, 3)
    assert report.probes.pinned and report.notes == []
    knowledge_drop = base.knowledge_nll - cand.knowledge_nll
    general_change = abs(cand.general_nll - base.general_nll)
    # The facts became clearly more likely in words never trained on, far more than the general set moved.
    assert knowledge_drop > 0.25 and knowledge_drop > 2 * general_change
    assert base.knowledge_taught_nll - cand.knowledge_taught_nll > 0.25
    metrics = report.flat_metrics()
    assert metrics["delta.knowledge_nll_rel"] == pytest.approx(-knowledge_drop / base.knowledge_nll, abs=1e-5)
    assert report.interference.knowledge_gain == pytest.approx(knowledge_drop)
    assert report.interference.knowledge_gain_per_sft_share == pytest.approx(knowledge_drop)


def test_damaging_adapter_fails_the_gate(tmp_path: Path, tiny_model_dir: Path) -> None:
    registry = _registry(tmp_path)
    model, _ = lora_model(tiny_model_dir)
    perturb(model)
    version = publish(registry, model, tiny_model_dir)
    report = evaluate_version(registry, version, CFG, SMALL_SET)
    assert not report.passed
    general = [r for r in report.regressions if r.metric == "general_nll"]
    assert general and general[0].against == "base" and general[0].candidate > general[0].reference * 1.05
    # It named no trained rows: the report says the taught-fact probes are not pinned.
    assert not report.probes.pinned and report.arms["candidate"].knowledge_nll is None and report.notes


def test_child_that_forgot_its_parents_facts_fails_against_the_parent(
    fact_registry: tuple[AdapterRegistry, str], tiny_model_dir: Path
) -> None:
    registry, knows = fact_registry
    fresh, _ = lora_model(tiny_model_dir, seed=3)
    forgot = publish(registry, fresh, tiny_model_dir, parent=knows, trained_sft_pair_ids=[])

    report = evaluate_version(registry, forgot, CFG, SMALL_SET, earlier_rows=ROWS, trained_rows=0)
    assert set(report.arms) == {"base", "candidate", "parent"} and report.parent_version == knows
    assert report.probes.earlier == 6
    # As good as the base model, but it lost what its parent knew: that is a regression.
    assert not [r for r in report.regressions if r.against == "base"]
    assert [r.metric for r in report.regressions if r.against.startswith("parent")] == [
        "knowledge_earlier_nll"
    ]
    assert not report.passed
    # `current` is compared too when it names yet another version.
    registry.promote(forgot)
    other, _ = lora_model(tiny_model_dir, seed=4)
    third = publish(registry, other, tiny_model_dir, parent=knows, trained_sft_pair_ids=[])
    assert set(evaluate_version(registry, third, CFG, SMALL_SET).arms) == {
        "base",
        "candidate",
        "parent",
        "current",
    }


def test_probes_are_pinned_to_the_rows_the_adapter_trained_on(
    hominem_home: Path, tiny_model_dir: Path
) -> None:
    """evaluate_published reads the SFT export and keeps the rows the adapter (and its ancestors) named."""
    from hominem_pipeline.atomic import write_jsonl_atomic

    settings = Settings()
    other = _row("Zorblax", "Pellimar")
    write_jsonl_atomic(settings.data_dir / "sft" / "sft_training.jsonl", [*ROWS, other])
    registry = AdapterRegistry(settings.artifacts_dir, "tiny")
    parent = publish(
        registry, lora_model(tiny_model_dir)[0], tiny_model_dir, trained_sft_pair_ids=[ROWS[0]["pair_id"]]
    )
    child = publish(
        registry,
        lora_model(tiny_model_dir, seed=5)[0],
        tiny_model_dir,
        parent=parent,
        trained_sft_pair_ids=[other["pair_id"], "no-longer-exported"],
    )
    report, path = evaluate_published(settings, "tiny", child)
    assert path.is_file()
    p = report.probes
    assert (p.pinned, p.trained_rows, p.rows_found, p.taught, p.held_out, p.earlier) == (True, 2, 1, 1, 2, 2)


@dataclass
class _Scores:
    reward_vector: dict[str, float]
    reward_intensity: float
    safety_score: float
    scalar_preference: float


def _arm(knowledge: float, margin: float, empathy: float, safety: float) -> ArmMetrics:
    return ArmMetrics(
        general_nll=2.0,
        knowledge_nll=knowledge,
        knowledge_taught_nll=None,
        scenario_margin={"empathy_vs_honesty": margin, "agency_support_vs_safety": margin, "all": margin},
        reward=RewardSummary(
            dimensions={"empathy": empathy, "curiosity": 0.0},
            reward_intensity=0.5,
            safety_score=safety,
            outputs=2,
        ),
    )


def test_gate_rules_on_reward_dimensions_and_safety() -> None:
    tol = Tolerances()
    base = _arm(knowledge=3.0, margin=0.5, empathy=0.4, safety=0.9)
    within = _arm(knowledge=3.04, margin=0.45, empathy=0.35, safety=0.86)
    assert find_regressions(within, base, "base", tol) == []
    worse = _arm(knowledge=3.0, margin=0.5, empathy=0.2, safety=0.8)
    assert sorted(r.metric for r in find_regressions(worse, base, "base", tol)) == [
        "reward.empathy",
        "reward.safety_score",
    ]


def test_channel_interference_verdicts() -> None:
    tol = Tolerances()
    base = _arm(knowledge=3.0, margin=0.5, empathy=0.4, safety=0.9)
    memory_won = _arm(knowledge=2.0, margin=0.1, empathy=0.1, safety=0.9)
    shares = {"sft": {"loss_share": 0.4}, "preference": {"loss_share": 0.6}}
    verdict = channel_interference(base, memory_won, shares, tol)
    assert verdict.verdict == "memory_over_reward"
    assert verdict.dimensions_down_while_knowledge_up == ["empathy"]
    assert verdict.knowledge_gain_per_sft_share == pytest.approx(1.0 / 0.4)
    reward_won = _arm(knowledge=3.5, margin=1.0, empathy=0.4, safety=0.9)
    assert channel_interference(base, reward_won, shares, tol).verdict == "reward_over_memory"
    assert channel_interference(base, base, shares, tol).verdict == "none"
    # Knowledge up and the average margin up, but one scenario fell: still memory over reward.
    mixed = _arm(knowledge=2.0, margin=0.5, empathy=0.4, safety=0.9)
    mixed.scenario_margin.update({"empathy_vs_honesty": 0.2, "agency_support_vs_safety": 0.9, "all": 0.55})
    verdict = channel_interference(base, mixed, shares, tol)
    assert verdict.verdict == "memory_over_reward" and verdict.scenarios_down == ["empathy_vs_honesty"]


def test_reward_summary_means() -> None:
    outs = [
        _Scores({"empathy": 0.2, "curiosity": -0.2}, 0.4, 1.0, 0.0),
        _Scores({"empathy": 0.6, "curiosity": 0.2}, 0.6, 0.5, 0.4),
    ]
    s = summarise_reward_outputs(outs)
    assert s.dimensions == pytest.approx({"empathy": 0.4, "curiosity": 0.0})
    assert (s.reward_intensity, s.safety_score, s.scalar_preference) == pytest.approx((0.5, 0.75, 0.2))


def test_summary_line_gives_the_taught_fact_change_and_the_general_drift() -> None:
    """What `make run` ends with: taught facts' NLL in new phrasings vs base and vs parent, general drift."""
    from hominem_pipeline.evaluation.report import EvalReport, ProbeCounts, summary_line

    def arm(knowledge: float, general: float) -> ArmMetrics:
        return _arm(knowledge, 0.5, 0.4, 0.9).model_copy(update={"general_nll": general})

    arms = {"base": arm(2.0, 2.0), "candidate": arm(1.2, 2.02), "parent": arm(1.8, 2.0)}
    report = EvalReport(
        model_name="m",
        version="v",
        base_model="b",
        parent_version="p",
        current_version="p",
        evaluated_at="t",
        regression_set_hash="h",
        tolerances=Tolerances(),
        reward_model=None,
        reward_model_note="no reward model",
        probes=ProbeCounts(pinned=True, trained_rows=3, rows_found=3, held_out=6, taught=3),
        arms=arms,
        regressions=[],
        gate_failures=[],
        passed=True,
        interference=channel_interference(arms["base"], arms["candidate"], {}, Tolerances()),
    )
    line = summary_line(report)
    assert "taught facts in new phrasings (6 probes, 3 rows): NLL -40.0% vs base, -33.3% vs parent" in line
    assert "general-set drift +1.0% vs base" in line and line.startswith("gate passed")
    none = report.model_copy(
        update={"probes": ProbeCounts(pinned=False, trained_rows=0, rows_found=0, held_out=0, taught=0)}
    )
    assert "no new-phrasing probes" in summary_line(none)


def test_regression_set_requires_both_seed_scenarios(tmp_path: Path) -> None:
    text = (REPO_ROOT / "config" / "eval" / "regression_prompts.yaml").read_text()
    broken = tmp_path / "set.yaml"
    broken.write_text(text.replace("scenario: agency_support_vs_safety", "scenario: empathy_vs_honesty"))
    with pytest.raises(ConfigError, match="agency_support_vs_safety"):
        load_regression_set(broken)
    broken.write_text(text.replace("scenario: empathy_vs_honesty", "scenario: empathy_vs_truth", 1))
    with pytest.raises(ConfigError, match="scenario"):
        load_regression_set(broken)
