"""A simulated user, read from `examples/personas/*.yaml`: what it asks about, the preference it holds, the
facts it tells, and its labelling habits. Its judgement of a reply is a rule computed from the text alone
(`Persona.judge`), never hominem's reward model, so "the model got better for this user" is measured by
the user."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from hominem_pipeline.events.schema import Emoji
from hominem_pipeline.settings import StrictModel, load_yaml_model

RuleName = Literal["max_words", "ends_with_question", "regex"]
_WORD = re.compile(r"\S+")


class Preference(StrictModel):
    """What the user wants from every reply. `max_words`: at most that many words; `ends_with_question`:
    the reply's last sentence is one question; `regex`: the reply matches `pattern` (re.search)."""

    description: str = Field(min_length=1)
    rule: RuleName
    max_words: int | None = Field(None, ge=1)
    pattern: str | None = None

    @model_validator(mode="after")
    def _rule_fields(self) -> Preference:
        if self.rule == "max_words" and self.max_words is None:
            raise ValueError("max_words: required when rule is max_words")
        if self.rule == "regex":
            if not self.pattern:
                raise ValueError("pattern: required when rule is regex")
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern: not a regular expression: {exc}") from exc
        return self

    def score(self, reply: str) -> float:
        """How well `reply` satisfies the preference, 0..1 (1 = satisfied). Graded where the rule allows,
        so of two replies that both miss, the nearer one still wins a choice."""
        text = reply.strip()
        if self.rule == "max_words":
            words = len(_WORD.findall(text))
            return 1.0 if words <= (self.max_words or 0) else (self.max_words or 0) / words
        if self.rule == "ends_with_question":
            if text.endswith("?"):
                return 1.0 if text.count("?") == 1 else 0.5
            return 0.0
        return 1.0 if re.search(self.pattern or "", text) else 0.0


class Fact(StrictModel):
    """Something about the user's world: told once (`tell`), asked later (`question`, answered when the
    reply contains `answer`), and corrected (`correction`) when the assistant gets it wrong."""

    tell: str = Field(min_length=1)
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    correction: str = Field(min_length=1)
    new_phrasings: list[str] = Field(
        min_length=1, description="the question asked another way (recall probes)"
    )

    def answered(self, reply: str) -> bool:
        return self.answer.lower() in reply.lower()


@dataclass(frozen=True)
class Judgement:
    """What the user makes of one reply: whether it satisfies (the emoji it taps) and how near the
    preference it is (what a choice between two drafts compares)."""

    satisfied: bool
    score: float


class Habits(StrictModel):
    turns_per_day: int = Field(4, ge=1, le=200)
    chat_days_per_week: int = Field(5, ge=1, le=7)
    regenerate_rate: float = Field(0.5, ge=0.0, le=1.0, description="share of turns regenerated and picked")
    label_rate: float = Field(1.0, ge=0.0, le=1.0, description="share of replies given an emoji")
    consistency: float = Field(
        1.0, ge=0.0, le=1.0, description="chance a judgement follows the preference; otherwise it is inverted"
    )
    satisfied: Emoji = "😊+1"
    missed: Emoji = "😟-1"
    ask_facts_after_days: int = Field(2, ge=0, description="facts are asked about from this day on")


class Persona(StrictModel):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    seed: int = 0
    categories: dict[str, list[str]] = Field(min_length=1, description="category -> prompts asked in the run")
    held_out: dict[str, list[str]] = Field(
        min_length=1, description="category -> fresh prompts, never asked in the run: the win-rate set"
    )
    preference: Preference
    facts: list[Fact] = Field(default_factory=list)
    habits: Habits = Habits()

    @model_validator(mode="after")
    def _sets(self) -> Persona:
        for name, prompts in (*self.categories.items(), *self.held_out.items()):
            if not prompts or any(not p.strip() for p in prompts):
                raise ValueError(f"categories/held_out: {name}: needs non-blank prompts")
        asked = {p.strip() for ps in self.categories.values() for p in ps}
        overlap = sorted(asked & {p.strip() for ps in self.held_out.values() for p in ps})
        if overlap:
            raise ValueError(f"held_out: prompts also asked in the run are not fresh: {overlap[:3]}")
        return self

    def judge(self, reply: str, rng: random.Random) -> Judgement:
        """The user's judgement of one reply as it labels. An inconsistent user sometimes judges the
        opposite of its preference: then a reply that misses is found satisfying (and the reverse), and
        of two drafts the one further from the preference wins (`score` is mirrored)."""
        s = self.preference.score(reply)
        if rng.random() < self.habits.consistency:
            return Judgement(s >= 1.0, s)
        return Judgement(s < 1.0, 1.0 - s)

    def held_out_prompts(self) -> list[str]:
        return [p for ps in self.held_out.values() for p in ps]


def load_persona(path: Path | str) -> Persona:
    """A persona file, validated: a bad one is a ConfigError naming the file and the field."""
    return load_yaml_model(Path(path), Persona)
