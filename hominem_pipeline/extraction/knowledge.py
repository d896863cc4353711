"""Knowledge updates (seed 000 5.5.4): factual corrections and general-knowledge updates found in a
conversation, formatted as SFT pairs with `source="knowledge_update"`.

Two methods, chosen by config (`auto` picks by teacher backend):
- `teacher`: the teacher reads the conversation and answers in JSON (validated with pydantic; every
  update must quote the user's words it rests on, and the quote must be in the conversation). What a
  teacher cannot do is recorded as a failed attempt with its reason, never turned into invented pairs.
- `cues`: for the embedded 135M teacher, which cannot be trusted to write JSON or facts: a user message
  that corrects the assistant (cue words such as "actually", "that's wrong", "update:") marks a
  correction, and the pair is (the question the wrong answer replied to, the corrected answer). A
  correction given through `/feedback` (the user turn that opens with `CORRECTION_PREFIX`) is the user's
  own statement of the right answer, so the answer is that statement, addressed to the user ("My dog is
  called Biscuit." -> "Your dog is called Biscuit."): a small student's reply to a correction is often a
  garbled echo of it ("Biscuet, ..."), and a memory row taught from it teaches the garble. A correction
  said in free chat may be an instruction rather than a fact ("actually, answer in French"), so there the
  answer is the assistant's reply after it. Only words said in the conversation are used; confidence is
  kept low.

Each knowledge pair carries `metadata.held_out_probes`: the same fact asked and answered in NEW phrasings,
which `lora_eval` scores to see whether the adapter learned the fact or only its training string. The
teacher writes them with the update; for the cues method (and when the teacher's are unusable)
deterministic templates do: the question wrapped in other words, answered by the user's own statement of
the fact (their correction with the cue words stripped). A probe identical to the pair's instruction or
response is never kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hominem_pipeline.evaluation.config import KnowledgeProbe
from hominem_pipeline.extraction.sft import Conversation
from hominem_pipeline.records import SFTPair, content_hash
from hominem_pipeline.teacher.parsing import RatingParseError, extract_json_object

Method = Literal["auto", "teacher", "cues", "off"]

#: How the server writes a `/feedback` correction into the conversation: a user turn that opens with this,
#: followed by the user's statement of the right answer (serving/service.py).
CORRECTION_PREFIX = "Correction: "

_CORRECTION = re.compile(
    r"\b(actually|that'?s (?:wrong|incorrect|not (?:right|true|correct))|that is (?:wrong|incorrect)|"
    r"you'?re wrong|correction|not quite|in fact)\b|(?:^|\s)no,",
    re.IGNORECASE,
)
_UPDATE = re.compile(
    r"\b(update:|as of \d{4}|no longer|outdated|end of life|has changed|now (?:is|are))", re.IGNORECASE
)

PROMPT = """Below is a conversation between a user and an assistant.

{transcript}

