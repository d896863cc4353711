"""The simulation's own hominem home. It starts as a copy of a home where `make run` has run (the user has
set hominem up: a reward model, a first adapter, the sample conversations' data), so a simulation never
touches the project's own data: the config with `config/simulation.toml`'s overrides applied, `data/`
and `artifacts/` copied (the converted models linked, never copied or converted again), and a Dagster
instance of its own. A home that exists is reused only when it was made for the same persona and
overrides; otherwise it is refused (`--fresh` starts it over)."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field

from hominem_pipeline.atomic import Pointer, write_json_atomic
from hominem_pipeline.records import content_hash
from hominem_pipeline.settings import ConfigError, Settings, StrictModel

SIMULATION_CONFIG = "simulation.toml"
MARKER = "simulation.json"


class SimulationConfig(StrictModel):
    weeks: int = Field(3, ge=1, le=52)
    measure_max_new_tokens: int = Field(96, ge=1, le=1024)
    overrides: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict)


def load_simulation_config(config_dir: Path) -> SimulationConfig:
    path = Path(config_dir) / SIMULATION_CONFIG
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return SimulationConfig.model_validate(raw)
    except Exception as exc:
        raise ConfigError(f"{path}: {exc}") from exc


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
                    raise ConfigError(f"{SIMULATION_CONFIG}: overrides.{name}.{dotted}: {name} has no [{dotted}]")
                table = table[part]
            for key, value in values.items():
                if key not in table:
                    raise ConfigError(f"{SIMULATION_CONFIG}: overrides.{name}.{dotted}.{key}: no such key in {name}")
                table[key] = value
        path.write_text(tomlkit.dumps(doc))


#: What a simulation home does not copy from the starting home: its own Dagster instance and simulations.
NOT_COPIED = {"dagster", "simulation", "models"}


def _top_level(root: Path, names: set[str]) -> Any:
    """A copytree `ignore` that leaves out `names` directly under `root` only."""
    return lambda folder, entries: {e for e in entries if e in names} if Path(folder) == root else set()


def prepare_home(home: Path, project: Settings, persona_hash: str, fresh: bool) -> Settings:
    """The simulation home at `home`, made from `project` (or checked, when it exists) for this persona
    and config."""
    home = Path(home)
    config = load_simulation_config(project.config_dir)
    fingerprint = content_hash("simulation", persona_hash, json.dumps(config.model_dump(), sort_keys=True))
    marker = home / MARKER
    if fresh and home.exists():
        shutil.rmtree(home)
    if home.exists():
        made = json.loads(marker.read_text()).get("fingerprint") if marker.is_file() else None
        if made != fingerprint:
            raise ConfigError(
                f"{home} holds another simulation (or something else): pass --fresh to start it over, or --home"
            )
        return Settings(home=home, config_dir=home / "config")
    reward_root = project.artifacts_dir / "reward_model"
    if Pointer(reward_root, "current").target is None:
        raise ConfigError(
            f"{project.home} has no reward model yet: a simulation starts from the state `make run` leaves "
            "(run it first; `make demo` does)"
        )
    home.mkdir(parents=True)
    shutil.copytree(project.config_dir, home / "config")
    for part in ("data", "artifacts"):
        src = getattr(project, f"{part}_dir")
        if src.is_dir():
            shutil.copytree(src, home / part, ignore=_top_level(src, NOT_COPIED))
    apply_overrides(home / "config", config.overrides)
    settings = Settings(home=home, config_dir=home / "config")
    settings.pipeline, settings.inference  # noqa: B018 - load both files now: a bad override fails here
    models = project.models_cache_dir
    if models.is_dir():  # converted embedded models are shared, never converted twice
        settings.models_cache_dir.parent.mkdir(parents=True, exist_ok=True)
        settings.models_cache_dir.symlink_to(models.resolve(), target_is_directory=True)
    write_json_atomic(marker, {"fingerprint": fingerprint})
    return settings
