"""Shared set-up for the serving tests and benchmark: a hominem home on the tiny model with published
adapters and a reward model, and the real server on a free loopback port (uvicorn in a thread)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hominem_pipeline.adapters import AdapterRegistry, model_name_for_spec
from hominem_pipeline.events.log import EventLog
from hominem_pipeline.events.schema import FeedbackEvent, MessageEvent
from hominem_pipeline.settings import REPO_ROOT, Settings
from hominem_pipeline_tests.adapter_helpers import lora_model, perturb, publish
from hominem_pipeline_tests.conftest import write_config

EMBEDDER = "embedded:all-minilm-l6-v2"


def make_home(root: Path, tiny_model_dir: Path, generation: dict[str, Any] | None = None) -> Path:
    """The repository's config pointed at the tiny model, with short greedy replies by default."""
    home = root / "home"
    shutil.copytree(REPO_ROOT / "config", home / "config")
    write_config(
        home / "config",
        inference={"student.model": str(tiny_model_dir), "teacher.model": str(tiny_model_dir)},
    )
    serving = (home / "config" / "serving.toml").read_text()
    gen = {"max_new_tokens": 8, "temperature": 0.0, **(generation or {})}
    for key, value in gen.items():
        serving = _set_line(serving, key, value)
    serving = _set_line(serving, "watch_interval_s", 0.2)
    (home / "config" / "serving.toml").write_text(serving)
    return home


def _set_line(text: str, key: str, value: Any) -> str:
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.split("=")[0].strip() == key:
            lines[i] = f"{key} = {json.dumps(value)}"
            return "\n".join(lines) + "\n"
    raise KeyError(key)


@contextmanager
def home_env(home: Path) -> Iterator[Settings]:
    old = {k: os.environ.get(k) for k in ("HOMINEM_HOME", "HOMINEM_CONFIG_DIR")}
    os.environ["HOMINEM_HOME"], os.environ["HOMINEM_CONFIG_DIR"] = str(home), str(home / "config")
    try:
        yield Settings()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def registry_of(settings: Settings) -> AdapterRegistry:
    return AdapterRegistry(settings.artifacts_dir, model_name_for_spec(settings.inference.student.model))


def publish_adapter(
    settings: Settings, tiny_model_dir: Path, seed: int, scale: float = 3.0, nan: bool = False
) -> str:
    """A real PEFT adapter on the tiny model with random LoRA weights (different seeds answer differently);
    `nan` plants a NaN weight, which loads fine and fails the server's finite-logits probe."""
    import torch

    model, _ = lora_model(tiny_model_dir, seed=seed)
    perturb(model, scale=scale, seed=seed)
    if nan:
        with torch.no_grad():
            next(p for n, p in model.named_parameters() if "lora_B" in n).fill_(float("nan"))
    return publish(registry_of(settings), model, tiny_model_dir, seed=seed)


def corrupt_adapter(settings: Settings, version: str) -> None:
    """Overwrite a published adapter's weights with garbage (a disk error, a bad copy)."""
    (registry_of(settings).root / version / "adapter_model.safetensors").write_bytes(b"\x00garbage" * 64)


def publish_reward_model(settings: Settings) -> str:
    """A reward model trained on the planted-signal rows (real MiniLM), accepted as `current`."""
    from hominem_pipeline.embedding import Embedder
    from hominem_pipeline.manifold import load_manifold
    from hominem_pipeline.reward_model.config import RewardModelConfig
    from hominem_pipeline.reward_model.dataset import sample_from_row, teacher_pairs
    from hominem_pipeline.reward_model.registry import publish as publish_rm
    from hominem_pipeline.reward_model.train import train_reward_model
    from hominem_pipeline_tests.reward_data import planted_rows

    manifold = load_manifold(settings.manifold_path)
    samples = [sample_from_row(r, manifold) for r in planted_rows(manifold)]
    result = train_reward_model(
        samples, teacher_pairs(samples, 0.05), manifold, Embedder(EMBEDDER), RewardModelConfig()
    )
    published = publish_rm(result, settings.artifacts_dir)
    assert published.accepted, "the planted reward model must beat the baseline to be served"
    return published.version


def logged_events(settings: Settings) -> list[MessageEvent | FeedbackEvent]:
    log = EventLog(settings.data_dir / "events")
    return [e for day in log.days() for e in log.read_day(day).events]
