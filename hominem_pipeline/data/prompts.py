"""Seed prompts from config/prompts/seed_prompts.yaml, validated, with a content hash each."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

SEED_CATEGORIES = (
    "emotional_support",
    "disagreement_conflict",
    "moral_dilemmas",
    "information_seeking",
    "agency_empowerment",
)


class SeedPrompt(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    prompt_id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    category: str
    text: str = Field(min_length=3)

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(f"{self.category}\0{self.text}".encode()).hexdigest()[:16]


def load_seed_prompts(path: Path | str) -> list[SeedPrompt]:
    path = Path(path)
    raw = yaml.safe_load(path.read_text())
    if not isinstance(raw, dict) or not isinstance(raw.get("categories"), dict):
        raise ValueError(f"{path}: expected a top-level 'categories' mapping")
    prompts: list[SeedPrompt] = []
    for category, entries in raw["categories"].items():
        if not isinstance(entries, list):
            raise ValueError(f"{path}: categories.{category} must be a list")
        for i, entry in enumerate(entries):
            try:
                prompts.append(
                    SeedPrompt(prompt_id=entry.get("id", ""), category=category, text=entry.get("text", ""))
                )
            except (ValidationError, AttributeError) as exc:
                raise ValueError(f"{path}: categories.{category}[{i}]: {exc}") from exc
    ids = [p.prompt_id for p in prompts]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ValueError(f"{path}: duplicate prompt ids {dupes}")
    return prompts


def select_prompts(prompts: list[SeedPrompt], limit: int) -> list[SeedPrompt]:
    """The first `limit` prompts taken round-robin across categories (0 = all), so a small run still
    covers every category."""
    if limit <= 0 or limit >= len(prompts):
        return list(prompts)
    by_cat: dict[str, list[SeedPrompt]] = {}
    for p in prompts:
        by_cat.setdefault(p.category, []).append(p)
    out: list[SeedPrompt] = []
    depth = 0
    while len(out) < limit:
        for cat in by_cat:
            if depth < len(by_cat[cat]) and len(out) < limit:
                out.append(by_cat[cat][depth])
        depth += 1
    return out
