"""The teacher interface and the result of one rating."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from hominem_pipeline.manifold import RewardLabel, RewardManifold


class TeacherError(RuntimeError):
    """The teacher could not do what was asked (after its retries)."""


@dataclass
class RatingOutcome:
    """Either a valid `label` or a `failure` reason, never both; `raw_output` keeps what the teacher said."""

    label: RewardLabel | None
    failure: str | None = None
    raw_output: str | None = None
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return self.label is not None


class Teacher(Protocol):
    #: Identifies the generator (backend, model, endpoint): part of every trajectory's content hash.
    identity: str
    #: Identifies the rating method: part of every label's content hash.
    rater_identity: str

    def generate(self, prompts: list[str], n: int, seed: int = 0) -> list[list[str]]:
        """N candidate responses for each prompt (a single user message each)."""
        ...

    def rate(self, items: list[tuple[str, str]], manifold: RewardManifold) -> list[RatingOutcome]:
        """One outcome per (prompt, response), in order, rated on `manifold`'s dimensions and scalars."""
        ...
