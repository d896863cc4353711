"""Dagster resources: project settings and the teacher. Thin: they build domain objects."""

from pathlib import Path

import dagster as dg

from hominem_pipeline.manifold import RewardManifold, load_manifold
from hominem_pipeline.settings import Settings
from hominem_pipeline.store import TrainingDatabase
from hominem_pipeline.teacher import Teacher, build_teacher

#: The concurrency pool of every step (asset or check) that opens the DuckDB store: DuckDB lets one
#: process hold the file, even for reading while another writes, so such steps must never overlap.
#: Limited to 1 in dagster.yaml.
STORE_POOL = "duckdb"


class HominemResource(dg.ConfigurableResource):
    """Where hominem's config, data and artifacts live. Empty fields fall back to HOMINEM_HOME /
    HOMINEM_CONFIG_DIR, then the repository."""

    home: str | None = None
    config_dir: str | None = None

    def settings(self) -> Settings:
        return Settings(home=self.home, config_dir=self.config_dir)

    def manifold(self) -> RewardManifold:
        return load_manifold(self.settings().manifold_path)

    def open_db(self) -> TrainingDatabase:
        """The store. Only a step in the `STORE_POOL` pool may call this (see `STORE_POOL`)."""
        return TrainingDatabase(self.settings().database_path)

    def artifacts_dir(self) -> Path:
        return self.settings().artifacts_dir


class TeacherResource(dg.ConfigurableResource):
    """The teacher configured in config/inference.toml ([teacher]): the `local` backend (in-process,
    default) or `openai` (any OpenAI-compatible endpoint). Switching is a config-file edit."""

    hominem: HominemResource

    def build(self) -> Teacher:
        return build_teacher(self.hominem.settings())
