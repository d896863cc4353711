"""The event log's record format (documented in docs/EVENT_LOG.md), validated with pydantic.

Two record types share one file, told apart by `type`:
- `message`: one user / assistant / system message of a conversation.
- `feedback`: an emoji label on an assistant message (seed 000 phase 7), the withdrawal of one
  (`emoji_retracted`: the user toggled it off), or a chosen/rejected choice between two assistant messages
  that answer the same user turn.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from hominem_pipeline import clock
from hominem_pipeline.records import content_hash

#: The emotion axes of seed 000 phase 7; config/schemas/emotion.yaml gives the teacher their rubrics.
EMOTION_AXES = ("valence", "arousal", "predictive_discrepancy", "prospect_reflection", "social_broadcast")

#: What each emoji label says on the emotion axes (all axes span [-1, 1]; prospect_reflection is
#: +1 prospect-heavy, -1 reflection-heavy; social_broadcast +1 high, -1 low).
EMOJI_AXES: dict[str, dict[str, float]] = {
    "😊+2": {"valence": 1.0},
    "😊+1": {"valence": 0.5},
    "😟-1": {"valence": -0.5},
    "😟-2": {"valence": -1.0},
    "🚀": {"arousal": 1.0},
    "💔": {"predictive_discrepancy": 1.0},
    "⏳": {"prospect_reflection": 1.0},
    "🪞": {"prospect_reflection": -1.0},
    "🤗": {"social_broadcast": 1.0},
    "🎭": {"social_broadcast": -1.0},
}
Emoji = Literal["😊+2", "😊+1", "😟-1", "😟-2", "🚀", "💔", "⏳", "🪞", "🤗", "🎭"]


def _utc(v: datetime) -> datetime:
    """Naive UTC: what DuckDB's TIMESTAMP holds. An aware time is converted, a naive one taken as UTC."""
    if v.tzinfo is not None:
        v = v.astimezone(UTC).replace(tzinfo=None)
    return v


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(min_length=1, max_length=128)
    conversation_id: str = Field(min_length=1, max_length=256)
    timestamp: datetime
    metadata: dict[str, Any] = Field(default_factory=dict)

    _ts = field_validator("timestamp")(_utc)

    def to_line(self) -> str:
        return self.model_dump_json(exclude_none=True) + "\n"


class MessageEvent(_Event):
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system"]
    content: str = Field(min_length=1)
    seq: int | None = Field(default=None, ge=0)
    parent_id: str | None = None
    draft_index: int | None = Field(default=None, ge=0)
    internal_generated: bool = False
    introspection: bool = False
    origin: str = "server"

    @field_validator("content")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("content is blank")
        return v

    @classmethod
    def create(cls, conversation_id: str, role: str, content: str, **kw: Any) -> MessageEvent:
        """A new message with a fresh time and an id hashed from its content and position."""
        ts = kw.pop("timestamp", None) or clock.now()
        event_id = kw.pop("event_id", None) or content_hash(
            "message",
            conversation_id,
            role,
            content,
            str(kw.get("seq")),
            str(kw.get("draft_index")),
            ts.isoformat(),
        )
        return cls(
            event_id=event_id, conversation_id=conversation_id, role=role, content=content, timestamp=ts, **kw
        )


class FeedbackEvent(_Event):
    type: Literal["feedback"] = "feedback"
    kind: Literal["emoji", "emoji_retracted", "preference"]
    message_id: str | None = None
    emoji: Emoji | None = None
    chosen_message_id: str | None = None
    rejected_message_id: str | None = None

    @model_validator(mode="after")
    def _shape(self) -> FeedbackEvent:
        if self.kind in ("emoji", "emoji_retracted"):
            if not self.message_id or not self.emoji:
                raise ValueError(f"an {self.kind} feedback event needs message_id and emoji")
        else:
            if not self.chosen_message_id or not self.rejected_message_id:
                raise ValueError(
                    "a preference feedback event needs chosen_message_id and rejected_message_id"
                )
            if self.chosen_message_id == self.rejected_message_id:
                raise ValueError("chosen_message_id and rejected_message_id are the same message")
        return self

    @property
    def axes(self) -> dict[str, float]:
        # A withdrawn label says nothing about the emotion axes.
        return dict(EMOJI_AXES[self.emoji]) if self.emoji and self.kind == "emoji" else {}


Event = Annotated[MessageEvent | FeedbackEvent, Field(discriminator="type")]
_EVENT = TypeAdapter(Event)


def parse_event(line: str | bytes) -> MessageEvent | FeedbackEvent:
    """One log line to an event; raises pydantic.ValidationError naming the field."""
    return _EVENT.validate_json(line)
