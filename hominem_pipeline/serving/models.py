"""The HTTP API's request and response bodies (pydantic): what the OpenAPI document describes and what a
client generator (e.g. for C#) builds its types from. Unknown fields are refused, so a misspelt field
gets a 422 naming it instead of being ignored."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hominem_pipeline.events.schema import Emoji
from hominem_pipeline.reward_model import RewardOutput

_TEXT_LIMIT = 32_000
_ID = Field(min_length=1, max_length=256)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChatMessage(_Body):
    role: Literal["system", "user", "assistant"]
    content: str = Field(min_length=1, max_length=_TEXT_LIMIT)


class SamplingFields(_Body):
    max_tokens: int | None = Field(None, ge=1, description="upper bound on generated tokens")
    temperature: float | None = Field(None, ge=0.0, le=2.0, description="0 = greedy")
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    seed: int | None = Field(None, ge=0, description="makes sampling repeatable")


class GenerateRequest(SamplingFields):
    """Exactly one of `prompt`, `messages`, `regenerate`."""

    prompt: str | None = Field(
        None,
        min_length=1,
        max_length=_TEXT_LIMIT,
        description="a user message; continues `conversation_id` when given",
    )
    messages: list[ChatMessage] | None = Field(
        None, min_length=1, max_length=200, description="a whole conversation kept by the client"
    )
    regenerate: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="a user message id: another reply to that turn (a new draft)",
    )
    conversation_id: str | None = Field(None, min_length=1, max_length=256)
    stream: bool = Field(False, description="server-sent events: {delta} pieces, then the whole response")

    @model_validator(mode="after")
    def _one_input(self) -> GenerateRequest:
        given = [n for n in ("prompt", "messages", "regenerate") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of prompt, messages, regenerate (got {given or 'none'})")
        if self.messages is not None and self.messages[-1].role != "user":
            raise ValueError("messages: the last message must be the user's")
        return self


class GenerateResponse(_Body):
    text: str
    message_id: str
    user_message_id: str | None
    conversation_id: str
    draft_index: int
    base_model: str
    adapter_version: str | None
    reward_model_version: str | None
    profile: str
    reward: RewardOutput | None = Field(
        description="the reply's reward vector; null when no reward model is served"
    )
    finish_reason: Literal["stop", "length"]
    prompt_tokens: int
    completion_tokens: int
    latency_s: float


class RewardRequest(_Body):
    prompt: str = Field(min_length=1, max_length=_TEXT_LIMIT)
    responses: list[str] = Field(min_length=1, max_length=64)

    @model_validator(mode="after")
    def _responses_not_blank(self) -> RewardRequest:
        for i, r in enumerate(self.responses):
            if not r.strip() or len(r) > _TEXT_LIMIT:
                raise ValueError(f"responses.{i}: must be non-blank and at most {_TEXT_LIMIT} characters")
        return self


class RewardResponse(_Body):
    reward_model_version: str
    outputs: list[RewardOutput]


class FeedbackRequest(_Body):
    """Any of: emoji labels to set or withdraw on `message_id`, a choice between two replies to one turn,
    a free-text correction of `message_id`."""

    message_id: str | None = Field(None, min_length=1, max_length=256)
    labels: list[Emoji] = Field(default_factory=list, max_length=10)
    remove_labels: list[Emoji] = Field(default_factory=list, max_length=10)
    chosen_message_id: str | None = Field(None, min_length=1, max_length=256)
    rejected_message_id: str | None = Field(None, min_length=1, max_length=256)
    correction: str | None = Field(None, min_length=1, max_length=_TEXT_LIMIT)

    @model_validator(mode="after")
    def _something(self) -> FeedbackRequest:
        if not (
            self.labels
            or self.remove_labels
            or self.chosen_message_id
            or self.rejected_message_id
            or self.correction
        ):
            raise ValueError(
                "nothing to record: give labels, remove_labels, a chosen/rejected pair or a correction"
            )
        if (self.labels or self.remove_labels or self.correction) and not self.message_id:
            raise ValueError("message_id: required with labels or a correction")
        if bool(self.chosen_message_id) != bool(self.rejected_message_id):
            raise ValueError("chosen_message_id and rejected_message_id go together")
        if self.correction is not None and not self.correction.strip():
            raise ValueError("correction: is blank")
        return self


class FeedbackResponse(_Body):
    event_ids: list[str] = Field(description="events appended to the log (none when nothing changed)")
    labels: list[str] = Field(description="the message's emoji labels now")


class MessageView(_Body):
    message_id: str
    role: str
    content: str
    seq: int | None
    parent_id: str | None
    draft_index: int | None
    labels: list[str]
    chosen: bool | None = Field(description="true/false once a preference names this reply, else null")
    metadata: dict[str, Any]


class ConversationSummary(_Body):
    conversation_id: str
    title: str
    updated_at: str | None
    messages: int


class ConversationView(_Body):
    conversation_id: str
    title: str
    messages: list[MessageView]


class ChatCompletionRequest(SamplingFields):
    """The OpenAI chat-completions body (the fields this server honours; others are accepted and ignored
    so that stock clients work)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=256)
    messages: list[ChatMessage] = Field(min_length=1, max_length=200)
    stream: bool = False
    max_completion_tokens: int | None = Field(None, ge=1)
    n: int = Field(1, ge=1, le=1)
    user: str | None = Field(None, max_length=256, description="used as the conversation id when given")


class ModelCard(_Body):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "hominem"


class ModelList(_Body):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class AdminResult(_Body):
    outcome: str
    serving: dict[str, Any]
    error: str | None = None
    seconds: float


class AssistantMessage(_Body):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(_Body):
    index: int
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]


class Usage(_Body):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(_Body):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    hominem: dict[str, Any] = Field(
        description="message and conversation ids, versions served, reward vector"
    )
