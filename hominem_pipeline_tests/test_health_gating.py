"""The gates that read the Reward Health Index, as seed 000 phase 10 sets them, and the online update on
the tiny model: a contradictory feedback batch (preferences pulling two dimensions against each other)
drives partial RHI down and is not applied; a coherent one passes and moves the `online` pointer."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hominem_pipeline.adapters import AdapterRegistry, model_name_for_spec
from hominem_pipeline.health.components import Component
from hominem_pipeline.health.config import Consolidation, FastLoop, HealthConfig, SlowLoop
from hominem_pipeline.health.gate import (
    consolidation_decision,
    dip_decision,
    fast_loop_decision,
    read_decisions,
    read_online_state,
    slow_loop_decision,
)
from hominem_pipeline.health.online import online_update, unlearned_feedback
from hominem_pipeline.health.report import ComponentValue, HealthReport, read_history
from hominem_pipeline.records import PreferencePair
from hominem_pipeline.settings import REPO_ROOT, Settings


@pytest.mark.parametrize(
    ("partial", "frozen", "actions"),
    [
        (0.60, False, ["apply"]),
        (0.50, False, ["apply"]),
        (0.45, False, ["skip"]),
        (0.25, False, ["skip", "rollback"]),
        (0.10, False, ["skip", "rollback", "freeze"]),
        (None, False, ["skip"]),
        (0.45, True, ["skip", "stay_frozen"]),
        (0.55, True, ["unfreeze", "apply"]),
    ],
)
def test_fast_loop_thresholds(partial: float | None, frozen: bool, actions: list[str]) -> None:
    decision = fast_loop_decision(partial, frozen, FastLoop())
    assert decision.actions == actions
    assert decision.inputs["partial"] == partial and decision.inputs["skip"] == 0.5


def _report(rhi: float | None, version: str = "v1") -> HealthReport:
    return HealthReport(
        model_name="m",
        version=version,
        kind="cycle",
        measured_at="2026-01-01T00:00:00",
        rhi=rhi,
        components={"dcs": ComponentValue(value=rhi)},
        weights=HealthConfig().weights,
    )


def test_consolidation_only_above_threshold_and_a_dip_reverts() -> None:
    cfg = Consolidation()
    assert consolidation_decision(_report(0.71), "v1", cfg).actions == ["consolidate"]
    held = consolidation_decision(_report(0.70), "v1", cfg)
    assert held.actions == ["hold"] and held.inputs["rhi"] == 0.70 and held.inputs["threshold"] == 0.70
    assert consolidation_decision(_report(0.9, "other"), "v1", cfg).actions == ["hold"]  # not this version's
    assert consolidation_decision(None, "v1", cfg).actions == ["hold"]
    assert consolidation_decision(_report(None), "v1", cfg).actions == ["hold"]
    assert dip_decision(_report(0.65), cfg).actions == ["revert"]
    assert dip_decision(_report(0.80), cfg).actions == ["keep"]


def _nights(values: list[float]) -> list[dict]:
    return [
        {"measured_at": f"2026-01-{i + 1:02d}T03:30:00", "rhi": v, "kind": "nightly"}
        for i, v in enumerate(values)
    ]


def test_slow_loop_lowers_the_learning_rate_after_three_falling_nights() -> None:
    cfg = SlowLoop()
    start = {"learning_rate_factor": 1.0, "anchor_at": None}
    two_falls, state = slow_loop_decision(_nights([0.9, 0.85, 0.8]), start, cfg)
    assert two_falls.actions == ["continue"] and state == start
    three, state = slow_loop_decision(_nights([0.9, 0.85, 0.8, 0.75]), start, cfg)
    assert three.actions == ["lower_learning_rate"] and state["learning_rate_factor"] == 0.5
    assert three.inputs["nightly_rhi"] == [0.9, 0.85, 0.8, 0.75]
    # One more falling night is not three new ones: the next lowering waits for three more.
    again, same = slow_loop_decision(_nights([0.9, 0.85, 0.8, 0.75, 0.7]), state, cfg)
    assert again.actions == ["continue"] and same["learning_rate_factor"] == 0.5
    later, lowered = slow_loop_decision(_nights([0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6]), state, cfg)
    assert later.actions == ["lower_learning_rate"] and lowered["learning_rate_factor"] == 0.25
    rising, _ = slow_loop_decision(_nights([0.6, 0.7, 0.8, 0.9]), start, cfg)
    assert rising.actions == ["continue"] and "rising" in rising.reason


WARM = "I'm sorry that happened. It makes sense to feel hurt, and you deserve support."
BLUNT = "That is your own fault. Move on."


def _batch(deltas: list[dict[str, float]]) -> list[PreferencePair]:
    """Feedback pairs on one prompt. A delta with empathy < 0 swaps chosen and rejected: that pair's user
    preferred the blunt answer, for the sake of the other dimension."""
    now = datetime.now(UTC)
    out = []
    for i, d in enumerate(deltas):
        chosen, rejected = (WARM, BLUNT) if d["empathy"] > 0 else (BLUNT, WARM)
        out.append(
            PreferencePair(
                prompt=f"My friend ignored me today ({i % 2}). Was it my fault?",
                chosen=chosen,
                rejected=rejected,
                source="feedback",
                reward_intensity=0.8,
                safety_score=0.9,
                dimension_deltas=d,
                created_at=now,
            )
        )
    return out


def _current(home: Path, tiny_model_dir: Path) -> str:
    """A `current` adapter for the online updates to continue from."""
    from hominem_pipeline.adapters import model_name_for_spec
    from hominem_pipeline_tests.adapter_helpers import lora_model, publish

    registry = AdapterRegistry(home / "artifacts", model_name_for_spec(str(tiny_model_dir)))
    model, _ = lora_model(tiny_model_dir)
    return registry.promote(publish(registry, model, tiny_model_dir))


def _update(home: Path, tiny_model_dir: Path, pairs: list[PreferencePair], user: Component | None = None):
    from hominem_pipeline.training.run import load_config

    settings = Settings(home=home)
    health = HealthConfig(fast_loop=FastLoop(max_steps=2))  # two steps: the least GVS can measure
    return online_update(
        settings,
        pairs,
        health=health,
        training_config=load_config(settings),
        base_model_path=str(tiny_model_dir),
        user=user,
    )


def test_a_user_who_contradicts_itself_is_not_learned_from(hominem_home: Path, tiny_model_dir: Path) -> None:
    """Partial RHI reads the gradients, and a batch of one steady preference has steady gradients whoever
    gave it. The user's own judgements say whether they can be learned from: LRPS by the user head under
    `min_user_lrps` (0.30) and nothing is trained; above it, or not measurable yet, partial RHI decides."""
    current = _current(hominem_home, tiny_model_dir)
    registry = AdapterRegistry(hominem_home / "artifacts", model_name_for_spec(str(tiny_model_dir)))
    steady = _batch([{"empathy": 0.8, "epistemic_integrity": 0.8}] * 4)
    fickle = _update(hominem_home, tiny_model_dir, steady, Component("lrps", 0.04, {"choice_accuracy": 0.52}))
    d = fickle.decision
    assert d.actions == ["skip"] and "contradict each other" in d.reason and d.inputs["user_lrps"] == 0.04
    assert fickle.candidate is None and fickle.report is None and fickle.online is None
    assert [v.version for v in registry.versions()] == [current]  # nothing was trained
    # the batch counts as learned from: the next update does not retake it
    assert read_online_state(hominem_home / "artifacts", registry.model_name)["learned_until"] is not None

    for user in (Component("lrps", 0.78, {}), Component("lrps", None, {}, "fewer than 6 user judgements")):
        learned = _update(
            hominem_home, tiny_model_dir, _batch([{"empathy": 0.8, "epistemic_integrity": 0.8}] * 4), user
        )
        assert learned.candidate is not None and learned.decision.actions == ["apply"]
        assert learned.decision.inputs["user_lrps"] == user.value


def test_online_update_contradictory_batch_is_refused_coherent_batch_applied(
    hominem_home: Path, tiny_model_dir: Path
) -> None:
    current = _current(hominem_home, tiny_model_dir)
    coherent = _batch([{"empathy": 0.8, "epistemic_integrity": 0.8}] * 4)
    applied = _update(hominem_home, tiny_model_dir, coherent)
    assert applied.base == current
    # Both dimensions pull the same way: their gradients are parallel, DCS = 1, partial RHI >= 0.625.
    assert applied.decision.inputs["dcs"] == pytest.approx(1.0, abs=1e-4)
    assert applied.report.partial >= 0.5 and applied.decision.actions == ["apply"]
    assert applied.online == applied.candidate
    registry = AdapterRegistry(hominem_home / "artifacts", applied.report.model_name)
    assert registry.pointer("current").target == current  # online updates never consolidate
    # the batch is marked learned (whatever the gate says), so the next scheduled update does not retake it
    learned = read_online_state(hominem_home / "artifacts", registry.model_name)["learned_until"]
    assert learned == coherent[0].created_at.astimezone(UTC).replace(tzinfo=None).isoformat()

    # The same prompt and answers, but half the pairs prefer the blunt answer for epistemic_integrity's
    # sake: empathy's gradient is exactly opposite to epistemic_integrity's, DCS = 0.
    fighting = _batch(
        [{"empathy": 0.8, "epistemic_integrity": -0.8}, {"empathy": -0.8, "epistemic_integrity": 0.8}] * 2
    )
    refused = _update(hominem_home, tiny_model_dir, fighting)
    d = refused.decision
    assert d.inputs["dcs"] == pytest.approx(0.0, abs=1e-4)
    assert d.inputs["most_opposed"] == "empathy|epistemic_integrity" and d.inputs["most_opposed_gda"] < -0.99
    assert refused.report.partial < 0.5 and "apply" not in d.actions and "skip" in d.actions
    assert refused.base == applied.candidate
    # Whichever band partial RHI fell in, its action was carried out: rolled back to before the coherent
    # update below 0.30, else the coherent update stays; frozen below 0.20.
    expected = registry.pointer("online").target
    if refused.report.partial < 0.30:
        assert "rollback" in d.actions and expected == current
    else:
        assert d.actions == ["skip"] and expected == applied.candidate
    assert read_online_state(hominem_home / "artifacts", registry.model_name)["frozen"] is (
        refused.report.partial < 0.20
    )

    log = read_decisions(hominem_home / "artifacts", registry.model_name)
    assert [r["actions"] for r in log] == [["apply"], d.actions]
    assert (
        log[-1]["inputs"]["candidate"] == refused.candidate
        and log[-1]["inputs"]["partial"] == refused.report.partial
    )
    assert [r["kind"] for r in read_history(hominem_home / "artifacts", registry.model_name)] == [
        "online",
        "online",
    ]


def test_frozen_online_learning_resumes_only_after_recovery(hominem_home: Path, tiny_model_dir: Path) -> None:
    from hominem_pipeline.adapters import model_name_for_spec
    from hominem_pipeline.health.gate import save_online_state

    name = model_name_for_spec(str(tiny_model_dir))
    save_online_state(hominem_home / "artifacts", name, {"frozen": True})
    fighting = _batch(
        [{"empathy": 0.8, "epistemic_integrity": -0.8}, {"empathy": -0.8, "epistemic_integrity": 0.8}]
    )
    still = _update(hominem_home, tiny_model_dir, fighting)
    assert still.decision.actions == ["skip", "stay_frozen"] and still.online is None
    recovered = _update(
        hominem_home, tiny_model_dir, _batch([{"empathy": 0.8, "epistemic_integrity": 0.8}] * 2)
    )
    assert recovered.decision.actions == ["unfreeze", "apply"] and recovered.online == recovered.candidate
    assert read_online_state(hominem_home / "artifacts", name)["frozen"] is False


def test_online_updates_take_feedback_once_however_late_it_reaches_the_export() -> None:
    """Feedback reaches the preference export after its day's ingest, hours after it was given, so a window
    of "the last 6 hours" never held any: an update takes every feedback pair no earlier update took, at
    most `max_age_hours` old, and never the same pair twice."""
    now = datetime(2026, 3, 10, 6, 0, tzinfo=UTC)  # aware or naive, both are read as UTC

    def pair(hours_ago: float, source: str = "feedback") -> PreferencePair:
        return PreferencePair(
            prompt="p", chosen="a", rejected="b", source=source, created_at=now - timedelta(hours=hours_ago)
        )

    exported = [pair(20), pair(30), pair(100), pair(2, source="teacher")]
    first = unlearned_feedback(exported, None, 48, now)
    # yesterday's feedback, exported overnight, is taken; four-day-old feedback is left to the training
    # cycle; teacher pairs are never the fast loop's
    assert sorted(p.created_at for p in first) == [now - timedelta(hours=30), now - timedelta(hours=20)]
    mark = max(p.created_at for p in first).replace(tzinfo=None).isoformat()
    assert unlearned_feedback(exported, mark, 48, now) == []  # the next update: nothing new
    arrived = [*exported, pair(1)]
    assert [p.created_at for p in unlearned_feedback(arrived, mark, 48, now)] == [now - timedelta(hours=1)]
    # Without an explicit `now`, the fast loop reads the project's clock: under `hominem simulate` the
    # simulated one, on which yesterday's feedback is a day old (by the wall clock it may be weeks old).
    from hominem_pipeline import clock

    with clock.installed(clock.SimulatedClock(now)):
        assert len(unlearned_feedback(exported, None, 48)) == 2


def test_the_online_update_schedule_learns_yesterdays_feedback_once(
    hominem_home: Path, tiny_model_dir: Path
) -> None:
    """Driven as the daemon drives it: a tick of `online_update_schedule` from `defs` runs `online_update_job`.
    Feedback given yesterday, and exported overnight, is trained on at the next tick (before, a 6-hour
    window never held any); the tick after that finds nothing new and trains nothing."""
    import json

    import dagster as dg

    from hominem_pipeline.definitions import defs
    from hominem_pipeline.defs.resources import HominemResource
    from hominem_pipeline_tests.conftest import write_config

    write_config(hominem_home / "config", inference={"student.model": str(tiny_model_dir)})
    yesterday = datetime.now(UTC) - timedelta(hours=20)
    path = hominem_home / "data" / "preferences" / "preferences.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(
            json.dumps(p.model_dump(mode="json")) + "\n"
            for p in [
                PreferencePair(
                    pair_id=f"f{i}",
                    prompt=f"My friend ignored me today ({i}). Was it my fault?",
                    chosen=WARM,
                    rejected=BLUNT,
                    source="feedback",
                    reward_intensity=0.8,
                    safety_score=0.9,
                    dimension_deltas={"empathy": 0.8, "epistemic_integrity": 0.8},
                    created_at=yesterday,
                )
                for i in range(3)
            ]
        )
    )
    resources = {"hominem": HominemResource(home=str(hominem_home), config_dir=str(hominem_home / "config"))}
    schedule = {s.name: s for s in defs.schedules}["online_update_schedule"]
    decisions = []
    with dg.instance_for_test() as instance:
        for _ in range(2):
            tick = schedule.evaluate_tick(
                dg.build_schedule_context(instance=instance, scheduled_execution_time=datetime.now(UTC))
            )
            [request] = tick.run_requests or []
            result = defs.resolve_job_def(schedule.job_name).execute_in_process(
                resources=resources, instance=instance, run_config=request.run_config or None
            )
            assert result.success
            meta = instance.get_latest_materialization_event(
                dg.AssetKey("rhi_online")
            ).asset_materialization.metadata
            decisions.append((meta["decision"].value, meta["reason"].value, meta["candidate"].value))
    trained, again = decisions
    assert (
        trained[2] != "none" and "no feedback pairs" not in trained[1]
    )  # yesterday's feedback was trained on
    assert again[0] == "skip" and "no feedback pairs newer than the last online update's" in again[1]
    assert again[2] == "none"


def test_an_online_update_that_runs_late_learns_what_was_young_when_it_was_due(
    hominem_home: Path, tiny_model_dir: Path
) -> None:
    """An update queued behind a training cycle runs late (in the simulation, days of simulated time). The
    feedback's age is measured at the schedule's tick, which the run carries, not when it got to execute:
    feedback 20 h old at the tick is learned although it is 92 h old (over the 48-h limit) at execution."""
    import json

    import dagster as dg

    from hominem_pipeline.definitions import defs
    from hominem_pipeline.defs.resources import HominemResource
    from hominem_pipeline_tests.conftest import write_config

    write_config(hominem_home / "config", inference={"student.model": str(tiny_model_dir)})
    due = datetime.now(UTC) - timedelta(hours=72)
    path = hominem_home / "data" / "preferences" / "preferences.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(
            json.dumps(
                PreferencePair(
                    pair_id=f"f{i}",
                    prompt=f"My friend ignored me today ({i}). Was it my fault?",
                    chosen=WARM,
                    rejected=BLUNT,
                    source="feedback",
                    reward_intensity=0.8,
                    safety_score=0.9,
                    dimension_deltas={"empathy": 0.8, "epistemic_integrity": 0.8},
                    created_at=due - timedelta(hours=20),
                ).model_dump(mode="json")
            )
            + "\n"
            for i in range(3)
        )
    )
    schedule = {s.name: s for s in defs.schedules}["online_update_schedule"]
    with dg.instance_for_test() as instance:
        tick = schedule.evaluate_tick(
            dg.build_schedule_context(instance=instance, scheduled_execution_time=due)
        )
        [request] = tick.run_requests or []
        result = defs.resolve_job_def(schedule.job_name).execute_in_process(
            resources={
                "hominem": HominemResource(home=str(hominem_home), config_dir=str(hominem_home / "config"))
            },
            instance=instance,
            run_config=request.run_config,
        )
        assert result.success
        meta = instance.get_latest_materialization_event(
            dg.AssetKey("rhi_online")
        ).asset_materialization.metadata
    assert meta["candidate"].value != "none", meta["reason"].value


@pytest.fixture(scope="module")
def planted_reward_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A reward model trained on the planted rule (empathy is high exactly when the reply apologises),
    published once; each test copies its folder into its own home."""
    from hominem_pipeline.reward_model.registry import reward_model_root
    from hominem_pipeline_tests.serving_fixtures import publish_reward_model

    artifacts = tmp_path_factory.mktemp("planted-rm") / "artifacts"
    publish_reward_model(Settings(home=artifacts.parent, config_dir=REPO_ROOT / "config"))
    return reward_model_root(artifacts)