Find each place where the user corrects a factual mistake of the assistant, or tells it a new fact
(a knowledge update). For each one, write a training example: a question a future user might ask, and the
correct, self-contained answer. Quote the user's words the example rests on, exactly. Also write two test
probes: the same fact asked with a differently worded question, answered in different words than your
answer (they check that the fact was learned, not the sentence).
Reply with JSON only: {{"updates": [{{"kind": "factual_correction" or "knowledge_update",
"instruction": "...", "response": "...", "evidence": "exact words of the user",
"probes": [{{"question": "...", "answer": "..."}}, {{"question": "...", "answer": "..."}}]}}]}}.
If there is none, reply {{"updates": []}}."""

# Question wrappers for template probes: other words around the same question. Deterministic, so a
# conversation always yields the same probes (and the same SFT row).
PROBE_QUESTIONS = (
    "Quick question, just to be sure I have it right: {question}",
    "Someone asked me this and I was not sure what to say. {question}",
)
# Cue words that open a correction and are not part of the fact ("Actually, that's wrong: X" -> "X").
_LEADING_CUE = re.compile(
    r"^\s*(?:(?:actually|no|nope|update|correction|in fact|that'?s (?:wrong|incorrect|not (?:right|true|correct))"
    r"|that is (?:wrong|incorrect)|you'?re wrong|not quite)\b[\s,:;.!-]*)+",
    re.IGNORECASE,
)
# Other words around the same question for TRAINING (disjoint from PROBE_QUESTIONS, which stay held out):
# one fact stated once, in one phrasing, is one example among many and a small adapter barely moves on it;
# the same answer under a few question phrasings teaches the fact rather than the string.
TRAINING_QUESTIONS = (
    "{question}",
    "Can you tell me: {question}",
    "{question} Please answer in one or two sentences.",
)
# Acknowledgements that open an assistant's answer after a correction ("You're right, thank you for the
# correction.", "Correct, my mistake:"): they belong to that conversation, not to the fact, and a row that
# keeps them teaches the model to thank a correction nobody made. A leading sentence is one when every
# word in it is acknowledgement vocabulary, so "Yes, Python 3.12 is current." is never cut.
_ACK_WORDS = frozenset(
    "you you're youre are right correct correctly absolutely quite thank thanks for the your that this "
    "correction correcting update clarification catch good great point my mistake apologies apology bad sorry "
    "i i'm im am indeed yes so much pointing it out noted ok okay got again".split()
)
_LEADING_SENTENCE = re.compile(r"^\s*([^.!:;]+)[.!:;]+\s*")
MIN_PROBE_WORDS = 3
# Bump when the probe or row scheme changes: stored knowledge pairs are then re-read and re-probed.
# 2: answers without the acknowledgement, and each fact in TRAINING_QUESTIONS' phrasings.
# 3: a `/feedback` correction's answer is the user's statement, addressed to the user.
PROBES_VERSION = 3
# The user's first-person words and the assistant's for the same thing ("my dog" -> "your dog").
_TO_USER = {
    "i'm": "you're",
    "i am": "you are",
    "i was": "you were",
    "i've": "you've",
    "i'll": "you'll",
    "i'd": "you'd",
    "i": "you",
    "me": "you",
    "my": "your",
    "mine": "yours",
    "myself": "yourself",
    "we're": "you're",
    "we are": "you are",
    "we were": "you were",
    "we've": "you've",
    "we'll": "you'll",
    "we'd": "you'd",
    "we": "you",
    "us": "you",
    "our": "your",
    "ours": "yours",
    "ourselves": "yourselves",
}
_FIRST_PERSON = re.compile(
    r"\b(" + "|".join(sorted((re.escape(k) for k in _TO_USER), key=len, reverse=True)) + r")\b", re.IGNORECASE
)
_SECOND_PERSON = re.compile(r"\b(you|you'?re|your|yours|yourself|yourselves)\b", re.IGNORECASE)


class KnowledgeUpdate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    kind: Literal["factual_correction", "knowledge_update"]
    instruction: str = Field(min_length=3)
    response: str = Field(min_length=2)
    evidence: str = Field(min_length=3)
    probes: list[dict[str, Any]] = Field(default_factory=list)  # validated one by one: a bad probe is dropped


class KnowledgeUpdates(BaseModel):
    model_config = ConfigDict(extra="ignore")
    updates: list[KnowledgeUpdate]


@dataclass
class KnowledgeOutcome:
    method: str
    pairs: list[SFTPair] = field(default_factory=list)
    ok: bool = True
    reason: str | None = None
    raw_output: str | None = None


def transcript(conversation: Conversation) -> str:
    return "\n".join(
        f"{m.role.capitalize()}: {m.content}" for m in conversation.messages if m.role != "system"
    )


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def fact_statement(evidence: str) -> str | None:
    """The user's statement of the fact: their correction without the cue words that open it, or None
    when too little is left to be a fact."""
    text = _LEADING_CUE.sub("", evidence.strip()).strip()
    if len(text.split()) < MIN_PROBE_WORDS:
        return None
    return text[0].upper() + text[1:]


def addressed_to_user(statement: str) -> str:
    """The user's statement of a fact as the assistant would say it back: first person becomes second
    ("I live in Tromsø." -> "You live in Tromsø."). A statement that already speaks of "you" (the
    assistant) is returned as the user said it: swapping both persons by rule would garble it."""
    if _SECOND_PERSON.search(statement):
        return statement

    def swap(m: re.Match[str]) -> str:
        word = _TO_USER[m.group(0).lower()]
        starts_sentence = m.start() == 0 or re.search(r"[.!?]\s+$", statement[: m.start()]) is not None
        return word[0].upper() + word[1:] if starts_sentence else word

    return _FIRST_PERSON.sub(swap, statement)


def plain_answer(answer: str) -> str:
    """The assistant's corrected answer without the acknowledgement that opens it; the answer unchanged
    when nothing (or too little) would be left."""
    text = answer.strip()
    while (m := _LEADING_SENTENCE.match(text)) and set(
        re.findall(r"[\w']+", m.group(1).lower())
    ) <= _ACK_WORDS:
        text = text[m.end() :]
    if len(text.split()) < MIN_PROBE_WORDS:
        return answer.strip()
    return text[0].upper() + text[1:]


def with_training_phrasings(pair: SFTPair) -> list[SFTPair]:
    """The knowledge row and its copies under TRAINING_QUESTIONS' other phrasings of the question. The
    held-out probes stay on the first row only (each fact is scored once); the copies name it."""
    rows = [pair]
    for template in TRAINING_QUESTIONS[1:]:
        instruction = template.format(question=pair.instruction)
        metadata = {k: v for k, v in pair.metadata.items() if k not in ("held_out_probes", "probe_method")}
        rows.append(
            pair.model_copy(
                update={
                    "pair_id": content_hash("knowledge", instruction, pair.response),
                    "instruction": instruction,
                    "metadata": {**metadata, "phrasing_of": pair.pair_id},
                }
            )
        )
    return rows


def valid_probes(instruction: str, response: str, candidates: list[dict[str, Any]]) -> list[KnowledgeProbe]:
    """The candidates that are well-formed and truly new phrasings: neither the question nor the answer
    may equal the pair's instruction or response (case and spacing ignored), and no probe twice."""
    taught = {_norm(instruction), _norm(response)}
    out: list[KnowledgeProbe] = []
    seen: set[tuple[str, str]] = set()
    for raw in candidates:
        try:
            probe = KnowledgeProbe.model_validate(raw)
        except ValidationError:
            continue
        key = (_norm(probe.question), _norm(probe.answer))
        if key[0] in taught or key[1] in taught or key in seen or len(probe.answer.split()) < MIN_PROBE_WORDS:
            continue
        seen.add(key)
        out.append(probe)
    return out


