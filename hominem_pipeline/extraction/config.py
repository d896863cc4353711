"""`config/conversations.toml`: extraction rules, knowledge updates, conversation labels, preferences."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import Field

from hominem_pipeline.extraction.sft import ExtractionOptions
from hominem_pipeline.settings import Settings, StrictModel, load_toml_model


class ExtractionConfig(StrictModel):
    dedup_threshold: float = Field(0.92, gt=0.0, le=1.0)
    include_context: bool = False
    context_turns: int = Field(6, ge=0, le=100)
    include_introspection: bool = False
    introspection_weight: float = Field(0.3, ge=0.0, le=1.0)
    introspection_min_safety: float = Field(0.7, ge=0.0, le=1.0)
    use_reward_model: bool = True

    def options(self) -> ExtractionOptions:
        return ExtractionOptions(
            include_context=self.include_context,
            context_turns=self.context_turns,
            include_introspection=self.include_introspection,
            introspection_weight=self.introspection_weight,
            introspection_min_safety=self.introspection_min_safety,
            dedup_threshold=self.dedup_threshold,
        )


class KnowledgeConfig(StrictModel):
    method: Literal["auto", "teacher", "cues", "off"] = "auto"


class LabelsConfig(StrictModel):
    emotion: bool = True
    max_turns_per_run: int = Field(8, ge=0)
    batch_size: int = Field(8, ge=1, le=256)


class PreferencesConfig(StrictModel):
    min_margin: float = Field(0.05, ge=0.0)
    min_valence_gap: float = Field(1.0, ge=0.0)


class ConversationsConfig(StrictModel):
    extraction: ExtractionConfig = ExtractionConfig()
    knowledge_updates: KnowledgeConfig = KnowledgeConfig()
    labels: LabelsConfig = LabelsConfig()
    preferences: PreferencesConfig = PreferencesConfig()


def load_conversations_config(settings: Settings) -> ConversationsConfig:
    path = settings.config_dir / "conversations.toml"
    return load_toml_model(path, ConversationsConfig, defaults_if_absent=True)


def set_include_introspection(settings: Settings, include: bool) -> tuple[Path, bool]:
    """Switch `[extraction] include_introspection` in config/conversations.toml (seed 002: introspection
    stays out of SFT unless opted in). Comments and layout are kept; the edited file is validated before
    it atomically replaces the old one. Returns (path, the previous value)."""
    import tomlkit

    from hominem_pipeline.atomic import write_text_atomic
    from hominem_pipeline.settings import ConfigError

    path = settings.config_dir / "conversations.toml"
    doc = tomlkit.parse(path.read_text()) if path.is_file() else tomlkit.document()
    previous = load_conversations_config(settings).extraction.include_introspection
    table = doc.get("extraction")
    if table is None:
        table = tomlkit.table()
        doc["extraction"] = table
    table["include_introspection"] = include
    try:
        ConversationsConfig.model_validate(doc.unwrap())
    except Exception as exc:  # pydantic.ValidationError: the file had another bad value; leave it as it was
        raise ConfigError(f"{path}: {exc}") from exc
    write_text_atomic(path, tomlkit.dumps(doc))
    return path, previous


# Where this channel's files live (seed 000 puts the two training exports here).
def events_dir(settings: Settings) -> Path:
    return settings.data_dir / "events"


def sft_export_path(settings: Settings) -> Path:
    return settings.data_dir / "sft" / "sft_training.jsonl"


def preferences_export_path(settings: Settings) -> Path:
    return settings.data_dir / "preferences" / "preferences.jsonl"


def conversation_labels_export_path(settings: Settings, day: date) -> Path:
    return settings.data_dir / "labeled" / "conversations" / f"{day.isoformat()}.jsonl"
