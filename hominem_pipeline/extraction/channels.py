"""The steps the Dagster assets and the CLI run, one function each: ingest event-log days, label them,
build the SFT pairs (memory channel) and the preference pairs (reward channel), with their exports."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from hominem_pipeline.atomic import file_digest, write_jsonl_atomic
from hominem_pipeline.events.ingest import IngestResult, ingest_day
from hominem_pipeline.events.log import EventLog
from hominem_pipeline.extraction.config import (
    conversation_labels_export_path,
    events_dir,
    load_conversations_config,
    preferences_export_path,
    sft_export_path,
)
from hominem_pipeline.extraction.conversation_labels import (
    LabelRun,
    build_emotion_teacher,
    label_day,
    label_export_rows,
)
from hominem_pipeline.extraction.intensity import best_intensity_source
from hominem_pipeline.extraction.knowledge import (
    KnowledgeRun,
    extract_and_store_knowledge_updates,
    resolve_method,
)
from hominem_pipeline.extraction.preferences import build_preference_pairs, feedback_choices
from hominem_pipeline.extraction.store import ExtractionResult, extract_and_store_sft_pairs, sft_export_rows
from hominem_pipeline.manifold import RewardManifold, load_manifold
from hominem_pipeline.settings import Settings
from hominem_pipeline.store import TrainingDatabase
from hominem_pipeline.validation import read_jsonl


def ingest_days(settings: Settings, days: list[date]) -> list[IngestResult]:
    log = EventLog(events_dir(settings))
    with TrainingDatabase(settings.database_path) as db:
        return [ingest_day(db, log, d) for d in days]


def emotion_manifold_path(settings: Settings) -> Path:
    return settings.config_dir / "schemas" / "emotion.yaml"


def _share_local_model(source: Any, target: Any) -> None:
    # Two local teachers on one model would load it twice; the emotion rater reuses the loaded weights.
    if (
        hasattr(source, "_load")
        and hasattr(target, "_model")
        and getattr(source, "model_path", None) == getattr(target, "model_path", 1)
    ):
        source._load()
        target._model, target._tok, target._digit_ids = source._model, source._tok, source._digit_ids


@dataclass
class DayLabels:
    day: date
    run: LabelRun
    export: Path
    rows: int
    digest: str


def label_days(
    settings: Settings, days: list[date], reward_teacher: Any, force: bool = False
) -> list[DayLabels]:
    cfg = load_conversations_config(settings).labels
    raters: list[tuple[str, Any, RewardManifold]] = [
        ("reward", reward_teacher, load_manifold(settings.manifold_path))
    ]
    if cfg.emotion:
        emotion = load_manifold(emotion_manifold_path(settings))
        emotion_teacher = build_emotion_teacher(settings)
        _share_local_model(reward_teacher, emotion_teacher)
        raters.append(("emotion", emotion_teacher, emotion))
    out = []
    with TrainingDatabase(settings.database_path) as db:
        for d in days:
            run = label_day(
                db, d, raters, batch_size=cfg.batch_size, max_turns=cfg.max_turns_per_run, force=force
            )
            rows = label_export_rows(db, d)
            path = conversation_labels_export_path(settings, d)
            write_jsonl_atomic(path, rows)
            out.append(DayLabels(d, run, path, len(rows), file_digest(path)))
    return out


@dataclass
class SFTBuild:
    extraction: ExtractionResult
    knowledge: KnowledgeRun | None
    knowledge_method: str
    intensity_source: str
    export: Path
    exported: int
    by_source: dict[str, int] = field(default_factory=dict)
    digest: str = ""
    superseded: int = 0


def build_sft_pairs(
    settings: Settings,
    teacher_factory: Callable[[], Any] | None = None,
    include_introspection: bool | None = None,
) -> SFTBuild:
    """Extract from every stored conversation (already-extracted turns are skipped), add knowledge
    updates, and publish `data/sft/sft_training.jsonl`."""
    cfg = load_conversations_config(settings)
    method = resolve_method(cfg.knowledge_updates.method, settings.inference.teacher.backend)
    from hominem_pipeline.embedding import Embedder

    embedder = Embedder(settings.inference.embeddings.model)
    with TrainingDatabase(settings.database_path) as db:
        source = best_intensity_source(db, settings.artifacts_dir, cfg.extraction.use_reward_model)
        extraction = extract_and_store_sft_pairs(
            db,
            all_conversations=True,
            include_context=cfg.extraction.include_context,
            include_introspection=cfg.extraction.include_introspection
            if include_introspection is None
            else include_introspection,
            options=cfg.extraction.options(),
            embedder=embedder,
            intensity=source,
        )
        knowledge = None
        if method != "off":
            knowledge = extract_and_store_knowledge_updates(
                db,
                method,
                teacher=teacher_factory() if method == "teacher" and teacher_factory else None,
                all_conversations=True,
            )
        # A draft the user rejected (an explicit choice, or the lower emoji valence of two drafts) is the
        # rejected side of a preference pair: it must not be taught as a memory. Marked like corrected
        # answers (confidence 0), also when the feedback arrives after the row was extracted.
        choices, _ = feedback_choices(db, cfg.preferences.min_valence_gap)
        db.mark_sft_superseded(sorted({c.rejected_id for c in choices}), "rejected side of a user preference")
        # Pairs whose answer the user corrected or rejected (confidence 0) stay in the store, out of training.
        rows = [r for r in sft_export_rows(db) if r["confidence"] > 0]
        superseded = int(db.scalar("SELECT count(*) FROM sft_pairs WHERE confidence = 0"))
    export = sft_export_path(settings)
    n = write_jsonl_atomic(export, rows)
    return SFTBuild(
        extraction=extraction,
        knowledge=knowledge,
        knowledge_method=method,
        intensity_source=source.name,
        export=export,
        exported=n,
        by_source=dict(Counter(r["source"] for r in rows)),
        digest=file_digest(export),
        superseded=superseded,
    )


@dataclass
class PreferencesBuild:
    export: Path
    exported: int
    by_source: dict[str, int]
    skipped: dict[str, int]
    digest: str
    scored: int  # pairs carrying reward_intensity and safety_score


def build_preferences(settings: Settings) -> PreferencesBuild:
    """Build every preference pair, store them, and publish `data/preferences/preferences.jsonl`."""
    cfg = load_conversations_config(settings).preferences
    manifold = load_manifold(settings.manifold_path)
    teacher_rows = (
        read_jsonl(settings.reward_samples_export) if settings.reward_samples_export.is_file() else []
    )
    with TrainingDatabase(settings.database_path) as db:
        built = build_preference_pairs(db, manifold, teacher_rows, cfg.min_margin, cfg.min_valence_gap)
        db.upsert_preference_pairs(built.pairs)
    rows = [p.model_dump(mode="json") for p in sorted(built.pairs, key=lambda p: (p.source, p.pair_id))]
    export = preferences_export_path(settings)
    n = write_jsonl_atomic(export, rows)
    return PreferencesBuild(
        export=export,
        exported=n,
        by_source=dict(Counter(p.source for p in built.pairs)),
        skipped=dict(built.skipped),
        digest=file_digest(export),
        scored=sum(1 for p in built.pairs if p.reward_intensity is not None and p.safety_score is not None),
    )
