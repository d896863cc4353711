"""The simulation's own hominem home, so a simulation never touches the project's data: the project's
config with `config/simulation.toml`'s overrides applied, the reward model a `make run` distilled from the
teacher (copied: it is what the gates and the health index read), the converted models (linked, never
converted again), and data, adapters and a Dagster instance of its own, empty at the start. The simulated
user begins with no adapter and no conversations, so whatever the served adapter learns, it learned from
that user. An earlier simulation's home is replaced only when asked (`--fresh`); any other existing folder is
refused."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from pydantic import Field

from hominem_pipeline.atomic import Pointer, write_json_atomic
from hominem_pipeline.settings import ConfigError, Settings, StrictModel, load_toml_model

SIMULATION_CONFIG = "simulation.toml"
MARKER = "simulation.json"


class SimulationConfig(StrictModel):
    weeks: int = Field(3, ge=1, le=52)
    measure_max_new_tokens: int = Field(96, ge=1, le=1024)
    overrides: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict)


def load_simulation_config(config_dir: Path) -> SimulationConfig:
    return load_toml_model(Path(config_dir) / SIMULATION_CONFIG, SimulationConfig)


def apply_overrides(config_dir: Path, overrides: dict[str, dict[str, dict[str, Any]]]) -> None:
    """Set each `file -> table.path -> key = value` in the TOML files under `config_dir` (comments kept)."""
    import tomlkit

    for name, tables in overrides.items():
        path = Path(config_dir) / name
        if not path.is_file():
            raise ConfigError(f"{SIMULATION_CONFIG}: overrides.{name}: no such config file in {config_dir}")
        doc = tomlkit.parse(path.read_text())
        for dotted, values in tables.items():
            table: Any = doc
            for part in dotted.split("."):
                if part not in table:
                    raise ConfigError(
                        f"{SIMULATION_CONFIG}: overrides.{name}.{dotted}: {name} has no [{dotted}]"
                    )
                table = table[part]
            for key, value in values.items():
                if key not in table:
                    raise ConfigError(
                        f"{SIMULATION_CONFIG}: overrides.{name}.{dotted}.{key}: no such key in {name}"
                    )
                table[key] = value
        path.write_text(tomlkit.dumps(doc))


def prepare_home(home: Path, project: Settings, start: Settings, persona_hash: str, fresh: bool) -> Settings:
    """The simulation home at `home` (or checked, when it exists) for this persona: `project`'s config with
    the overrides, `start`'s reward model."""
    home = Path(home)
    config = load_simulation_config(project.config_dir)
    marker = home / MARKER
    if home.exists() and any(home.iterdir()):
        if not marker.is_file():
            raise ConfigError(f"{home} exists and is not a simulation home: choose another --home")
        if not fresh:
            raise ConfigError(
                f"{home} holds an earlier simulation: pass --fresh to start it over, or another --home"
            )
        shutil.rmtree(home)
    reward_root = start.artifacts_dir / "reward_model"
    if Pointer(reward_root, "current").target is None:
        raise ConfigError(
            f"{start.home} has no reward model yet: a simulation starts from the state `make run` leaves "
            "(run it first; `make demo` does)"
        )
    home.mkdir(parents=True, exist_ok=True)
    shutil.copytree(project.config_dir, home / "config")
    apply_overrides(home / "config", config.overrides)
    settings = Settings(home=home, config_dir=home / "config")
    settings.pipeline, settings.inference  # noqa: B018 - load both files now: a bad override fails here
    shutil.copytree(reward_root, settings.artifacts_dir / "reward_model")
    models = project.models_cache_dir
    if models.is_dir():  # converted embedded models are shared, never converted twice
        settings.models_cache_dir.parent.mkdir(parents=True, exist_ok=True)
        settings.models_cache_dir.symlink_to(models.resolve(), target_is_directory=True)
    write_json_atomic(
        marker, {"persona": persona_hash, "config": config.model_dump(), "from": str(start.home)}
    )
    return settings