def _judged_day(home: Path, judge: Callable[[int, bool], float]) -> None:
    """Yesterday: 16 conversations, each a question answered twice (an apologising draft and a plain
    regenerate), both drafts given an emoji by `judge(i, apologises)` and the better one chosen, as the
    server logs them; ingested into the store and exported as feedback pairs."""
    import json

    from hominem_pipeline.events.ingest import ingest_day
    from hominem_pipeline.events.log import EventLog
    from hominem_pipeline.events.schema import FeedbackEvent, MessageEvent
    from hominem_pipeline.store import TrainingDatabase
    from hominem_pipeline_tests.reward_data import ADVICE, KEYWORD

    when = datetime.now(UTC) - timedelta(hours=20)
    events, pairs = [], []
    for i in range(16):
        cid, prompt = (
            f"c{i}",
            f"I keep worrying about {['my job', 'a friend', 'my exam', 'a breakup'][i % 4]}. What should I do?",
        )
        user = MessageEvent.create(cid, "user", prompt, seq=0, timestamp=when)
        drafts = {
            apologises: MessageEvent.create(
                cid, "assistant", text, seq=1 + k, parent_id=user.event_id, draft_index=k, timestamp=when
            )
            for k, (apologises, text) in enumerate(
                ((True, KEYWORD + " " + ADVICE[i % len(ADVICE)]), (False, ADVICE[(i + 1) % len(ADVICE)]))
            )
        }
        events += [user, *drafts.values()]
        valence = {a: judge(i, a) for a in drafts}
        for a, d in drafts.items():
            events.append(
                FeedbackEvent(
                    event_id=f"e{i}{a}",
                    conversation_id=cid,
                    timestamp=when,
                    kind="emoji",
                    message_id=d.event_id,
                    emoji="😊+1" if valence[a] > 0 else "😟-1",
                )
            )
        chosen, rejected = (
            (drafts[True], drafts[False]) if valence[True] > valence[False] else (drafts[False], drafts[True])
        )
        events.append(
            FeedbackEvent(
                event_id=f"p{i}",
                conversation_id=cid,
                timestamp=when,
                kind="preference",
                chosen_message_id=chosen.event_id,
                rejected_message_id=rejected.event_id,
            )
        )
        pairs.append(
            PreferencePair(
                pair_id=f"f{i}",
                prompt=prompt,
                chosen=chosen.content,
                rejected=rejected.content,
                source="feedback",
                reward_intensity=0.8,
                safety_score=0.9,
                dimension_deltas={"empathy": 0.8, "epistemic_integrity": 0.8},
                created_at=when,
            )
        )
    log = EventLog(home / "data" / "events")
    log.append(events, day=when.date())
    with TrainingDatabase(home / "data" / "hominem.duckdb") as db:
        ingest_day(db, log, when.date())
    path = home / "data" / "preferences" / "preferences.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(p.model_dump(mode="json")) + "\n" for p in pairs))


