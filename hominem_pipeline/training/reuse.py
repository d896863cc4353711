"""When a training cycle would learn nothing new, so `run_training` reuses a published adapter instead of
training one (a second `make run` with no new data trains nothing).

A cycle is fixed by its recipe (the training config and the base model), the adapter it continues from
and its prepared examples (text, channel, final weight: scoring, recency, gate and replay already
applied). Their hash is the cycle's `inputs_fingerprint`, recorded in the adapter's METADATA.json. Two
rules, checked before any model is loaded:

- same fingerprint: a published adapter trained on exactly these inputs from this parent is the answer
  (training is seeded, so training again would give the same adapter);
- nothing new: the parent (`current`) was trained with the same recipe and every prepared example was
  already trained by the parent's lineage (`trained_examples`), so the parent is the answer.
Plain Python; no Dagster.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hominem_pipeline.atomic import METADATA_FILE
from hominem_pipeline.training.config import TrainingConfig
from hominem_pipeline.training.data import Example

FINGERPRINT_KEY = "inputs_fingerprint"
RECIPE_KEY = "recipe_hash"


def _digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def recipe_hash(config: TrainingConfig, base_model: str) -> str:
    """The training config and the base model: a change to either is a new recipe."""
    return _digest({"config": config.model_dump(mode="json"), "base_model": base_model})


def inputs_fingerprint(recipe: str, parent: str | None, examples: Iterable[Example]) -> str:
    """What decides the cycle's outcome: recipe, parent adapter, and each prepared example with its weight."""
    rows = sorted(
        (e.channel, e.example_id, e.prompt, e.chosen, e.rejected or "", round(e.weight, 9), e.gate)
        for e in examples
    )
    return _digest({"recipe": recipe, "parent": parent, "examples": rows})


@dataclass(frozen=True)
class Reuse:
    version: str
    path: Path
    reason: str
    metadata: dict[str, Any]


def _metadata(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / METADATA_FILE).read_text())
    except (OSError, ValueError):
        return None


def find_reusable(
    lora_root: Path,
    recipe: str,
    fingerprint: str,
    parent: str | None,
    examples: list[Example],
    trained_by_lineage: set[tuple[str, str]] | None,
) -> Reuse | None:
    """The adapter these inputs would give, if one is published (see the module doc), else None.
    `trained_by_lineage` holds (channel, example_id) the parent's lineage trained on (None: unknown, e.g.
    no store, so the "nothing new" rule is not applied)."""
    root = Path(lora_root)
    if examples and parent is not None and trained_by_lineage is not None:
        meta = _metadata(root / parent)
        if meta is not None and meta.get(RECIPE_KEY) == recipe:
            new = [e for e in examples if (e.channel, e.example_id) not in trained_by_lineage]
            if not new:
                return Reuse(parent, root / parent,
                             f"nothing new: all {len(examples)} examples were trained by {parent}'s lineage "
                             "with the same recipe", meta)
    if root.is_dir():
        for folder in sorted(root.iterdir()):
            if not folder.is_dir() or folder.name.startswith("."):
                continue
            meta = _metadata(folder)
            if meta is not None and meta.get(FINGERPRINT_KEY) == fingerprint:
                return Reuse(folder.name, folder,
                             f"same inputs: {folder.name} was trained on these examples with this recipe "
                             f"from {parent or 'the base model'}", meta)
    return None
