"""The training store: one DuckDB file, schema-versioned by migrations applied on open."""

from hominem_pipeline.store.db import TrainingDatabase

__all__ = ["TrainingDatabase"]
