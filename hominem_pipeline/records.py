"""Row contracts shared by the two learning channels: what a preference pair and an SFT pair are.

These are the boundary between data preparation (conversations, teacher labels, imports) and training:
the exporters write them to `data/preferences/preferences.jsonl` and `data/sft/sft_training.jsonl`, and
the trainer reads nothing else. Validation fails loudly, naming the field.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

PreferenceSource = Literal["teacher", "feedback", "import"]
SFTSource = Literal["conversation", "knowledge_update", "correction", "introspection", "import", "teacher"]


def content_hash(*parts: str) -> str:
    """A stable 24-hex-digit id for the parts. "surrogatepass" lets text holding a lone surrogate (valid
    JSON, not valid Unicode) hash instead of crash; every valid string encodes exactly as UTF-8, so ids
    of valid text are unchanged."""
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:24]


class PreferencePair(BaseModel):
    """(prompt, chosen, rejected) for the reward channel.

    `reward_intensity` and `safety_score` may be absent (e.g. imported pairs); the trainer then scores the
    pair with the current reward model and records that model's version in `scored_by`.
    `chosen_safety` / `rejected_safety` let the safety gate refuse to reinforce an unsafe chosen response.
    """

    model_config = ConfigDict(extra="forbid")

    pair_id: str = ""
    prompt: str = Field(min_length=1)
    chosen: str = Field(min_length=1)
    rejected: str = Field(min_length=1)
    source: PreferenceSource
    category: str | None = None
    reward_intensity: float | None = Field(default=None, ge=0.0, le=1.0)
    safety_score: float | None = Field(default=None, ge=0.0, le=1.0)
    chosen_safety: float | None = Field(default=None, ge=0.0, le=1.0)
    rejected_safety: float | None = Field(default=None, ge=0.0, le=1.0)
    dimension_deltas: dict[str, float] = Field(default_factory=dict)  # chosen - rejected, per dimension
    margin: float | None = None  # chosen - rejected on the scalar aggregate
    scored_by: str | None = None  # reward-model version (or teacher rater) that produced the numbers
    created_at: datetime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> PreferencePair:
        if self.chosen.strip() == self.rejected.strip():
            raise ValueError("chosen and rejected are the same text")
        if not self.pair_id:
            self.pair_id = content_hash(self.prompt, self.chosen, self.rejected)
        return self


class SFTPair(BaseModel):
    """(instruction, response) for the memory channel (seed 002 section 1-2)."""

    model_config = ConfigDict(extra="forbid")

    pair_id: str = ""
    instruction: str = Field(min_length=1)
    response: str = Field(min_length=1)
    source: SFTSource
    category: str | None = None
    confidence: float = Field(default=1.0, ge=0.0, le=1.0)
    reward_intensity: float | None = Field(default=None, ge=0.0, le=1.0)
    safety_score: float | None = Field(default=None, ge=0.0, le=1.0)
    weight: float = Field(default=1.0, ge=0.0, le=1.0)  # < 1 down-weights (e.g. opt-in introspection)
    context: str | None = None
    conversation_id: str | None = None
    message_id: str | None = None
    created_at: datetime | None = None
    is_used: bool = False
    used_timestamp: datetime | None = None
    cycle: int | None = None  # the cycle of the `current` adapter that made this row used
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> SFTPair:
        if not self.pair_id:
            self.pair_id = content_hash(self.instruction, self.response)
        return self


class SFTValidationError(ValueError):
    """An SFT pair was refused; the message names the field (and the pair's position in a batch)."""


#: Shorter than these (after stripping whitespace) is not a training example (seed 002 section 8).
MIN_INSTRUCTION_LENGTH = 3
MIN_RESPONSE_LENGTH = 2


def validate_sft_pair(pair: SFTPair | dict[str, Any], index: int | None = None) -> SFTPair:
    """Re-validate a pair (also one built with `model_construct`) and apply the store's length rules."""
    where = f"sft pair #{index}: " if index is not None else "sft pair: "
    data = pair.model_dump() if isinstance(pair, SFTPair) else dict(pair)
    try:
        checked = SFTPair.model_validate(data)
    except ValidationError as exc:
        parts = [f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise SFTValidationError(where + "; ".join(parts)) from exc
    for name, minimum in (("instruction", MIN_INSTRUCTION_LENGTH), ("response", MIN_RESPONSE_LENGTH)):
        got = len(getattr(checked, name).strip())
        if got < minimum:
            raise SFTValidationError(f"{where}{name}: shorter than {minimum} characters (got {got})")
    return checked