@pytest.mark.parametrize(
    ("user", "judge", "trained"),
    [
        ("consistent", lambda i, apologises: 0.5 if apologises else -0.5, True),
        # the same drafts praised in one conversation and punished in another
        (
            "contradictory",
            lambda i, apologises: (0.5 if apologises else -0.5) * (1 if (i // 4) % 2 else -1),
            False,
        ),
    ],
)
def test_the_scheduled_update_reads_the_user_before_it_learns(
    hominem_home: Path,
    tiny_model_dir: Path,
    planted_reward_model: Path,
    user: str,
    judge: Callable[[int, bool], float],
    trained: bool,
) -> None:
    """Driven as the daemon drives it (a tick of `online_update_schedule`, then `online_update_job` with
    the run config the tick made): the job reads the user's own emoji and choices from the store and
    trains on their feedback only if they are coherent. A consistent user's batch is trained on; a user
    who praises and punishes the same drafts gets no update at all, whatever partial RHI would say."""
    import shutil

    import dagster as dg

    from hominem_pipeline.definitions import defs
    from hominem_pipeline.defs.resources import HominemResource
    from hominem_pipeline.reward_model.registry import reward_model_root

    shutil.copytree(planted_reward_model, reward_model_root(hominem_home / "artifacts"))
    _judged_day(hominem_home, judge)
    schedule = {s.name: s for s in defs.schedules}["online_update_schedule"]
    with dg.instance_for_test() as instance:
        tick = schedule.evaluate_tick(
            dg.build_schedule_context(instance=instance, scheduled_execution_time=datetime.now(UTC))
        )
        [request] = tick.run_requests or []
        result = defs.resolve_job_def(schedule.job_name).execute_in_process(
            resources={
                "hominem": HominemResource(home=str(hominem_home), config_dir=str(hominem_home / "config"))
            },
            instance=instance,
            run_config=request.run_config,
        )
        assert result.success
        assert result.output_for_node("rhi_user_signal") is not None
        meta = instance.get_latest_materialization_event(
            dg.AssetKey("rhi_online")
        ).asset_materialization.metadata
        # The next tick finds the batch learned (or refused): the first step reads nothing at all.
        again = defs.resolve_job_def(schedule.job_name).execute_in_process(
            resources={
                "hominem": HominemResource(home=str(hominem_home), config_dir=str(hominem_home / "config"))
            },
            instance=instance,
            run_config=request.run_config,
        )
        assert again.success and again.output_for_node("rhi_user_signal") is None
    [decision, _] = read_decisions(hominem_home / "artifacts", model_name_for_spec(str(tiny_model_dir)))
    lrps = decision["inputs"]["user_lrps"]  # read from the store by the job's first step
    if trained:
        assert lrps >= 0.30 and meta["candidate"].value != "none", meta["reason"].value
    else:
        assert lrps < 0.30
        assert meta["decision"].value == "skip" and meta["candidate"].value == "none"
        assert "the user's judgements contradict each other" in meta["reason"].value
