"""The `dual_lora` asset: one dual-channel training cycle (SFT + reward-weighted preference loss) that
publishes a PEFT adapter under artifacts/lora/<model>/<version>/. The domain code is
`hominem_pipeline.training`; `hominem train` runs the same thing outside Dagster.
"""

import dagster as dg

from hominem_pipeline.defs.launch import Launcher, run_step
from hominem_pipeline.defs.resources import STORE_POOL, HominemResource


class DualLoraConfig(dg.Config):
    """Overrides for one run; empty fields come from config/training/lora_dual.yaml."""

    config_path: str | None = None  # e.g. config/training/lora_dpo.yaml for a pure preference run
    max_steps: int | None = None
    epochs: int | None = None
    sft_weight: float | None = None
    preference_weight: float | None = None
    batch_mixing: str | None = None  # interleaved | mixed | alternating (validated by the training config)
    beta: float | None = None
    seed: int | None = None
    force: bool = False  # train even when a published adapter already answers these inputs (training.reuse)
    # Where the cycle runs: this step's process, or a subprocess through Dagster Pipes (defs/launch.py).
    launcher: Launcher = "in_process"


@dg.asset(
    group_name="training",
    pool=STORE_POOL,  # records which examples the adapter trained on (marked used only at promotion)
    deps=["preference_pairs", "sft_pairs", "reward_model", "base_model"],
    description="Dual-channel LoRA adapter (memory + reward channels), published under artifacts/lora/",
)
def dual_lora(
    context: dg.AssetExecutionContext, config: DualLoraConfig, hominem: HominemResource
) -> dg.MaterializeResult:
    params = {k: v for k, v in config.model_dump().items() if k != "launcher" and v is not None}
    return run_step(context, "dual_lora", hominem, params, config.launcher)
