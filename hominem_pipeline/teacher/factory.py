"""Build the configured teacher."""

from __future__ import annotations

from hominem_pipeline.settings import Settings
from hominem_pipeline.teacher.base import Teacher


def build_teacher(settings: Settings) -> Teacher:
    cfg = settings.inference.teacher
    labeling = settings.pipeline.labeling
    if cfg.backend == "openai":
        from hominem_pipeline.teacher.openai_backend import OpenAITeacher

        return OpenAITeacher(cfg, rationale=labeling.rationale)
    from hominem_pipeline.models import resolve_model
    from hominem_pipeline.teacher.local import LocalTeacher

    return LocalTeacher(
        resolve_model(cfg.model, settings.models_cache_dir),
        sampling=cfg.sampling,
        spec=cfg.model,
        batch_size=labeling.batch_size,
        rationale=labeling.rationale,
        rationale_max_new_tokens=labeling.rationale_max_new_tokens,
    )
