"""The teacher: samples candidate responses and rates (prompt, response) pairs on the reward manifold.

Two backends behind one interface (`Teacher`): `local` (in-process transformers, the default) and `openai`
(any OpenAI-compatible endpoint). `build_teacher` picks one from config/inference.toml.
"""

from hominem_pipeline.teacher.base import RatingOutcome, Teacher, TeacherError
from hominem_pipeline.teacher.factory import build_teacher

__all__ = ["RatingOutcome", "Teacher", "TeacherError", "build_teacher"]
