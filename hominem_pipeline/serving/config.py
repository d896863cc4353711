"""The server's settings (`config/serving.toml`) and the one place that selects what it serves: named
profiles (base model, adapter, reward model) and the active-profile file that `hominem use` writes."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, model_validator

from hominem_pipeline.atomic import write_json_atomic
from hominem_pipeline.settings import ConfigError, Settings, StrictModel, load_toml_model

NONE = "none"
_PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ServerConfig(StrictModel):
    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)
    api_key_env: str = Field("HOMINEM_API_KEY", min_length=1)
    max_body_bytes: int = Field(262144, ge=1024)
    max_new_tokens_limit: int = Field(1024, ge=1)
    watch_interval_s: float = Field(2.0, gt=0)


class GenerationDefaults(StrictModel):
    max_new_tokens: int = Field(160, ge=1)
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)


class Profile(StrictModel):
    base_model: str = Field("student", min_length=1)
    adapter: str = Field("current", min_length=1)
    reward_model: str = Field("current", min_length=1)


class ServingConfig(StrictModel):
    default_profile: str = "default"
    server: ServerConfig = ServerConfig()
    generation: GenerationDefaults = GenerationDefaults()
    profiles: dict[str, Profile] = Field(default_factory=lambda: {"default": Profile()})

    @model_validator(mode="after")
    def _default_exists(self) -> ServingConfig:
        bad = [n for n in self.profiles if not _PROFILE_NAME.match(n)]
        if bad:
            raise ValueError(f"profiles: invalid profile names {bad}")
        if self.default_profile not in self.profiles:
            raise ValueError(
                f"default_profile: {self.default_profile!r} is not one of the profiles {sorted(self.profiles)}"
            )
        return self


def load_serving_config(settings: Settings) -> ServingConfig:
    """`config/serving.toml`, validated; the built-in defaults when the file does not exist."""
    path = settings.config_dir / "serving.toml"
    return load_toml_model(path, ServingConfig, defaults_if_absent=True)


def active_profile_path(settings: Settings) -> Path:
    return settings.artifacts_dir / "serving" / "active_profile.json"


def active_profile_name(settings: Settings, config: ServingConfig) -> str:
    """The profile `hominem use` chose, else the config's default."""
    try:
        name = json.loads(active_profile_path(settings).read_text())["profile"]
    except (FileNotFoundError, KeyError, json.JSONDecodeError, TypeError):
        return config.default_profile
    return name if name in config.profiles else config.default_profile


def use_profile(settings: Settings, name: str) -> Profile:
    """Make `name` the served profile (atomically); a running server picks it up on its next check."""
    config = load_serving_config(settings)
    if name not in config.profiles:
        raise ConfigError(
            f"no profile {name!r} in {settings.config_dir / 'serving.toml'}; known: {sorted(config.profiles)}"
        )
    write_json_atomic(active_profile_path(settings), {"profile": name})
    return config.profiles[name]


@dataclass(frozen=True)
class Selection:
    """What one profile resolves to right now: the things a server must load."""

    profile: str
    base_model: str  # the spec, as configured
    adapter_ref: str | None  # pointer or version as configured; None = base model alone
    reward_model_ref: str | None  # "current" or a version; None = no reward model


def current_selection(settings: Settings, config: ServingConfig | None = None) -> Selection:
    config = config or load_serving_config(settings)
    name = active_profile_name(settings, config)
    p = config.profiles[name]
    base = settings.inference.student.model if p.base_model == "student" else p.base_model
    return Selection(
        profile=name,
        base_model=base,
        adapter_ref=None if p.adapter == NONE else p.adapter,
        reward_model_ref=None if p.reward_model == NONE else p.reward_model,
    )
