"""The Dagster code location: assembles assets, checks, resources, jobs, sensors and schedules. Nothing else lives here."""

import dagster as dg

from hominem_pipeline.defs.assets.conversations import CONVERSATION_ASSETS
from hominem_pipeline.defs.assets.evaluation import EVALUATION_ASSETS, EVALUATION_CHECKS
from hominem_pipeline.defs.assets.foundation import base_model, reward_labels, seed_prompts, trajectories
from hominem_pipeline.defs.assets.reward_model import REWARD_MODEL_ASSETS, REWARD_MODEL_CHECKS
from hominem_pipeline.defs.assets.training import dual_lora
from hominem_pipeline.defs.checks import FOUNDATION_CHECKS
from hominem_pipeline.defs.conversation_checks import CONVERSATION_CHECKS
from hominem_pipeline.defs.health import HEALTH_ASSETS, HEALTH_CHECKS, HEALTH_JOBS, HEALTH_SCHEDULES
from hominem_pipeline.defs.jobs import conversations_job, executor, main_job, retraining_job
from hominem_pipeline.defs.maintenance import MAINTENANCE_ASSETS, MAINTENANCE_JOBS, maintenance_schedule
from hominem_pipeline.defs.plots import PLOT_ASSETS
from hominem_pipeline.defs.resources import HominemResource, TeacherResource
from hominem_pipeline.defs.schedules import SCHEDULES
from hominem_pipeline.defs.sensors import SENSORS

_hominem = HominemResource()

defs = dg.Definitions(
    assets=[
        seed_prompts,
        base_model,
        trajectories,
        reward_labels,
        *REWARD_MODEL_ASSETS,
        *CONVERSATION_ASSETS,
        dual_lora,
        *EVALUATION_ASSETS,
        *HEALTH_ASSETS,
        *MAINTENANCE_ASSETS,
        *PLOT_ASSETS,
    ],
    asset_checks=[
        *FOUNDATION_CHECKS,
        *REWARD_MODEL_CHECKS,
        *CONVERSATION_CHECKS,
        *EVALUATION_CHECKS,
        *HEALTH_CHECKS,
    ],
    jobs=[main_job, conversations_job, retraining_job, *HEALTH_JOBS, *MAINTENANCE_JOBS],
    sensors=[*SENSORS],
    schedules=[*SCHEDULES, *HEALTH_SCHEDULES, maintenance_schedule()],
    resources={"hominem": _hominem, "teacher": TeacherResource(hominem=_hominem)},
    executor=executor,
)