def template_probes(instruction: str, response: str, evidence: str) -> list[KnowledgeProbe]:
    """Held-out probes without a model: the question in template wrappers, answered with the user's own
    statement of the fact. Empty when the user's words hold no usable statement."""
    answer = fact_statement(evidence)
    if answer is None:
        return []
    return valid_probes(
        instruction,
        response,
        [{"question": t.format(question=instruction), "answer": answer} for t in PROBE_QUESTIONS],
    )


def _with_probes(metadata: dict[str, Any], probes: list[KnowledgeProbe], method: str) -> dict[str, Any]:
    return {**metadata, "held_out_probes": [p.model_dump() for p in probes], "probe_method": method}


def by_cues(conversation: Conversation) -> KnowledgeOutcome:
    out = KnowledgeOutcome(method="cues")
    msgs = [m for m in conversation.messages if m.role in ("user", "assistant")]
    for i, m in enumerate(msgs):
        if m.role != "user" or i < 2 or msgs[i - 1].role != "assistant":
            continue
        correction, update = _CORRECTION.search(m.content), _UPDATE.search(m.content)
        if not (correction or update):
            continue
        question = next((q for q in reversed(msgs[: i - 1]) if q.role == "user"), None)
        answer = next((a for a in msgs[i + 1 :] if a.role == "assistant"), None)
        # A `/feedback` correction states the right answer: the user's words are the answer. Elsewhere the
        # assistant's reply after the correction is (the user's words may be an instruction, not a fact).
        statement = fact_statement(m.content) if m.content.startswith(CORRECTION_PREFIX) else None
        if question is None or (answer is None and statement is None):
            continue
        kind = "knowledge_update" if update else "factual_correction"
        response = addressed_to_user(statement) if statement else plain_answer(answer.content)
        source_message = answer if statement is None else m
        out.pairs += with_training_phrasings(
            SFTPair(
                pair_id=content_hash("knowledge", question.content, response),
                instruction=question.content,
                response=response,
                source="knowledge_update",
                category=kind,
                confidence=0.5,
                conversation_id=conversation.conversation_id,
                message_id=source_message.message_id,
                created_at=source_message.ts,
                metadata=_with_probes(
                    {
                        "method": "cues",
                        "evidence": m.content,
                        "evidence_message_id": m.message_id,
                        "wrong_answer_message_id": msgs[i - 1].message_id,
                        "answer_from": "the user's correction"
                        if statement
                        else "the assistant's reply after it",
                    },
                    template_probes(question.content, response, m.content),
                    "templates",
                ),
            )
        )
    return out


