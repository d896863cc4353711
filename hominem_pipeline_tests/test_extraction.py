"""Seed 002's locked extraction rules on hand-built conversations: pairing, the 0.92 dedup within a
user turn (on given vectors at 0.91 / 0.93 and end to end on real MiniLM embeddings), introspection
off / on, storing with skip-existing, the `hominem extract-sft` flags, and knowledge updates."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from hominem_pipeline.cli import main
from hominem_pipeline.embedding import Embedder
from hominem_pipeline.events import EventLog, MessageEvent
from hominem_pipeline.events.importers import import_conversations
from hominem_pipeline.events.ingest import ingest_day
from hominem_pipeline.events.log import today_utc
from hominem_pipeline.extraction import (
    Conversation,
    ExtractionOptions,
    Message,
    dedup_drafts,
    extract_and_store_sft_pairs,
    extract_sft_pairs_from_conversation,
)
from hominem_pipeline.extraction.intensity import TeacherLabelIntensity
from hominem_pipeline.extraction.knowledge import (
    CORRECTION_PREFIX,
    addressed_to_user,
    by_cues,
    extract_and_store_knowledge_updates,
    plain_answer,
    template_probes,
    valid_probes,
)
from hominem_pipeline.extraction.sft import ExtractionStats
from hominem_pipeline.settings import REPO_ROOT
from hominem_pipeline.store import TrainingDatabase

EXAMPLES = REPO_ROOT / "examples" / "conversations"
NEAR_A = "Feeling nervous is normal. Prepare two or three stories about your work, get some sleep, and remember they invited you because they're interested in you."
NEAR_B = "Feeling nervous is completely normal. Prepare two or three stories about your work, get a good night's sleep, and remember they invited you because they're interested in you."
OTHER = (
    "What part of the interview worries you most? If we name it, we can practise that part together tonight."
)


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder()


def _vec_at(cos: float) -> np.ndarray:
    return np.array([cos, math.sqrt(1 - cos * cos), 0.0])


def _m(mid: str, role: str, content: str, **kw: object) -> Message:
    return Message(message_id=mid, role=role, content=content, **kw)


def test_dedup_at_093_keeps_highest_intensity_and_at_091_keeps_both() -> None:
    first = np.array([1.0, 0.0, 0.0])
    assert float(first @ _vec_at(0.93)) == pytest.approx(0.93)
    # 0.93 > 0.92: near duplicates; the more intense one survives wherever it stands.
    assert dedup_drafts(np.stack([first, _vec_at(0.93)]), [0.2, 0.9]) == [1]
    assert dedup_drafts(np.stack([first, _vec_at(0.93)]), [0.9, 0.2]) == [0]
    # 0.91 <= 0.92: different enough; both stay.
    assert dedup_drafts(np.stack([first, _vec_at(0.91)]), [0.2, 0.9]) == [0, 1]
    # No intensity known: the first draft (seed 002's fallback); a known intensity beats an unknown one.
    assert dedup_drafts(np.stack([first, _vec_at(0.93)]), [None, None]) == [0]
    assert dedup_drafts(np.stack([first, _vec_at(0.93)]), [None, 0.1]) == [1]
    # Three drafts: the third is 0.93 to the second only; the kept set has no pair above 0.92.
    third = np.array([0.93 * _vec_at(0.93)[0], 0.93 * _vec_at(0.93)[1], math.sqrt(1 - 0.93**2)])
    kept = dedup_drafts(np.stack([first, _vec_at(0.91), third]), [0.5, 0.9, 0.1])
    assert kept == [0, 1]


def test_pairing_rule_and_end_to_end_dedup_on_real_embeddings(embedder: Embedder) -> None:
    conv = Conversation(
        "c1",
        [
            _m("s", "system", "Be kind."),
            _m("a0", "assistant", "Hello! How can I help?"),  # before any user: pairs with nothing
            _m("u1", "user", "I have an interview tomorrow and I'm nervous."),
            _m("a1", "assistant", NEAR_A),
            _m("a2", "assistant", NEAR_B),
            _m("a3", "assistant", OTHER),
            _m("u2", "user", "Thanks, that helps."),
            _m("a4", "assistant", "Good luck tomorrow!"),
        ],
    )
    v = embedder.embed([NEAR_A, NEAR_B, OTHER])
    assert float(v[0] @ v[1]) > 0.92 and float(v[0] @ v[2]) < 0.92

    stats = ExtractionStats()
    pairs = extract_sft_pairs_from_conversation(conv, embedder=embedder, stats=stats)
    assert [(p.instruction[:14], p.message_id) for p in pairs] == [
        ("I have an inte", "a1"),
        ("I have an inte", "a3"),
        ("Thanks, that h", "a4"),
    ]
    assert (
        stats.unpaired == 1 and stats.dropped_near_duplicates == 1 and stats.ranked_by == {"first_draft": 1}
    )
    assert all(p.source == "conversation" and p.context is None for p in pairs)

    # With reward intensities (teacher labels here), the more intense near-duplicate is the one kept.
    labels = TeacherLabelIntensity({"a1": (0.2, 1.0), "a2": (0.8, 1.0), "a3": (0.1, 1.0)})
    pairs = extract_sft_pairs_from_conversation(
        conv, embedder=embedder, intensity=labels, include_context=True
    )
    assert [p.message_id for p in pairs] == ["a2", "a3", "a4"]
    assert pairs[0].reward_intensity == 0.8
    assert pairs[0].context == "system: Be kind.\nassistant: Hello! How can I help?"
    # Only a reply's first draft is context for the next turn: later drafts are alternatives to it.
    assert pairs[2].context.endswith("assistant: " + NEAR_A)


def _introspective() -> Conversation:
    reflection = (
        "I stated an outdated fact with too much confidence; next time I will say when I may be out of date."
    )
    return Conversation(
        "c2",
        [
            _m("u1", "user", "What is 2 + 2?"),
            _m("a1", "assistant", "2 + 2 = 4."),
            _m("u2", "user", "Reflect on your last answer.", internal_generated=True, introspection=True),
            _m("a2", "assistant", reflection, internal_generated=True, introspection=True),
            _m("a3", "assistant", reflection, internal_generated=True, introspection=True),  # exact duplicate
            _m("u3", "user", "Tell me about your feelings."),
            _m("a4", "assistant", "I notice I want to please you.", introspection=True),  # not internal
            _m("u4", "user", "Reflect again.", internal_generated=True, introspection=True),
            _m(
                "a5", "assistant", "Something I cannot rate yet.", internal_generated=True, introspection=True
            ),
        ],
    )


def test_introspection_is_excluded_by_default(embedder: Embedder) -> None:
    stats = ExtractionStats()
    pairs = extract_sft_pairs_from_conversation(_introspective(), embedder=embedder, stats=stats)
    assert [p.message_id for p in pairs] == ["a1"]
    assert stats.introspection_excluded == 4


def test_introspection_opt_in_is_gated_deduped_downweighted_and_tagged(embedder: Embedder) -> None:
    stats = ExtractionStats()
    safety = TeacherLabelIntensity({"a2": (0.6, 0.95), "a3": (0.6, 0.95), "a4": (0.5, 0.99)})
    opts = ExtractionOptions(
        include_introspection=True, introspection_weight=0.3, introspection_min_safety=0.7
    )
    pairs = extract_sft_pairs_from_conversation(
        _introspective(), options=opts, embedder=embedder, intensity=safety, stats=stats
    )
    by_id = {p.message_id: p for p in pairs}
    assert set(by_id) == {"a1", "a2"}
    intro = by_id["a2"]
    assert (intro.source, intro.category, intro.weight, intro.safety_score) == (
        "introspection",
        "introspection",
        0.3,
        0.95,
    )
    assert by_id["a1"].weight == 1.0
    assert stats.introspection_duplicates == 1  # a3: same text as a2
    assert stats.introspection_not_internal == 1  # a4: said to a user, not internal-generated
    assert stats.introspection_unsafe_or_unscored == 1  # a5: no safety score known


def _ingested_db(tmp_path: Path) -> TrainingDatabase:
    log = EventLog(tmp_path / "events")
    import_conversations(EXAMPLES / "sample_conversations.jsonl", log)
    db = TrainingDatabase(tmp_path / "db.duckdb")
    ingest_day(db, log, today_utc())
    return db


def test_extract_and_store_skips_existing_and_refreshes_on_request(
    tmp_path: Path, embedder: Embedder
) -> None:
    with _ingested_db(tmp_path) as db:
        with pytest.raises(ValueError, match="say which conversations"):
            extract_and_store_sft_pairs(db, embedder=embedder)
        one = db.scalar(
            "SELECT conversation_id FROM conversation_messages WHERE content LIKE 'How many moons%'"
        )
        r = extract_and_store_sft_pairs(db, conversation_id=one, embedder=embedder)
        assert (r.conversations, r.pairs_stored) == (1, 2)
        r = extract_and_store_sft_pairs(
            db, all_conversations=True, embedder=embedder, export_jsonl=tmp_path / "sft.jsonl"
        )
        # 8 conversations, 15 assistant turns: 1 introspective (excluded), 1 near-duplicate draft dropped.
        assert (r.conversations, r.pairs_found, r.pairs_skipped_existing) == (8, 13, 2)
        assert (
            r.pairs_stored == 11
            and r.stats.dropped_near_duplicates == 1
            and r.stats.introspection_excluded == 1
        )
        rows = [json.loads(x) for x in (tmp_path / "sft.jsonl").read_text().splitlines()]
        assert len(rows) == 13 and {x["source"] for x in rows} == {"conversation"}
        assert extract_and_store_sft_pairs(db, all_conversations=True, embedder=embedder).pairs_stored == 0
        assert (
            extract_and_store_sft_pairs(
                db, since=datetime.now() + timedelta(days=1), embedder=embedder
            ).conversations
            == 0
        )

        used = db.get_sft_pairs()[0]
        db.update_sft_used([used.pair_id], cycle=1)
        r = extract_and_store_sft_pairs(
            db, all_conversations=True, include_context=True, skip_existing=False, embedder=embedder
        )
        assert r.pairs_skipped_existing == 0
        refreshed = {p.pair_id: p for p in db.get_sft_pairs()}
        assert refreshed[used.pair_id].is_used and refreshed[used.pair_id].cycle == 1
        # Context makes new pairs (a different training example) beside the context-free ones.
        assert sum(1 for p in refreshed.values() if p.context) > 0


def test_knowledge_updates_by_cues_and_a_teacher_failure_is_recorded(
    tmp_path: Path, tiny_model_dir: Path, embedder: Embedder
) -> None:
    from hominem_pipeline.settings import SamplingConfig
    from hominem_pipeline.teacher.local import LocalTeacher

    with _ingested_db(tmp_path) as db:
        extract_and_store_sft_pairs(db, all_conversations=True, embedder=embedder)
        run = extract_and_store_knowledge_updates(db, "cues", all_conversations=True)
        # The wrong answers the user corrected stay stored but lose their confidence (out of training).
        wrong = {p.response for p in db.get_sft_pairs(source="conversation") if p.confidence == 0}
        assert wrong == {
            "The capital of Australia is Sydney.",
            "Mars has one moon, Phobos.",
            "Python 3.8 is the newest stable release, so use that.",
        }
        assert run.superseded == 3
        rows = db.get_sft_pairs(source="knowledge_update")
        pairs = [p for p in rows if "phrasing_of" not in p.metadata]  # one row per fact carries its probes
        found = {(p.instruction, p.category) for p in pairs}
        assert found == {
            ("What is the capital of Australia?", "factual_correction"),
            ("How many moons does Mars have?", "factual_correction"),
            ("Which Python version should I use for a new project?", "knowledge_update"),
        }
        # The answer is the fact, without the thanks that belonged to the correcting conversation.
        by_question = {p.instruction: p.response for p in pairs}
        assert by_question["What is the capital of Australia?"] == (
            "The capital of Australia is Canberra; Sydney is its largest city."
        )
        assert by_question["How many moons does Mars have?"] == "Mars has two small moons, Phobos and Deimos."
        # Each fact is also taught under other phrasings of its question, never the held-out ones.
        for p in pairs:
            copies = [r for r in rows if r.metadata.get("phrasing_of") == p.pair_id]
            assert len(copies) == 2 and all(
                r.response == p.response and p.instruction in r.instruction and r.instruction != p.instruction
                for r in copies
            )
            assert all("held_out_probes" not in r.metadata for r in copies)
            held_out = {q["question"] for q in p.metadata["held_out_probes"]}
            assert held_out.isdisjoint({r.instruction for r in rows})
        # Each fact is stored with its new phrasings (templates: the 135M teacher cannot paraphrase): the
        # user's own statement of the fact, never the training instruction or response.
        probes = {p.instruction: p.metadata["held_out_probes"] for p in pairs}
        assert {p.metadata["probe_method"] for p in pairs} == {"templates"}
        assert {q["answer"] for q in probes["How many moons does Mars have?"]} == {
            "Mars has two moons: Phobos and Deimos."
        }
        assert {q["answer"] for q in probes["What is the capital of Australia?"]} == {
            "The capital of Australia is Canberra, not Sydney."
        }
        for p in pairs:
            assert len(probes[p.instruction]) == 2
            for q in probes[p.instruction]:
                assert {q["question"].strip(), q["answer"].strip()}.isdisjoint({p.instruction, p.response})
                assert p.instruction in q["question"]  # the same question, in other words around it
        assert run.pairs_stored == 9 and run.failures == 0
        assert extract_and_store_knowledge_updates(db, "cues", all_conversations=True).reused == 8

        # A teacher that cannot answer in the asked JSON (the tiny random model) gives no invented pairs:
        # each attempt is recorded as failed, with its reason and raw output, and retried next run.
        teacher = LocalTeacher(
            str(tiny_model_dir), sampling=SamplingConfig(max_new_tokens=8), rationale=False
        )
        one = db.scalar(
            "SELECT conversation_id FROM conversation_messages WHERE content LIKE 'How many moons%'"
        )
        run = extract_and_store_knowledge_updates(db, "teacher", teacher=teacher, conversation_ids=[one])
        assert run.failures == 1 and run.pairs_stored == 0 and "unusable answer" in run.failure_reasons[0]
        attempts = db.query("SELECT * FROM knowledge_update_attempts WHERE NOT ok")
        assert len(attempts) == 1 and attempts[0]["raw_output"] is not None
        assert len(db.get_sft_pairs(source="knowledge_update")) == 9


def test_cli_extract_sft_flags(hominem_home: Path) -> None:
    runner = CliRunner()
    assert (
        runner.invoke(
            main, ["import", "conversations", str(EXAMPLES / "sample_conversations.jsonl")]
        ).exit_code
        == 0
    )
    db_path = hominem_home / "data" / "hominem.duckdb"
    with TrainingDatabase(db_path) as db:
        ingest_day(db, EventLog(hominem_home / "data" / "events"), today_utc())
        log_line = MessageEvent.create("x", "user", "unused")  # the record format round-trips
        assert log_line.to_line().endswith("\n")
    assert runner.invoke(main, ["extract-sft"]).exit_code != 0
    out = tmp = hominem_home / "sft.jsonl"
    result = runner.invoke(
        main,
        [
            "extract-sft",
            "--all-conversations",
            "--include-introspection",
            "--include-context",
            "--db-path",
            str(db_path),
            "--export-jsonl",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[: result.stdout.rindex("}") + 1])
    assert summary["pairs_stored"] == 13 and summary["introspection_excluded"] == 0
    # The sample's introspection is internal-generated but has no safety score yet: gated out.
    assert summary["introspection_unsafe_or_unscored"] == 1
    assert len(tmp.read_text().splitlines()) == 13
    again = runner.invoke(main, ["extract-sft", "--since", "2020-01-01", "--db-path", str(db_path)])
    assert json.loads(again.stdout)["pairs_skipped_existing"] == 13
    refresh = runner.invoke(
        main, ["extract-sft", "--all-conversations", "--no-skip-existing", "--db-path", str(db_path)]
    )
    assert json.loads(refresh.stdout)["pairs_skipped_existing"] == 0
    assert runner.invoke(main, ["extract-sft", "--since", "yesterday"]).exit_code != 0


def test_held_out_probes_are_never_the_training_strings() -> None:
    """Whatever a teacher proposes, a probe equal to the taught instruction or response (case and spacing
    aside), a malformed one or a repeat is dropped; the templates fall back on the user's own words."""
    instruction, response = "Which year was the bridge built?", "The bridge was built in 1911."
    proposed = [
        {"question": "When did they build the bridge?", "answer": "It went up in 1911."},
        {"question": " which YEAR was the bridge built? ", "answer": "In 1911."},  # the instruction itself
        {
            "question": "What year is the bridge from?",
            "answer": "the bridge was built in 1911.",
        },  # the response
        {"question": "When did they build the bridge?", "answer": "It went up in 1911."},  # a repeat
        {"question": "", "answer": "It dates from 1911."},
        {"answer": "no question"},
    ]
    kept = valid_probes(instruction, response, proposed)
    assert [(p.question, p.answer) for p in kept] == [
        ("When did they build the bridge?", "It went up in 1911.")
    ]
    templated = template_probes(instruction, response, "Actually, no: the bridge opened in 1911, not 1920.")
    assert [p.answer for p in templated] == ["The bridge opened in 1911, not 1920."] * 2
    assert all(p.question != instruction and instruction in p.question for p in templated)
    # The user's words hold no statement of the fact: no probes rather than the training strings.
    assert template_probes(instruction, response, "No, that's wrong.") == []
    assert template_probes(instruction, response, f"Actually, {response}") == []


