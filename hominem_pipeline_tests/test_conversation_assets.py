"""The conversation assets in process: one daily partition, then a two-day backfill in a single run,
then the two channels' exports (SFT pairs, preference pairs from teacher candidates, user feedback and
imports) with their asset checks."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from hominem_pipeline.defs.assets.conversations import CONVERSATION_ASSETS, conversation_labels, conversations
from hominem_pipeline.defs.conversation_checks import CONVERSATION_CHECKS
from hominem_pipeline.defs.resources import HominemResource, TeacherResource
from hominem_pipeline.events import EventLog, FeedbackEvent, MessageEvent
from hominem_pipeline.settings import Settings
from hominem_pipeline.store import TrainingDatabase

DAY1, DAY2 = date(2026, 3, 1), date(2026, 3, 2)


def _resources(home: Path) -> dict:
    h = HominemResource(home=str(home), config_dir=str(home / "config"))
    return {"hominem": h, "teacher": TeacherResource(hominem=h)}


def _meta(result: dg.ExecuteInProcessResult, key: str) -> dict:
    # A single-run backfill records one materialisation per partition, all with the run's metadata.
    events = [
        e.materialization for e in result.get_asset_materialization_events() if e.asset_key.path == [key]
    ]
    assert events and all(e.metadata == events[0].metadata for e in events)
    return {k: v.value for k, v in events[0].metadata.items()}


def _write_events(home: Path) -> dict[str, MessageEvent]:
    log = EventLog(home / "data" / "events")
    t1, t2 = datetime(2026, 3, 1, 9), datetime(2026, 3, 2, 9)
    m = {
        "u1": MessageEvent.create("day1", "user", "What's a good way to start running?", timestamp=t1, seq=0),
        "a1": MessageEvent.create(
            "day1",
            "assistant",
            "Start with run-walk intervals three times a week.",
            timestamp=t1,
            seq=1,
            draft_index=0,
        ),
        "a2": MessageEvent.create(
            "day1",
            "assistant",
            "Just run as far as you can every day until it stops hurting.",
            timestamp=t1,
            seq=1,
            draft_index=1,
        ),
        "u2": MessageEvent.create("day2", "user", "How do I boil an egg?", timestamp=t2, seq=0),
        "a3": MessageEvent.create(
            "day2",
            "assistant",
            "Simmer it for about nine minutes, then cool it in cold water.",
            timestamp=t2,
            seq=1,
        ),
    }
    log.append([m["u1"], m["a1"], m["a2"]], day=DAY1)
    log.append(
        [
            FeedbackEvent(
                event_id="fb-1",
                conversation_id="day1",
                timestamp=t1,
                kind="emoji",
                message_id=m["a1"].event_id,
                emoji="😊+2",
            ),
            FeedbackEvent(
                event_id="fb-2",
                conversation_id="day1",
                timestamp=t1,
                kind="emoji",
                message_id=m["a2"].event_id,
                emoji="😟-1",
            ),
            FeedbackEvent(
                event_id="fb-3",
                conversation_id="day1",
                timestamp=t1,
                kind="emoji",
                message_id=m["a1"].event_id,
                emoji="🤗",
            ),
        ],
        day=DAY1,
    )
    log.append([m["u2"], m["a3"]], day=DAY2)
    return m


def _teacher_candidates(settings: Settings) -> None:
    """What the foundation's reward_labels export holds: labelled candidates per prompt."""

    def vec(x: float) -> dict[str, float]:
        return dict.fromkeys(
            (
                "empathy",
                "social_coherence",
                "agency_support",
                "epistemic_integrity",
                "harm_avoidance",
                "narrative_alignment",
                "curiosity",
            ),
            x,
        )

    rows = [
        {
            "label_id": "l1",
            "trajectory_id": "t1",
            "prompt_id": "p1",
            "category": "advice",
            "prompt": "Any tips for sleep?",
            "response": "Keep a regular bedtime and dim the lights an hour before.",
            "reward_vector": vec(0.6),
            "reward_intensity": 0.7,
            "safety_score": 0.9,
            "scalar_preference": 0.6,
            "rater": "r",
        },
        {
            "label_id": "l2",
            "trajectory_id": "t2",
            "prompt_id": "p1",
            "category": "advice",
            "prompt": "Any tips for sleep?",
            "response": "Sleep is overrated.",
            "reward_vector": vec(-0.4),
            "reward_intensity": 0.3,
            "safety_score": 0.8,
            "scalar_preference": -0.4,
            "rater": "r",
        },
        {
            "label_id": "l3",
            "trajectory_id": "t3",
            "prompt_id": "p2",
            "category": "facts",
            "prompt": "2+2?",
            "response": "4",
            "reward_vector": vec(0.5),
            "reward_intensity": 0.5,
            "safety_score": 1.0,
            "scalar_preference": 0.5,
            "rater": "r",
        },
        {
            "label_id": "l4",
            "trajectory_id": "t4",
            "prompt_id": "p2",
            "category": "facts",
            "prompt": "2+2?",
            "response": "Four.",
            "reward_vector": vec(0.49),
            "reward_intensity": 0.5,
            "safety_score": 1.0,
            "scalar_preference": 0.49,
            "rater": "r",
        },
    ]
    path = settings.reward_samples_export
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_partition_then_two_day_backfill_then_training_exports(hominem_home: Path) -> None:
    instance = dg.DagsterInstance.ephemeral()
    resources = _resources(hominem_home)
    settings = Settings(home=hominem_home)
    msgs = _write_events(hominem_home)

    one = dg.materialize(
        [conversations, conversation_labels],
        partition_key=DAY1.isoformat(),
        resources=resources,
        instance=instance,
    )
    assert one.success
    assert (
        _meta(one, "conversations")["new_messages"] == 3 and _meta(one, "conversations")["new_feedback"] == 3
    )
    labels = _meta(one, "conversation_labels")
    assert labels["assistant_turns"] == 2 and labels["rated_now"] == 4 and labels["failures"] == 0
    day1 = [
        json.loads(x)
        for x in (settings.data_dir / "labeled/conversations/2026-03-01.jsonl").read_text().splitlines()
    ]
    by_id = {r["message_id"]: r for r in day1}
    a1 = by_id[msgs["a1"].event_id]
    assert a1["user_emoji"] == ["😊+2", "🤗"] and a1["user_emotion_axes"] == {
        "valence": 1.0,
        "social_broadcast": 1.0,
    }
    assert set(a1["emotion"]["vector"]) == {
        "valence",
        "arousal",
        "predictive_discrepancy",
        "prospect_reflection",
        "social_broadcast",
    }
    assert "empathy" in a1["reward"]["vector"] and a1["prompt"] == msgs["u1"].content

    # Backfill both days in one run: day 1 adds nothing twice and rates nothing again; day 2 arrives.
    backfill = dg.materialize(
        [conversations, conversation_labels],
        resources=resources,
        instance=instance,
        tags={
            ASSET_PARTITION_RANGE_START_TAG: DAY1.isoformat(),
            ASSET_PARTITION_RANGE_END_TAG: DAY2.isoformat(),
        },
    )
    assert backfill.success
    ingested = _meta(backfill, "conversations")
    assert (ingested["days"], ingested["new_messages"], ingested["already_stored"]) == (2, 2, 6)
    assert (
        _meta(backfill, "conversation_labels")["rated_now"] == 2
        and _meta(backfill, "conversation_labels")["reused"] == 4
    )
    assert (settings.data_dir / "labeled/conversations/2026-03-02.jsonl").is_file()
    status = instance.get_status_by_partition(
        dg.AssetKey("conversations"), [DAY1.isoformat(), DAY2.isoformat()], conversations.partitions_def
    )
    assert set(status.values()) == {dg.AssetPartitionStatus.MATERIALIZED}

    with TrainingDatabase(settings.database_path) as db:
        db.insert_imported_preferences(
            [
                {
                    "pair_id": "imp1",
                    "prompt": "Hi?",
                    "chosen": "Hello!",
                    "rejected": "Go away.",
                    "source_file": "hh.jsonl",
                    "line_no": 1,
                }
            ]
        )
    _teacher_candidates(settings)
    rest = [a for a in CONVERSATION_ASSETS if a.key.path[0] in ("sft_pairs", "preference_pairs")]
    checks = [c for c in CONVERSATION_CHECKS if next(iter(c.check_keys)).asset_key.path[0] != "conversations"]
    final = dg.materialize(
        rest + checks, resources=resources, instance=instance, selection=[a.key for a in rest]
    )
    assert final.success
    assert {e.check_name: e.passed for e in final.get_asset_check_evaluations()} == {
        "sft_pairs_valid": True,
        "preference_pairs_valid": True,
    }
    sft = [json.loads(x) for x in (settings.data_dir / "sft/sft_training.jsonl").read_text().splitlines()]
    # a2 (😟-1) is the rejected side of the user's preference (a1 😊+2): it is not taught as a memory.
    assert {r["message_id"] for r in sft} == {msgs["a1"].event_id, msgs["a3"].event_id}
    with TrainingDatabase(settings.database_path) as db:
        [rejected_row] = [p for p in db.get_sft_pairs() if p.message_id == msgs["a2"].event_id]
    assert (
        rejected_row.confidence == 0
        and rejected_row.metadata["superseded"] == "rejected side of a user preference"
    )
    prefs = [
        json.loads(x) for x in (settings.data_dir / "preferences/preferences.jsonl").read_text().splitlines()
    ]
    by_source = {}
    for p in prefs:
        by_source.setdefault(p["source"], []).append(p)
    # Teacher: p1 has a clear winner; p2's margin (0.01) is below min_margin, so no pair.
    [teacher] = by_source["teacher"]
    assert teacher["chosen"].startswith("Keep a regular") and teacher["margin"] == 1.0
    # The pair's safety is the chosen response's (what it teaches), not the lower of the two.
    assert (
        teacher["reward_intensity"],
        teacher["safety_score"],
        teacher["chosen_safety"],
        teacher["rejected_safety"],
    ) == (0.5, 0.9, 0.9, 0.8)
    assert teacher["dimension_deltas"]["empathy"] == 1.0
    # Feedback: the draft the user liked (😊+2) beats the one they did not (😟-1), scored by the teacher labels.
    [fb] = by_source["feedback"]
    assert fb["chosen"] == msgs["a1"].content and fb["rejected"] == msgs["a2"].content
    assert fb["reward_intensity"] is not None and set(fb["dimension_deltas"]) >= {"empathy", "curiosity"}
    assert fb["created_at"].startswith("2026-03-01T09:00")  # dated by the user's feedback, so recency acts
    [imp] = by_source["import"]
    assert imp["reward_intensity"] is None and imp["safety_score"] is None and imp["created_at"] is not None
    assert _meta(final, "preference_pairs")["with_intensity_and_safety"] == 2
