"""Reward-model versions on disk: `artifacts/reward_model/<version>/`, plus two pointers.

A version's name is the content hash of its weights and `model.json` (which names the training-data
hash), written aside and renamed into place (`atomic.publish_version`), so training twice on the same
data publishes nothing new; loading a version checks its files against the published checksums.
`latest` names the most recently trained version, whatever its quality; `current` names the latest
version that beat the trivial baseline on validation, and is what the rest of hominem scores with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from hominem_pipeline.atomic import Pointer, publish_version, verify_version, write_json_atomic
from hominem_pipeline.reward_model.model import METADATA_FILE, MODEL_FILE, RewardModel

if TYPE_CHECKING:  # the trainer pulls in scipy; loading and pointing at versions does not need it
    from hominem_pipeline.reward_model.train import TrainingResult

ROOT_NAME = "reward_model"


def reward_model_root(artifacts_dir: Path | str) -> Path:
    return Path(artifacts_dir) / ROOT_NAME


@dataclass(frozen=True)
class PublishedVersion:
    version: str
    path: Path
    new: bool  # False when an identical version was already published
    accepted: bool  # True when `current` now names it


def publish(result: TrainingResult, artifacts_dir: Path | str) -> PublishedVersion:
    """Write the trained model as a content-addressed version, point `latest` at it, and move `current`
    to it only if it beats the trivial baseline on validation."""
    root = reward_model_root(artifacts_dir)
    model = result.model

    def write(folder: Path) -> None:
        model.save_arrays(folder)
        write_json_atomic(folder / MODEL_FILE, model.model_spec(result.metadata["training_data"]["hash"]))

    def metadata(version: str) -> dict:
        return {
            "version": version,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "accepted": result.beats_baseline,
            **result.metadata,
        }

    published = publish_version(root, write, metadata, prefix="rm-")
    version, new = published.version, published.new
    model.version = version
    model.metadata = json.loads((root / version / METADATA_FILE).read_text())
    Pointer(root, "latest").set(version)
    accepted = result.beats_baseline
    if accepted:
        Pointer(root, "current").set(version)
    return PublishedVersion(version, root / version, new, accepted)


def load_current(artifacts_dir: Path | str) -> RewardModel | None:
    """The accepted reward model (`current`, or the newest intact one in its history if `current`'s files
    are damaged), or None if no version has beaten the baseline yet."""
    root = reward_model_root(artifacts_dir)
    # A corrupted heads file would score every pair NaN or nonsense: a damaged `current` falls back to
    # the previous accepted version in its history (logged), and fails naming the file if none is intact.
    version = Pointer(root, "current").good_target(verify_version)
    if not version:
        return None
    return RewardModel.load(root / version)


def current_with_note(artifacts_dir: Path | str) -> tuple[RewardModel | None, str]:
    """(`load_current`, why): the accepted reward model and its name, or None and the reason there is
    none, for the steps that score with it when they can (training, evaluation, comparison, extraction)."""
    model = load_current(artifacts_dir)
    if model is None:
        return None, f"no reward model published under {reward_model_root(artifacts_dir)}"
    return model, f"reward model {model.version}"


def resolve_version(artifacts_dir: Path | str, version: str | None = None) -> tuple[Path, str]:
    """(folder, how it was chosen) for an explicit version, else `current`, else `latest`."""
    root = reward_model_root(artifacts_dir)
    if version:
        folder = Path(version) if Path(version).is_dir() else root / version
        if not folder.is_dir():
            raise FileNotFoundError(f"no reward-model version {version!r} under {root}")
        verify_version(folder)
        return folder, "requested"
    for name in ("current", "latest"):
        target = Pointer(root, name).target
        if target:
            verify_version(root / target)
            return root / target, name
    raise FileNotFoundError(f"no reward model under {root}; train one (`hominem reward train` or make run)")


def describe(artifacts_dir: Path | str) -> list[str]:
    """Lines for the `make run` summary: the current and latest versions with their headline metrics."""
    root = reward_model_root(artifacts_dir)
    lines = []
    for name in ("current", "latest"):
        version = Pointer(root, name).target
        if not version:
            lines.append(
                f"  {name:24s} none"
                + (" (no version has beaten the baseline yet)" if name == "current" else "")
            )
            continue
        meta = json.loads((root / version / METADATA_FILE).read_text())
        s = meta["metrics"]["validation"]["summary"]
        pairs = meta["metrics"]["pairs"]
        text = f"  {name:24s} {root / version}"
        if s["mae_mean"] is not None:
            text += f"  (validation MAE {s['mae_mean']:.4f} vs baseline {s['baseline_mae_mean']:.4f}"
            text += f", pairwise accuracy {pairs['accuracy']:.3f} on {pairs['n']})" if pairs.get("n") else ")"
        lines.append(text)
    return lines
