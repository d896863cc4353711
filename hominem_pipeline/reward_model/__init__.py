"""The reward model: a fast multi-head scorer distilled from the teacher's reward manifold.

`RewardModel.load(folder).score(prompt, response)` gives a `RewardOutput` (reward_vector per dimension,
reward_intensity, safety_score, scalar_preference). `load_current(artifacts_dir)` gives the accepted
version, or None. Training lives in `train.py`, the on-disk layout in `registry.py`.
"""

from hominem_pipeline.reward_model.model import RewardModel, RewardOutput
from hominem_pipeline.reward_model.registry import current_with_note, load_current

__all__ = ["RewardModel", "RewardOutput", "current_with_note", "load_current"]
