"""The chat service behind every endpoint: conversations, replies, labels, choices and corrections, each
written to the event log (never the DuckDB store) with the metadata ingestion and training need.

The conversations the server knows are held in memory, built from the event log at start and kept up to
date by the service's own appends, so a label or a choice can be checked against the message it names
(unknown ids are refused) and the chat page can show a conversation with its labels after a reload.
One lock orders "check, append, remember", so concurrent clients can neither lose nor duplicate a label.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hominem_pipeline import clock
from hominem_pipeline.events.log import DayRead, EventLog
from hominem_pipeline.events.schema import FeedbackEvent, MessageEvent
from hominem_pipeline.extraction.knowledge import CORRECTION_PREFIX
from hominem_pipeline.records import content_hash
from hominem_pipeline.serving.engine import Engine, Reply, Sampling

log = logging.getLogger(__name__)


class UnknownId(LookupError):
    """A request names a conversation or message the server does not know; `field` names the field."""

    def __init__(self, field_name: str, value: str):
        super().__init__(f"{field_name}: unknown id {value!r}")
        self.field = field_name


class Conflict(ValueError):
    """A request that is well-formed but contradicts the conversation (e.g. a choice between replies to
    different turns); `field` names the field."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


@dataclass
class Conversation:
    conversation_id: str
    messages: list[MessageEvent] = field(default_factory=list)
    choices: list[FeedbackEvent] = field(default_factory=list)
    updated_at: datetime | None = None

    @property
    def title(self) -> str:
        first = next((m.content for m in self.messages if m.role == "user"), "")
        return first[:60] or self.conversation_id

    def next_seq(self) -> int:
        return 1 + max((m.seq for m in self.messages if m.seq is not None), default=-1)

    def thread(self, until: MessageEvent | None = None) -> list[MessageEvent]:
        """The conversation as the model should see it: every user / system message and, for each user
        turn, one assistant draft (the one chosen in a preference, else the first). With `until`, the
        messages before it (then the history of a regeneration)."""
        chosen = {c.chosen_message_id for c in self.choices}
        rejected = {c.rejected_message_id for c in self.choices}
        drafts: dict[str | None, list[MessageEvent]] = {}
        for m in self.messages:
            if m.role == "assistant":
                drafts.setdefault(m.parent_id, []).append(m)
        out: list[MessageEvent] = []
        for m in self.messages:
            if until is not None and m.event_id == until.event_id:
                break
            if m.role != "assistant":
                out.append(m)
                continue
            options = drafts[m.parent_id]
            best = next((d for d in options if d.event_id in chosen), None) or next(
                (d for d in options if d.event_id not in rejected), options[0]
            )
            if m is best:
                out.append(m)
        return out


class ConversationIndex:
    """Conversations, messages and current emoji labels, as the event log says."""

    def __init__(self) -> None:
        self.conversations: dict[str, Conversation] = {}
        self.messages: dict[str, MessageEvent] = {}
        self.labels: dict[str, set[str]] = {}
        self.event_ids: set[str] = set()

    @classmethod
    def from_log(cls, log_: EventLog) -> ConversationIndex:
        index = cls()
        for day in log_.days():
            for e in log_.scan_day(day, DayRead()):
                index.apply(e)
        return index

    def apply(self, e: MessageEvent | FeedbackEvent) -> None:
        if e.event_id in self.event_ids:
            return
        self.event_ids.add(e.event_id)
        conv = self.conversations.setdefault(e.conversation_id, Conversation(e.conversation_id))
        conv.updated_at = max(conv.updated_at or e.timestamp, e.timestamp)
        if isinstance(e, MessageEvent):
            conv.messages.append(e)
            self.messages[e.event_id] = e
        elif e.kind == "emoji":
            self.labels.setdefault(e.message_id or "", set()).add(e.emoji or "")
        elif e.kind == "emoji_retracted":
            self.labels.get(e.message_id or "", set()).discard(e.emoji or "")
        else:
            conv.choices.append(e)

    def message(self, message_id: str, field_name: str = "message_id") -> MessageEvent:
        m = self.messages.get(message_id)
        if m is None:
            raise UnknownId(field_name, message_id)
        return m


@dataclass(frozen=True)
class Turn:
    """What a client asks to be answered (see `ChatService.open_turn`) and through which endpoint."""

    endpoint: str
    conversation_id: str | None = None
    messages: Sequence[dict[str, str]] | None = None
    prompt: str | None = None
    regenerate: str | None = None


