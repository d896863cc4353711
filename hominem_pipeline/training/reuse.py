"""When a training cycle would learn nothing new, so `run_training` reuses a published adapter instead of
training one (a second `make run` with no new data trains nothing).

A cycle's `inputs_fingerprint` hashes its recipe (the training config and the base model) and its
sources: the preference export, the SFT rows' content (not their consumption state) and re-emissions,
and the reward model that scores unscored examples. It is recorded in the adapter's METADATA.json and
checked before any model is loaded:

- `current` (the adapter the cycle would continue) was trained from these same inputs: nothing is new
  since, so `current` is the answer;
- an adapter continued from `current` (or from the base model, without one) was trained from these
  inputs: training is seeded, so training again would give the same adapter; it is the answer.
Changing any source, the recipe, or the reward model makes a new fingerprint, and the cycle trains.
Plain Python; no Dagster.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hominem_pipeline.atomic import METADATA_FILE
from hominem_pipeline.training.config import TrainingConfig

FINGERPRINT_KEY = "inputs_fingerprint"


def _digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def inputs_fingerprint(config: TrainingConfig, base_model: str, sources: dict[str, Any]) -> str:
    """The recipe (training config, base model) and a digest of each source the cycle reads."""
    return _digest({"config": config.model_dump(mode="json"), "base_model": base_model, "sources": sources})


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


def find_reusable(lora_root: Path, fingerprint: str, parent: str | None) -> Reuse | None:
    """The published adapter these inputs give (see the module doc), else None."""
    root = Path(lora_root)
    if parent is not None:
        meta = _metadata(root / parent)
        if meta is not None and meta.get(FINGERPRINT_KEY) == fingerprint:
            return Reuse(
                parent,
                root / parent,
                f"nothing new: {parent} (current) was trained on these inputs with this recipe",
                meta,
            )
    if root.is_dir():
        for folder in sorted(root.iterdir()):
            meta = _metadata(folder) if folder.is_dir() and not folder.name.startswith(".") else None
            if (
                meta is not None
                and meta.get(FINGERPRINT_KEY) == fingerprint
                and meta.get("continued_from") == parent
            ):
                return Reuse(
                    folder.name,
                    folder,
                    f"same inputs: {folder.name} was trained on them with this "
                    f"recipe from {parent or 'the base model'}",
                    meta,
                )
    return None
