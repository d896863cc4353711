"""One training run from project settings: read labels and pairs, train, publish. Shared by the
`reward_model` asset and `hominem reward train`, so both produce the same version from the same data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hominem_pipeline.embedding import Embedder
from hominem_pipeline.manifold import load_manifold
from hominem_pipeline.reward_model.config import load_reward_model_config
from hominem_pipeline.reward_model.dataset import imported_pairs, load_samples, teacher_pairs
from hominem_pipeline.reward_model.registry import PublishedVersion, publish
from hominem_pipeline.reward_model.train import Logger, TrainingResult, train_reward_model
from hominem_pipeline.settings import Settings
from hominem_pipeline.store import TrainingDatabase


@dataclass
class TrainingRun:
    result: TrainingResult
    published: PublishedVersion
    samples_file: Path


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
) -> TrainingRun:
    """Train on the labels export (or `samples_file`) plus preference pairs and publish the version.
    `imported` lets a caller that already holds the store pass its imported pairs in."""
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
    embedder = Embedder(settings.inference.embeddings.model, batch_size=cfg.embedding.batch_size)
    result = train_reward_model(samples, pairs, manifold, embedder, cfg, log_fn=log_fn)
    result.metadata["training_data"]["samples_file"] = str(path)
    return TrainingRun(result, publish(result, settings.artifacts_dir), path)
