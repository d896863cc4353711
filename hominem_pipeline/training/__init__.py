"""Dual-channel LoRA training: SFT (memory) + reward-weighted preference loss into one adapter."""

from hominem_pipeline.training.config import TrainingConfig, load_training_config
from hominem_pipeline.training.run import load_config, run_training
from hominem_pipeline.training.trainer import NoTrainingData, TrainingResult, train_dual

__all__ = [
    "NoTrainingData",
    "TrainingConfig",
    "TrainingResult",
    "load_config",
    "load_training_config",
    "run_training",
    "train_dual",
]
