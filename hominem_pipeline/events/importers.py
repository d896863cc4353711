"""Turn existing chat histories into event-log records: OpenAI-style `{"messages": [...]}` JSONL and
LM Studio saved-conversation JSON.

Ids are content hashes (conversation = hash of its messages; message = hash of conversation, position,
draft and text), so importing the same file twice appends nothing, and two imports of one file running at
once append each id once (`EventLog.append_new` checks and appends under one lock). Every error names the
file, the line (JSONL) and the field.

Times: a message keeps its source's time (a message's `timestamp`, else its conversation's `timestamp` or
LM Studio's `createdAt`); without one, every message of the import gets the same import time, and `seq`
(the position in its conversation) keeps the order. No time is made up to order messages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hominem_pipeline.events.log import EventLog
from hominem_pipeline.events.schema import MessageEvent
from hominem_pipeline.records import content_hash
from hominem_pipeline.validation import field_errors, parse_json, scan_jsonl


class ChatImportError(ValueError):
    """A chat history could not be read; the message names file, line and field."""


_MAX_EPOCH_MS = int(datetime(9999, 12, 31, tzinfo=UTC).timestamp() * 1000)
_EXPECTED = (
    'expected OpenAI-style JSON Lines (one {"messages": [...]} object per line) or an LM Studio saved '
    "conversation (.json with messages[].versions)"
)


# -- OpenAI-style messages JSONL ------------------------------------------------------------------
class _TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class OpenAIMessage(BaseModel):
    """One chat message. `internal_generated` / `introspection` are hominem extensions (optional)."""

    model_config = ConfigDict(extra="allow")
    role: Literal["system", "user", "assistant", "tool", "function", "developer"]
    content: str | list[_TextPart] | None = None
    internal_generated: bool = False
    introspection: bool = False
    timestamp: datetime | None = None  # when it was said, if the source knows (ISO 8601 or epoch seconds)

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text or "" for p in self.content if p.type in ("text", "input_text", "output_text"))


class OpenAIConversation(BaseModel):
    model_config = ConfigDict(extra="allow")
    messages: list[OpenAIMessage] = Field(min_length=1)
    timestamp: datetime | None = None  # when the conversation took place, if the source knows


# -- LM Studio saved conversation ----------------------------------------------------------------
class _LMBlock(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str = "text"
    text: str | None = None


class _LMStep(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str = "contentBlock"
    content: list[_LMBlock] = Field(default_factory=list)


class LMStudioVersion(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "user", "assistant"]
    type: str = "singleStep"
    content: list[_LMBlock] | str | None = None
    steps: list[_LMStep] = Field(default_factory=list)

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        blocks = list(self.content or [])
        for s in self.steps:
            if s.type == "contentBlock":
                blocks.extend(s.content)
        return "".join(b.text or "" for b in blocks if b.type == "text")


class LMStudioMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    versions: list[LMStudioVersion] = Field(min_length=1)
    currentlySelected: int = 0  # noqa: N815 (LM Studio's field name)


class LMStudioConversation(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str | None = None
    createdAt: int | None = None  # noqa: N815 (milliseconds since the epoch)
    messages: list[LMStudioMessage] = Field(min_length=1)

    @field_validator("createdAt")
    @classmethod
    def _representable(cls, v: int | None) -> int | None:
        # datetime stops at year 9999; a value past it is a corrupt file, not a time to keep.
        if v is not None and not 0 <= v <= _MAX_EPOCH_MS:
            raise ValueError(f"{v} ms since the epoch is not a time between 1970 and 9999")
        return v


# -- turning them into events --------------------------------------------------------------------
@dataclass
class _Msg:
    role: str
    text: str
    draft_index: int | None = None
    internal_generated: bool = False
    introspection: bool = False
    timestamp: datetime | None = None


@dataclass
class ImportResult:
    path: Path
    format: str
    conversations: int = 0
    messages: int = 0
    appended: int = 0
    already_in_log: int = 0
    skipped_messages: int = 0  # tool calls, empty messages
    conversation_ids: list[str] = field(default_factory=list)


def _events(msgs: list[_Msg], fmt: str, when: datetime, extra: dict[str, Any]) -> list[MessageEvent]:
    """Events for one conversation; a message without its own time gets `when` (its order is `seq`)."""
    canonical = json.dumps([(m.role, m.text, m.draft_index) for m in msgs], ensure_ascii=False)
    conversation_id = "imp-" + content_hash(fmt, canonical)
    events = []
    for seq, m in enumerate(msgs):
        event_id = content_hash("message", conversation_id, str(seq), str(m.draft_index), m.role, m.text)
        events.append(
            MessageEvent(
                event_id=event_id,
                conversation_id=conversation_id,
                role=m.role,
                content=m.text,
                timestamp=m.timestamp or when,
                seq=seq,
                draft_index=m.draft_index,
                internal_generated=m.internal_generated,
                introspection=m.introspection,
                origin=f"import:{fmt}",
                metadata=extra,
            )
        )
    return events


def _openai_messages(conv: OpenAIConversation) -> tuple[list[_Msg], int]:
    out, skipped = [], 0
    for m in conv.messages:
        text = m.text()
        if m.role in ("tool", "function") or not text.strip():
            skipped += 1
            continue
        role = "system" if m.role == "developer" else m.role
        out.append(
            _Msg(
                role,
                text,
                internal_generated=m.internal_generated,
                introspection=m.introspection,
                timestamp=m.timestamp,
            )
        )
    # Consecutive assistant messages with no user message between them are drafts of one reply.
    draft = 0
    for i, m in enumerate(out):
        if m.role == "assistant":
            prev_assistant = i > 0 and out[i - 1].role == "assistant"
            nxt_assistant = i + 1 < len(out) and out[i + 1].role == "assistant"
            draft = draft + 1 if prev_assistant else 0
            if prev_assistant or nxt_assistant:
                m.draft_index = draft
    return out, skipped


def _lmstudio_messages(conv: LMStudioConversation) -> tuple[list[_Msg], int]:
    out, skipped = [], 0
    for m in conv.messages:
        if m.versions[0].role == "assistant" and len(m.versions) > 1:
            # Regenerated replies are drafts of one assistant turn: every version pairs with the user.
            for d, v in enumerate(m.versions):
                if v.text().strip():
                    out.append(_Msg("assistant", v.text(), draft_index=d))
                else:
                    skipped += 1
            continue
        v = m.versions[min(max(m.currentlySelected, 0), len(m.versions) - 1)]
        if v.text().strip():
            out.append(_Msg(v.role, v.text()))
        else:
            skipped += 1
    return out, skipped


def read_chat_file(
    path: Path | str, now: datetime | None = None
) -> tuple[str, list[list[MessageEvent]], int]:
    """(format, events per conversation, skipped messages). `now` is the import time given to messages
    whose source has no time. Raises ChatImportError naming line and field."""
    path = Path(path)
    now = now or datetime.now(UTC)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ChatImportError(f"{path}: cannot read: {exc}") from exc
    if not data.strip():
        raise ChatImportError(f"{path}: empty file: {_EXPECTED}")
    whole: Any = None
    one_line = b"\n" not in data.strip()
    if data.lstrip()[:1] in (b"{", b"["):
        try:
            whole = parse_json(data)
        except json.JSONDecodeError:
            whole = None  # JSONL: several objects (or bad lines, which the line reader names)
        except ValueError as exc:
            if not one_line:
                raise ChatImportError(f"{path}: {exc}") from exc
            # One line: the line reader reports it with its line number.
    if (
        isinstance(whole, dict)
        and isinstance(whole.get("messages"), list)
        and any(isinstance(m, dict) and "versions" in m for m in whole["messages"])
    ):
        try:
            conv = LMStudioConversation.model_validate(whole)
        except ValidationError as exc:
            raise ChatImportError(f"{path}: LM Studio conversation: {field_errors(exc)}") from exc
        started = datetime.fromtimestamp(conv.createdAt / 1000, UTC) if conv.createdAt else now
        msgs, skipped = _lmstudio_messages(conv)
        if not msgs:
            raise ChatImportError(f"{path}: LM Studio conversation: messages: no message with text")
        return (
            "lmstudio",
            [_events(msgs, "lmstudio", started, {"name": conv.name} if conv.name else {})],
            skipped,
        )

    conversations, skipped = [], 0
    if whole is not None and not one_line:
        # One JSON document that is not an LM Studio conversation: say which layouts are read.
        raise ChatImportError(f"{path}: one JSON document that is not an LM Studio conversation; {_EXPECTED}")
    for line_no, obj, reason in scan_jsonl(path):
        if obj is None:
            raise ChatImportError(f"{path}:{line_no}: {reason}")
        try:
            conv = OpenAIConversation.model_validate(obj)
        except ValidationError as exc:
            raise ChatImportError(f"{path}:{line_no}: {field_errors(exc)}") from exc
        msgs, s = _openai_messages(conv)
        skipped += s
        if not any(m.role == "assistant" for m in msgs) or not any(m.role == "user" for m in msgs):
            raise ChatImportError(
                f"{path}:{line_no}: messages: needs at least one user and one assistant message with text"
            )
        conversations.append(_events(msgs, "openai", conv.timestamp or now, {"line": line_no}))
    if not conversations:
        raise ChatImportError(f"{path}: no conversations found")
    return "openai", conversations, skipped


def import_conversations(path: Path | str, log: EventLog) -> ImportResult:
    """Append a chat-history file's messages to today's event-log file, skipping ids already logged."""
    fmt, conversations, skipped = read_chat_file(path)
    result = ImportResult(path=Path(path), format=fmt, skipped_messages=skipped)
    events = []
    for conv in conversations:
        result.conversations += 1
        result.conversation_ids.append(conv[0].conversation_id)
        result.messages += len(conv)
        events.extend(conv)
    result.appended, result.already_in_log = log.append_new(events)
    return result
