"""One training run from project settings: read labels and pairs, train, publish. Shared by the
`reward_model` asset and `hominem reward train`, so both produce the same version from the same data."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hominem_pipeline.atomic import Pointer, file_digest
from hominem_pipeline.embedding import Embedder
from hominem_pipeline.manifold import load_manifold
from hominem_pipeline.reward_model.config import load_reward_model_config
from hominem_pipeline.reward_model.dataset import Split, imported_pairs, load_samples, teacher_pairs
from hominem_pipeline.reward_model.model import METADATA_FILE, RewardModel
from hominem_pipeline.reward_model.registry import PublishedVersion, publish, reward_model_root
from hominem_pipeline.reward_model.train import Logger, TrainingResult, train_reward_model
from hominem_pipeline.settings import Settings
from hominem_pipeline.store import TrainingDatabase


@dataclass
class TrainingRun:
    result: TrainingResult
    published: PublishedVersion
    samples_file: Path
    reused: bool = False  # the inputs had not changed since `latest` was trained: nothing was trained


FINGERPRINT_KEY = "inputs_fingerprint"


def _reuse_latest(settings: Settings, fingerprint: str, path: Path) -> TrainingRun | None:
    """A run that re-reads `latest` when it was trained on exactly these inputs, else None."""
    root = reward_model_root(settings.artifacts_dir)
    version = Pointer(root, "latest").target
    if not version or not (root / version / METADATA_FILE).is_file():
        return None
    meta = json.loads((root / version / METADATA_FILE).read_text())
    if meta.get(FINGERPRINT_KEY) != fingerprint:
        return None
    model = RewardModel.load(root / version)
    accepted = Pointer(root, "current").target == version
    result = TrainingResult(model, meta, Split([], [], [], []))
    return TrainingRun(result, PublishedVersion(version, root / version, False, accepted), path, reused=True)


def read_imported_preferences(settings: Settings, limit: int | None) -> list[dict[str, Any]]:
    """Imported pairs from the store, read-only (an absent store simply has none)."""
    if not settings.database_path.is_file():
        return []
    with TrainingDatabase(settings.database_path, read_only=True) as db:
        tables = {r[0] for r in db.con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if "imported_preferences" not in tables:
            return []
        return db.get_imported_preferences(limit=limit)


def train_and_publish(
    settings: Settings,
    samples_file: Path | str | None = None,
    imported: list[dict[str, Any]] | None = None,
    log_fn: Logger | None = None,
    reuse: bool = True,
) -> TrainingRun:
    """Train on the labels export (or `samples_file`) plus preference pairs and publish the version.
    `imported` lets a caller that already holds the store pass its imported pairs in. With `reuse`, when
    `latest` was trained on the same inputs (labels file, pairs, config, manifold, embedder) nothing is
    trained and that version is returned (`reused`): the embedding pass is most of the cost."""
    manifold = load_manifold(settings.manifold_path)
    cfg = load_reward_model_config(settings)
    path = Path(samples_file) if samples_file else settings.reward_samples_export
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; materialise reward_labels first (make run)")
    samples = load_samples(path, manifold)
    pairs = []
    if cfg.preferences.use_imported:
        if imported is None:
            imported = read_imported_preferences(settings, cfg.preferences.imported_limit)
        pairs += imported_pairs(imported[: cfg.preferences.imported_limit])
    if cfg.preferences.teacher_pairs:
        pairs += teacher_pairs(samples, cfg.preferences.teacher_pair_min_margin)
    fingerprint = hashlib.sha256(
        json.dumps(
            {
                "samples": file_digest(path),
                "imported": (imported or [])[: cfg.preferences.imported_limit]
                if cfg.preferences.use_imported
                else [],
                "config": cfg.model_dump(mode="json"),
                "manifold": manifold.schema_hash,
                "embedder": settings.inference.embeddings.model,
            },
            sort_keys=True,
            default=str,
        ).encode()
    ).hexdigest()[:16]
    if reuse:
        found = _reuse_latest(settings, fingerprint, path)
        if found is not None:
            if log_fn is not None:
                log_fn(f"reward model: inputs unchanged since {found.published.version}; nothing trained")
            return found
    embedder = Embedder(settings.inference.embeddings.model, batch_size=cfg.embedding.batch_size)
    result = train_reward_model(samples, pairs, manifold, embedder, cfg, log_fn=log_fn)
    result.metadata["training_data"]["samples_file"] = str(path)
    result.metadata[FINGERPRINT_KEY] = fingerprint
    return TrainingRun(result, publish(result, settings.artifacts_dir), path)