def by_teacher(conversation: Conversation, teacher: Any, seed: int = 0) -> KnowledgeOutcome:
    out = KnowledgeOutcome(method=f"teacher:{teacher.identity}")
    try:
        [[raw]] = teacher.generate([PROMPT.format(transcript=transcript(conversation))], 1, seed=seed)
    except Exception as exc:  # the teacher's own errors (TeacherError, transport) become a recorded failure
        out.ok, out.reason = False, f"teacher failed: {exc}"
        return out
    out.raw_output = raw
    try:
        parsed = KnowledgeUpdates.model_validate(extract_json_object(raw))
    except (RatingParseError, ValidationError) as exc:
        out.ok, out.reason = False, f"unusable answer: {str(exc)[:300]}"
        return out
    user_text = _norm(" ".join(m.content for m in conversation.messages if m.role == "user"))
    rejected = []
    for u in parsed.updates:
        if _norm(u.evidence) not in user_text:
            rejected.append(u.evidence[:80])
            continue
        # The teacher's probes when it wrote usable ones; otherwise the templates over its quoted evidence.
        probes, probe_method = valid_probes(u.instruction, u.response, u.probes), "teacher"
        if not probes:
            probes, probe_method = template_probes(u.instruction, u.response, u.evidence), "templates"
        out.pairs += with_training_phrasings(
            SFTPair(
                pair_id=content_hash("knowledge", u.instruction, u.response),
                instruction=u.instruction,
                response=u.response,
                source="knowledge_update",
                category=u.kind,
                confidence=0.8,
                conversation_id=conversation.conversation_id,
                metadata=_with_probes({"method": out.method, "evidence": u.evidence}, probes, probe_method),
            )
        )
    if rejected:
        out.reason = f"{len(rejected)} update(s) dropped: evidence not found in the user's words ({rejected})"
    return out


def extract_knowledge_updates(
    conversation: Conversation, method: str, teacher: Any = None
) -> KnowledgeOutcome:
    if method == "cues":
        return by_cues(conversation)
    if method == "teacher":
        if teacher is None:
            raise ValueError("knowledge updates by teacher need a teacher")
        return by_teacher(conversation, teacher)
    raise ValueError(f"knowledge update method must be 'teacher' or 'cues', got {method!r}")


def resolve_method(method: str, teacher_backend: str) -> str:
    """`auto`: the JSON prompt for an OpenAI-compatible teacher, cues for the embedded local one."""
    if method == "auto":
        return "teacher" if teacher_backend == "openai" else "cues"
    return method


@dataclass
class KnowledgeRun:
    conversations: int = 0
    attempted: int = 0
    reused: int = 0
    failures: int = 0
    pairs_stored: int = 0
    superseded: int = 0  # conversation pairs whose answer the user corrected: confidence set to 0
    failure_reasons: list[str] = field(default_factory=list)


def extract_and_store_knowledge_updates(
    db: Any,
    method: str,
    teacher: Any = None,
    days: list | None = None,
    conversation_ids: list[str] | None = None,
    all_conversations: bool = False,
) -> KnowledgeRun:
    """Run one method over the chosen conversations; successful attempts are not repeated, failures are
    recorded (with the teacher's raw output) and retried next time."""
    run = KnowledgeRun()
    # The probe scheme is part of an attempt's identity: when it changes, every conversation is read again
    # and its stored pairs gain the new probes (refresh keeps their use history).
    identity = (
        method if method != "teacher" else f"teacher:{teacher.identity}"
    ) + f"/probes-{PROBES_VERSION}"
    for rows in db.iter_conversation_messages(
        conversation_ids=conversation_ids, days=days if not all_conversations else None
    ):
        conv = Conversation.from_rows(rows)
        run.conversations += 1
        attempt_id = content_hash(
            "knowledge", conv.conversation_id, str(len(rows)), rows[-1]["event_id"], identity
        )
        prior = db.knowledge_attempt(attempt_id)
        if prior and prior["ok"]:
            run.reused += 1
            continue
        run.attempted += 1
        outcome = extract_knowledge_updates(conv, method, teacher)
        if outcome.pairs:
            run.pairs_stored += db.insert_sft_pairs(outcome.pairs, refresh=True)
            wrong = [
                p.metadata["wrong_answer_message_id"]
                for p in outcome.pairs
                if "wrong_answer_message_id" in p.metadata
            ]
            run.superseded += db.mark_sft_superseded(wrong, "corrected by the user (knowledge update)")
        if not outcome.ok:
            run.failures += 1
            run.failure_reasons.append(f"{conv.conversation_id}: {outcome.reason}")
        db.record_knowledge_attempt(
            {
                "attempt_id": attempt_id,
                "conversation_id": conv.conversation_id,
                "method": identity,
                "ok": outcome.ok,
                "pairs_found": len(outcome.pairs),
                "reason": outcome.reason,
                "raw_output": outcome.raw_output,
            }
        )
    return run