def test_a_knowledge_answer_loses_the_thanks_but_never_the_fact() -> None:
    """The acknowledgement that opens an answer after a correction is cut only when it is nothing but
    acknowledgement: a first sentence that carries a fact stays whole."""
    assert plain_answer("You're right, thank you for the correction. Canberra is the capital.") == (
        "Canberra is the capital."
    )
    assert plain_answer("Correct, my mistake: Mars has two small moons.") == "Mars has two small moons."
    assert (
        plain_answer("Yes, Python 3.12 is the current release.") == "Yes, Python 3.12 is the current release."
    )
    assert plain_answer("Thanks for the update.") == "Thanks for the update."  # nothing would be left


def test_a_feedback_correction_is_the_answer_a_garbled_reply_to_it_is_not() -> None:
    """A correction sent through `/feedback` states the right answer: the memory row teaches the user's
    statement, said back to the user, whatever the assistant replied after it (a small student often
    garbles the name it was just given). A free-chat "actually ..." may be an instruction, not a fact, so
    there the assistant's reply after it stays the answer."""

    def conversation(correction: str, reply: str) -> Conversation:
        return Conversation(
            "c",
            [
                _m("u1", "user", "What is my dog called?"),
                _m("a1", "assistant", "Your dog is called Max."),
                _m("u2", "user", correction),
                _m("a2", "assistant", reply),
            ],
        )

    garbled = "Biscuet, the sweet and lovable name you gave her, is a wonderful choice for a beagle!"
    [row, *copies] = by_cues(conversation(CORRECTION_PREFIX + "My dog is called Biscuit.", garbled)).pairs
    assert (row.instruction, row.response) == ("What is my dog called?", "Your dog is called Biscuit.")
    assert row.message_id == "u2" and row.metadata["answer_from"] == "the user's correction"
    assert len(copies) == 2 and {c.response for c in copies} == {"Your dog is called Biscuit."}
    # The held-out probes ask in other words and are answered in the user's own words.
    assert {p["answer"] for p in row.metadata["held_out_probes"]} == {"My dog is called Biscuit."}
    # Only the statement the reply garbled would have been learned from before; with no reply at all
    # the correction still teaches the fact.
    no_reply = Conversation(
        "c", conversation(CORRECTION_PREFIX + "My dog is called Biscuit.", "x").messages[:3]
    )
    assert by_cues(no_reply).pairs[0].response == "Your dog is called Biscuit."

    [chat, *_] = by_cues(
        conversation("Actually, answer in French please.", "Votre chien s'appelle Max.")
    ).pairs
    assert (
        chat.response == "Votre chien s'appelle Max."
        and chat.metadata["answer_from"] == "the assistant's reply after it"
    )


def test_a_users_statement_is_said_back_to_the_user() -> None:
    assert addressed_to_user("My dog is called Biscuit.") == "Your dog is called Biscuit."
    assert addressed_to_user("I am allergic to peanuts.") == "You are allergic to peanuts."
    assert addressed_to_user("I live in Tromsø. My garden is small, so I'm growing herbs.") == (
        "You live in Tromsø. Your garden is small, so you're growing herbs."
    )
    assert addressed_to_user("Our team meets on Mondays.") == "Your team meets on Mondays."
    assert addressed_to_user("The meeting is at 9 am.") == "The meeting is at 9 am."  # no first person
    # Both persons in one statement: swapping by rule would garble it, so it stays the user's words.
    assert (
        addressed_to_user("You told me Max, but my dog is Biscuit.")
        == "You told me Max, but my dog is Biscuit."
    )
