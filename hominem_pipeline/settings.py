"""Project settings: where config lives, where data and artifacts go, and the validated config files.

Two environment variables move everything, which is how tests run against temporary folders:
HOMINEM_HOME (root for relative data/artifact paths, default: the repository root) and
HOMINEM_CONFIG_DIR (default: $HOMINEM_HOME/config).
"""

from __future__ import annotations

import os
import re
import tomllib
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from hominem_pipeline.validation import field_errors

REPO_ROOT = Path(__file__).resolve().parent.parent


def _time_zone(v: str) -> str:
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown timezone {v!r} (an IANA name such as 'UTC' or 'Europe/Berlin')") from exc
    return v


def _cron(v: str) -> str:
    if len(v.split()) != 5 or not re.fullmatch(r"[0-9*/,\-A-Za-z ]+", v):
        raise ValueError(f"{v!r} is not a five-field cron expression (minute hour day month weekday)")
    return v


# When a schedule fires, in every config file that has one (hominem.toml [schedules], health.toml
# [nightly], maintenance.toml [schedule]): a five-field cron expression read in an IANA timezone.
TimeZoneName = Annotated[str, AfterValidator(_time_zone)]
CronExpression = Annotated[str, AfterValidator(_cron)]


class StrictModel(BaseModel):
    """The base of every config file's model: an unknown key is an error naming it, never ignored."""

    model_config = ConfigDict(extra="forbid")


class SamplingConfig(StrictModel):
    temperature: float = Field(0.8, ge=0.0, le=2.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_new_tokens: int = Field(96, ge=1, le=4096)


class TeacherConfig(StrictModel):
    backend: Literal["local", "openai"] = "local"
    model: str = "embedded:smollm2-135m-instruct"
    base_url: str = "http://127.0.0.1:1234/v1"
    openai_model: str = "local-model"
    api_key_env: str = "HOMINEM_TEACHER_API_KEY"
    rating_mode: Literal["json_schema", "json_object", "geval", "none"] = "json_schema"
    request_timeout_s: float = Field(60, gt=0)
    max_retries: int = Field(3, ge=0, le=20)
    max_concurrency: int = Field(4, ge=1, le=64)
    rating_max_tokens: int = Field(400, ge=16, le=8192)
    sampling: SamplingConfig = SamplingConfig()


class StudentConfig(StrictModel):
    model: str = "embedded:smollm2-135m-instruct"


class EmbeddingsConfig(StrictModel):
    model: str = "embedded:all-minilm-l6-v2"


class InferenceConfig(StrictModel):
    teacher: TeacherConfig = TeacherConfig()
    student: StudentConfig = StudentConfig()
    embeddings: EmbeddingsConfig = EmbeddingsConfig()


class PathsConfig(StrictModel):
    data: str = "data"
    artifacts: str = "artifacts"
    database: str = "data/hominem.duckdb"


class GenerationConfig(StrictModel):
    prompts_limit: int = Field(10, ge=0, description="0 = every seed prompt")
    candidates_per_prompt: int = Field(2, ge=1, le=16)
    batch_size: int = Field(8, ge=1, le=256)
    seed: int = 17


class LabelingConfig(StrictModel):
    batch_size: int = Field(8, ge=1, le=256)
    rationale: bool = True
    rationale_max_new_tokens: int = Field(40, ge=1, le=512)


class RetrainingConfig(StrictModel):
    """When the retraining sensor requests a cycle (seed 000 7.3): either channel at its threshold of new
    data since the last accepted cycle, or both at `both_fraction` of theirs."""

    new_conversations: int = Field(500, ge=1, description="memory channel: conversations with new SFT pairs")
    new_preference_pairs: int = Field(200, ge=1, description="reward channel: new preference pairs")
    both_fraction: float = Field(
        0.5, gt=0.0, le=1.0, description="both channels at this share of their thresholds"
    )
    sensor_interval_seconds: int = Field(300, ge=30, le=86400)
    fallback_after_days: int = Field(
        7, ge=1, le=365, description="weekly fallback: the sensor has not fired for this long"
    )


class SchedulesConfig(StrictModel):
    """Cron times of the schedules, read in `timezone` (an IANA name)."""

    timezone: TimeZoneName = "UTC"
    conversation_labels: CronExpression = Field(
        "30 0 * * *", description="daily: yesterday's partition (+ deferred turns)"
    )
    retraining_fallback: CronExpression = Field(
        "0 3 * * 0", description="weekly: retrain if the sensor stayed quiet"
    )


class PipelineConfig(StrictModel):
    paths: PathsConfig = PathsConfig()
    generation: GenerationConfig = GenerationConfig()
    labeling: LabelingConfig = LabelingConfig()
    retraining: RetrainingConfig = RetrainingConfig()
    schedules: SchedulesConfig = SchedulesConfig()


class ConfigError(ValueError):
    """A config file is missing or invalid; the message names the file and the field."""


M = TypeVar("M", bound=BaseModel)


def load_toml_model(path: Path, model: type[M], *, defaults_if_absent: bool = False) -> M:
    """`path` validated as `model`; every failure is a `ConfigError` naming the file (and line or field).
    With `defaults_if_absent`, a missing file gives the model's defaults (a home made before that file)."""
    if defaults_if_absent and not path.is_file():
        return model()
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: line {line}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x})"
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {field_errors(exc)}") from exc


def load_yaml_model(path: Path, model: type[M]) -> M:
    """`path` (YAML) validated as `model`; every failure is a `ConfigError` naming the file and field."""
    import yaml

    try:
        raw = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return model.model_validate(raw or {})
    except ValidationError as exc:
        raise ConfigError(f"{path}: {field_errors(exc)}") from exc


class Settings:
    """Resolved locations plus the validated config files. Cheap to build; files are read lazily."""

    def __init__(self, home: Path | str | None = None, config_dir: Path | str | None = None):
        self.home = Path(home or os.environ.get("HOMINEM_HOME") or REPO_ROOT).resolve()
        self.config_dir = Path(
            config_dir or os.environ.get("HOMINEM_CONFIG_DIR") or self.home / "config"
        ).resolve()

    @cached_property
    def pipeline(self) -> PipelineConfig:
        return load_toml_model(self.config_dir / "hominem.toml", PipelineConfig)

    @cached_property
    def inference(self) -> InferenceConfig:
        return load_toml_model(self.config_dir / "inference.toml", InferenceConfig)

    def _resolve(self, p: str) -> Path:
        path = Path(p)
        return path if path.is_absolute() else self.home / path

    @property
    def data_dir(self) -> Path:
        return self._resolve(self.pipeline.paths.data)

    @property
    def artifacts_dir(self) -> Path:
        return self._resolve(self.pipeline.paths.artifacts)

    @property
    def database_path(self) -> Path:
        return self._resolve(self.pipeline.paths.database)

    @property
    def manifold_path(self) -> Path:
        return self.config_dir / "schemas" / "reward.yaml"

    @property
    def seed_prompts_path(self) -> Path:
        return self.config_dir / "prompts" / "seed_prompts.yaml"

    # Human-readable exports, where seed 000 puts them.
    @property
    def trajectories_export(self) -> Path:
        return self.data_dir / "raw" / "trajectories.jsonl"

    @property
    def reward_samples_export(self) -> Path:
        return self.data_dir / "labeled" / "reward_samples.jsonl"

    @property
    def models_cache_dir(self) -> Path:
        return self.artifacts_dir / "models"
