"""Dual-channel LoRA training: SFT (memory) + reward-weighted preference loss into one adapter.

The names below load on first use (PEP 562), so importing a light submodule such as
`hominem_pipeline.training.promotion` (the Dagster definitions do, in every step's process) does not
import torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hominem_pipeline.training.config import TrainingConfig, load_training_config
    from hominem_pipeline.training.run import load_config, run_training
    from hominem_pipeline.training.trainer import NoTrainingData, TrainingResult, train_dual

_WHERE = {
    "TrainingConfig": "config",
    "load_training_config": "config",
    "load_config": "run",
    "run_training": "run",
    "NoTrainingData": "trainer",
    "TrainingResult": "trainer",
    "train_dual": "trainer",
}

__all__ = [
    "NoTrainingData",
    "TrainingConfig",
    "TrainingResult",
    "load_config",
    "load_training_config",
    "run_training",
    "train_dual",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
