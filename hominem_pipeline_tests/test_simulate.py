"""`hominem simulate` end to end on the tiny model: the real command starts the real server and a real
Dagster instance, a persona talks to it over HTTP on a simulated clock, the schedules label the simulated
days, the retraining sensor fires on its own, the cycle is evaluated and gated, and the weekly report
measures the served adapter by the persona's rule. The tiny model's words are random, so the test asserts
the loop's mechanics and that every outcome is recorded, never what the model learned."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml

from hominem_pipeline.manifold import load_manifold
from hominem_pipeline.settings import ConfigError, Settings
from hominem_pipeline.simulation.persona import Judgement, Persona, load_persona
from hominem_pipeline.simulation.report import goals
from hominem_pipeline.simulation.run import SimulationReport, WeekRow, start_of_simulation
from hominem_pipeline_tests.reward_data import planted_rows, write_jsonl

REPO = Path(__file__).resolve().parents[1]

PERSONA = {
    "name": "tester",
    "seed": 3,
    "preference": {"description": "at most 5 words", "rule": "max_words", "max_words": 5},
    "habits": {
        "turns_per_day": 1,
        "chat_days_per_week": 7,
        "regenerate_rate": 1.0,
        "ask_facts_after_days": 1,
    },
    "facts": [
        {
            "tell": "My cat is called Pixel.",
            "question": "What is my cat called?",
            "answer": "Pixel",
            "correction": "My cat is called Pixel.",
            "new_phrasings": ["What's my cat's name?"],
        }
    ],
    "categories": {"home": ["How do I clean a window?", "How do I boil water?", "What is a good lunch?"]},
    "held_out": {"home": ["How do I fold a shirt?", "How do I water a plant?"]},
}


def test_the_persona_judges_by_its_rule_alone_and_a_bad_file_names_the_field(tmp_path: Path) -> None:
    p = Persona.model_validate(PERSONA)
    assert p.preference.score("one two three") == 1.0
    assert p.preference.score("one two three four five six seven eight nine ten") == 0.5  # graded: 5/10
    rng = random.Random(0)
    long, longer = (
        "one two three four five six seven eight nine ten",
        "one two three four five six seven eight nine ten eleven twelve",
    )
    assert p.judge("short reply", rng) == Judgement(True, 1.0)  # consistency 1.0: always its preference
    assert not p.judge(long, rng).satisfied and p.judge(long, rng).score > p.judge(longer, rng).score
    fickle = Persona.model_validate({**PERSONA, "habits": {**PERSONA["habits"], "consistency": 0.0}})
    # consistency 0.0: always the opposite: the short reply misses, a long one satisfies (the emoji it
    # taps flips, not only the graded score), and of two long drafts the longer one wins the choice
    assert fickle.judge("short reply", rng) == Judgement(False, 0.0)
    assert (
        fickle.judge(long, rng).satisfied and fickle.judge(longer, rng).score > fickle.judge(long, rng).score
    )

    bad = {**PERSONA, "preference": {"description": "x", "rule": "max_words"}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(
        ConfigError, match=r"bad.yaml: preference: .*max_words: required when rule is max_words"
    ):
        load_persona(tmp_path / "bad.yaml")
    stale = {**PERSONA, "held_out": {"home": ["How do I boil water?"]}}
    (tmp_path / "stale.yaml").write_text(yaml.safe_dump(stale))
    with pytest.raises(ConfigError, match="not fresh"):
        load_persona(tmp_path / "stale.yaml")


def test_the_goals_are_read_against_the_last_week() -> None:
    measure = {"win_rate": 0.7, "fact_nll_change": -0.1, "general_nll_change": 0.02}
    report = SimulationReport("p", "short", "2026-01-01", [WeekRow(0, "x"), WeekRow(1, "y", measure=measure)])
    assert goals(report) == [
        "win rate of current vs base: 70% (goal >= 65%) -> met",
        "fact NLL in new phrasings vs base: -10.0% (goal <= -30%) -> NOT met",
        "drift on the general set: +2.0% (goal |drift| < 5%) -> met",
        "failed requests: 0 (goal 0) -> met",
    ]


def test_simulate_runs_the_loop_on_its_own(hominem_home: Path, tmp_path: Path) -> None:
    config = hominem_home / "config"
    (config / "simulation.toml").write_text(
        "weeks = 1\nmeasure_max_new_tokens = 8\n"
        '[overrides."hominem.toml".retraining]\nnew_conversations = 2\nnew_preference_pairs = 1\n'
        '[overrides."serving.toml".generation]\nmax_new_tokens = 12\n'
        '[overrides."conversations.toml".labels]\nmax_turns_per_run = 2\n'
        '[overrides."health.toml".fast_loop]\ncron = "0 1 * * 0"\n'
    )
    persona = tmp_path / "tester.yaml"
    persona.write_text(yaml.safe_dump(PERSONA))
    home = tmp_path / "sim"
    env = {**os.environ, "HOMINEM_HOME": str(hominem_home), "HOMINEM_CONFIG_DIR": str(config)}
    cmd = [
        sys.executable,
        "-m",
        "hominem_pipeline.cli",
        "simulate",
        "--persona",
        str(persona),
        "--home",
        str(home),
    ]

    # A simulation starts from what `make run` leaves; without a reward model it says so and does nothing.
    refused = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and "has no reward model yet" in refused.stderr and not home.exists()

    settings = Settings(home=hominem_home)
    write_jsonl(settings.reward_samples_export, planted_rows(load_manifold(settings.manifold_path)))
    trained = subprocess.run(
        [sys.executable, "-m", "hominem_pipeline.cli", "reward", "train"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert not (hominem_home / "data" / "events").exists()  # the starting home is only read

    report = json.loads((home / "simulation_report.json").read_text())
    week0, week1 = report["weeks"]
    assert week0["measure"]["adapter"] is None and week0["measure"]["win_rate"] == 0.5  # base vs base
    chat = week1["chat"]
    assert chat["replies"] >= 7 * 2 and chat["facts_told"] == 1  # every turn regenerated
    assert week1["failed_requests"] == [] and "failed requests: 0 (goal 0) -> met" in done.stdout

    # The simulated days, not today, hold the events, and the daily schedule labelled them.
    first = start_of_simulation(1).date()
    chat_days = {(first + timedelta(days=i)).isoformat() for i in range(7)}
    logged = {p.stem for p in (home / "data" / "events").glob("*.jsonl")}
    assert chat_days <= logged and date.today().isoformat() not in logged
    assert (
        week1["runs"]["conversations_job"].split("/")[0] == week1["runs"]["conversations_job"].split("/")[1]
    )
    # Nightly maintenance ran every simulated night.
    assert week1["runs"]["nightly_maintenance_job"] == "7/7"
    # The user's corrections, sent over /feedback and extracted by the daily job, are learned as the user's
    # own statement said back to it, whatever the model replied. (A model that named the cat is not
    # corrected: then there is nothing to learn.)
    from hominem_pipeline.store import TrainingDatabase

    with TrainingDatabase(home / "data" / "hominem.duckdb") as db:
        answers = {p.response for p in db.get_sft_pairs(source="knowledge_update")}
    assert answers == ({"Your cat is called Pixel."} if chat["corrections"] else set())

    # The sensor fired on its own and the cycle ran to a gating decision: promoted and swapped in, or held
    # with its reason. Both are the loop working; a failed run is not.
    ok, requested = map(int, week1["runs"]["retraining_job"].split("/"))
    assert requested >= 1 and ok == requested, week1["run_failures"]
    current = week1["measure"]["adapter"]
    if current is not None:  # promoted: the running server swapped it in on its own
        assert (
            week1["serving"] == current and week1["swaps"] == 1 and week1["last_swap"]["outcome"] == "swapped"
        )
    else:  # held (by the evaluation or the health gate): published, measured, and not served
        assert week1["measure"]["candidate"] is not None and week1["rhi"] is not None
        assert week1["serving"] == "base" and week1["swaps"] == 0
    # The health index read this user's own emoji and choices (the cross-fitted user head: measured, or
    # not measured while too few), never the teacher's labels in their place.
    lrps = [
        json.loads(p.read_text())["components"]["lrps"]
        for p in (home / "artifacts" / "rhi").glob("*/reports/*.json")
        if "lrps" in json.loads(p.read_text())["components"]
    ]
    assert lrps and all("outcome_sources" not in c["inputs"] for c in lrps)
    assert all(c["inputs"].get("reading") == "user head, cross-fitted by conversation" for c in lrps)
    assert (home / "artifacts" / "plots" / "simulation_tester.png").is_file()


def test_a_simulation_never_replaces_a_folder_it_did_not_make(tmp_path: Path, hominem_home: Path) -> None:
    from hominem_pipeline.simulation.home import prepare_home

    project = Settings(home=hominem_home)
    mine = tmp_path / "precious"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="is not a simulation home"):
        prepare_home(mine, project, project, "p", fresh=True)
    assert (mine / "notes.txt").read_text() == "keep me"


def test_the_held_candidate_is_the_newest_cycles_adapter_never_an_online_update(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    """The report's "what the user would have got" is a cycle the gates held: an online update published
    after it moves only the unserved `online` pointer and is not that candidate."""
    from hominem_pipeline.adapters import AdapterRegistry
    from hominem_pipeline.simulation.measure import Meter
    from hominem_pipeline_tests.adapter_helpers import lora_model, publish

    registry = AdapterRegistry(tmp_path / "artifacts", "tiny")
    meter = Meter.__new__(Meter)  # only the registry is read: no model is loaded
    meter.registry = registry
    assert meter.newest_cycle_version() is None
    model, _ = lora_model(tiny_model_dir)
    cycle = publish(registry, model, tiny_model_dir, notes={"reward_model": "rm-x"})
    model, _ = lora_model(tiny_model_dir, seed=1)
    online = publish(
        registry, model, tiny_model_dir, parent=cycle, notes={"online_update": "5 feedback pairs"}
    )
    assert [v.version for v in registry.versions()] == [cycle, online]
    assert meter.newest_cycle_version() == cycle