@dataclass
class Exchange:
    """A reply and where it was written."""

    reply: Reply
    conversation_id: str
    user_message_id: str | None
    message_id: str
    draft_index: int
    reward: dict[str, Any] | None


class ChatService:
    def __init__(self, engine: Engine, event_log: EventLog):
        self.engine = engine
        self.log = event_log
        self._lock = threading.Lock()
        self.index = ConversationIndex.from_log(event_log)

    # -- writing -----------------------------------------------------------------------------------
    def _append(self, events: Sequence[MessageEvent | FeedbackEvent]) -> None:
        """Append to the log first, then remember: what the index shows is always on disk."""
        self.log.append(events)
        for e in events:
            self.index.apply(e)

    # -- turns -------------------------------------------------------------------------------------
    def open_turn(self, turn: Turn) -> tuple[list[dict[str, str]], dict]:
        """Record the user's side of a turn and return (the messages to generate from, where the reply
        goes). Exactly one of `messages` (a client that keeps its own history, as OpenAI clients do),
        `prompt` (continue `conversation_id` as the server knows it, or start one) and `regenerate` (a
        user message id to answer again) is given; the request model checks that."""
        conversation_id, messages, prompt, regenerate = (
            turn.conversation_id,
            turn.messages,
            turn.prompt,
            turn.regenerate,
        )
        with self._lock:
            if regenerate is not None:
                user = self.index.message(regenerate, "regenerate")
                if user.role != "user":
                    raise Conflict(
                        "regenerate", "names an assistant message; give the user message it answers"
                    )
                conv = self.index.conversations[user.conversation_id]
                history = conv.thread(until=None)
                history = history[: next(i for i, m in enumerate(history) if m.event_id == user.event_id) + 1]
                drafts = [m for m in conv.messages if m.role == "assistant" and m.parent_id == user.event_id]
                where = {
                    "conversation_id": conv.conversation_id,
                    "parent_id": user.event_id,
                    "draft_index": len(drafts),
                    # Drafts of one reply share its position; imported messages may have none.
                    "seq": user.seq if user.seq is not None else conv.next_seq() - 1,
                }
                return [{"role": m.role, "content": m.content} for m in history], where
            if prompt is not None:
                if conversation_id is not None and conversation_id not in self.index.conversations:
                    raise UnknownId("conversation_id", conversation_id)
                cid = conversation_id or content_hash("conversation", prompt, clock.now().isoformat())
                conv = self.index.conversations.get(cid) or Conversation(cid)
                history = [{"role": m.role, "content": m.content} for m in conv.thread()]
                history.append({"role": "user", "content": prompt})
            else:
                history = [{"role": m["role"], "content": m["content"]} for m in messages or []]
                # A stateless client resends the whole history each turn: its conversation is named by its
                # opening, so the turns of one chat land in one conversation.
                cid = conversation_id or content_hash(
                    "conversation", *(f"{m['role']}:{m['content']}" for m in history[:2])
                )
                conv = self.index.conversations.get(cid) or Conversation(cid)
            seq = max(conv.next_seq(), len(history) - 1)
            last = history[-1]
            user = MessageEvent.create(
                cid, last["role"], last["content"], seq=seq, metadata={"endpoint": turn.endpoint}
            )
            self._append([user])
            return history, {"conversation_id": cid, "parent_id": user.event_id, "draft_index": 0, "seq": seq}

    def close_turn(self, where: dict, reply: Reply, sampling: Sampling, endpoint: str) -> Exchange:
        """Score the reply with the serving reward model and append it with its metadata."""
        s = reply.serving
        user = self.index.messages.get(where["parent_id"])
        scores = self.engine.score(s, user.content if user else "", [reply.text]) if reply.text else None
        reward = scores[0].model_dump() if scores else None
        meta = {
            **s.versions(),
            "reward": reward,
            "latency_s": round(reply.latency_s, 4),
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "finish_reason": reply.finish_reason,
            "sampling": sampling.as_dict(),
            "endpoint": endpoint,
        }
        # A model can answer with nothing at all (an immediate end-of-text); the log refuses blank content,
        # so the empty reply is recorded as such rather than dropped.
        content = reply.text or "(empty reply)"
        if not reply.text:
            meta["empty_reply"] = True
        with self._lock:
            msg = MessageEvent.create(
                where["conversation_id"],
                "assistant",
                content,
                seq=where["seq"] + 1,
                parent_id=where["parent_id"],
                draft_index=where["draft_index"],
                metadata=meta,
            )
            self._append([msg])
        return Exchange(
            reply, where["conversation_id"], where["parent_id"], msg.event_id, where["draft_index"], reward
        )

    def reply(self, turn: Turn, sampling: Sampling) -> Exchange:
        history, where = self.open_turn(turn)
        reply = self.engine.generate(history, sampling)
        return self.close_turn(where, reply, sampling, turn.endpoint)

    def stream_reply(self, turn: Turn, sampling: Sampling) -> tuple[dict, Iterator[str], list[Exchange]]:
        """(where the reply goes, the text pieces, a list that holds the Exchange once the pieces end)."""
        history, where = self.open_turn(turn)
        finished: list[Exchange] = []
        pieces = self.engine.stream(
            history,
            sampling,
            lambda reply: finished.append(self.close_turn(where, reply, sampling, turn.endpoint)),
        )
        return where, pieces, finished

    # -- feedback ----------------------------------------------------------------------------------
    def feedback(
        self,
        message_id: str | None,
        labels: Sequence[str],
        remove_labels: Sequence[str],
        chosen_message_id: str | None,
        rejected_message_id: str | None,
        correction: str | None,
    ) -> list[FeedbackEvent | MessageEvent]:
        """Validate everything first, then append all of it in one write; labels already set (or already
        absent, for removals) write nothing, so a repeated click cannot duplicate a label."""
        now = clock.now()
        with self._lock:
            events: list[FeedbackEvent | MessageEvent] = []
            target = self.index.message(message_id) if message_id else None
            if target is not None and (labels or remove_labels) and target.role != "assistant":
                raise Conflict("message_id", "labels go on assistant messages")
            have = self.index.labels.get(message_id or "", set())
            for kind, emojis in (("emoji", labels), ("emoji_retracted", remove_labels)):
                for emoji in dict.fromkeys(emojis):
                    if (emoji in have) == (kind == "emoji"):
                        continue
                    events.append(
                        FeedbackEvent(
                            event_id=content_hash("feedback", kind, message_id, emoji, now.isoformat()),
                            conversation_id=target.conversation_id,
                            timestamp=now,
                            kind=kind,  # type: ignore[union-attr]
                            message_id=message_id,
                            emoji=emoji,
                            metadata={"origin": "server"},
                        )
                    )
            if chosen_message_id or rejected_message_id:
                chosen = self.index.message(chosen_message_id or "", "chosen_message_id")
                rejected = self.index.message(rejected_message_id or "", "rejected_message_id")
                if (
                    chosen.role != "assistant"
                    or rejected.role != "assistant"
                    or chosen.parent_id != rejected.parent_id
                ):
                    raise Conflict(
                        "rejected_message_id", "chosen and rejected must be two replies to the same user turn"
                    )
                events.append(
                    FeedbackEvent(
                        event_id=content_hash(
                            "feedback", "preference", chosen.event_id, rejected.event_id, now.isoformat()
                        ),
                        conversation_id=chosen.conversation_id,
                        timestamp=now,
                        kind="preference",
                        chosen_message_id=chosen.event_id,
                        rejected_message_id=rejected.event_id,
                        metadata={"origin": "server"},
                    )
                )
            if correction:
                if target is None or target.role != "assistant":
                    raise Conflict("message_id", "a correction names the assistant message it corrects")
                conv = self.index.conversations[target.conversation_id]
                # A user turn that says "Correction:" is what the knowledge extractor's correction cue and
                # the teacher's transcript prompt both read as a factual correction of the reply before it.
                events.append(
                    MessageEvent.create(
                        target.conversation_id,
                        "user",
                        CORRECTION_PREFIX + correction.strip(),
                        seq=conv.next_seq(),
                        parent_id=target.event_id,
                        timestamp=now,
                        metadata={"kind": "correction", "corrects": target.event_id, "endpoint": "/feedback"},
                    )
                )
            if events:
                self._append(events)
            return events

    # -- reading -----------------------------------------------------------------------------------
    def conversation_list(self) -> list[Conversation]:
        convs = list(self.index.conversations.values())
        return sorted(convs, key=lambda c: c.updated_at or datetime.min, reverse=True)

    def conversation(self, conversation_id: str) -> Conversation:
        conv = self.index.conversations.get(conversation_id)
        if conv is None:
            raise UnknownId("conversation_id", conversation_id)
        return conv
