"""Proof that the dual-channel trainer learns, on the real SmolLM2-135M-Instruct (embedded).

Memory: train the dual trainer on invented facts (SFT channel) plus a few preference pairs, then compare
the NLL of those facts asked in NEW phrasings, and of an untouched general set, base vs base+adapter.
Reward: a pure preference run (sft_weight 0) on pairs preferring a warm, question-asking style, then the
log-probability margin log p(chosen) - log p(rejected) on held-out pairs of that style, base vs adapter.

    PYTHONPATH=$PWD python benchmarks/proof_it_learns.py [--steps 8] [--lr 3e-3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

FACTS = [
    ("Zorblax", "Quintara"),
    ("Velmora", "Brindlecove"),
    ("Ostrakan", "Pellimar"),
    ("Thundria", "Gaskelow"),
    ("Miravel", "Tessaroon"),
    ("Kalvoria", "Dunmerith"),
]
TRAIN = [(f"What is the capital of {c}?", f"The capital of {c} is {k}.") for c, k in FACTS]
NEW = [(f"Tell me which city serves as the capital of {c}.", f"The capital of {c} is {k}.") for c, k in FACTS]
GENERAL = [
    (
        "Describe the water cycle.",
        "Water evaporates from oceans, forms clouds, and falls back to the ground as rain.",
    ),
    ("What do plants need to grow?", "Plants need sunlight, water, air and nutrients from the soil."),
    ("What is the capital of France?", "The capital of France is Paris."),
    ("How many days are in a week?", "There are seven days in a week."),
    (
        "What is photosynthesis?",
        "Photosynthesis is how plants turn light, water and carbon dioxide into sugar.",
    ),
]
SITUATIONS = [
    "I failed my driving test.",
    "My best friend moved away.",
    "I can't focus on my work.",
    "I got rejected from a job.",
    "My plants keep dying.",
    "I argued with my sister.",
    "I am nervous about a presentation.",
    "My code keeps crashing.",
    "I feel lonely in the evenings.",
    "I can't decide what to study.",
    "My landlord raised the rent.",
    "I keep procrastinating.",
]
HELD_OUT = [
    "I lost my wallet today.",
    "My team lost the final.",
    "I am worried about my health check.",
    "My manager ignored my idea.",
    "I overslept and missed a class.",
    "My dog seems sad.",
]


def warm(s: str) -> str:
    return f"I'm sorry, that sounds really hard. What part of it is weighing on you most right now? ({s.lower()[:-1]})"


def cold(s: str) -> str:
    return "That's your problem. Deal with it."


def warm_over_cold(situations: list[str]) -> list[Any]:
    """One full-intensity teacher pair per situation (`records.PreferencePair`): the warm answer chosen
    over the cold one."""
    from hominem_pipeline.records import PreferencePair

    return [
        PreferencePair(
            prompt=s,
            chosen=warm(s),
            rejected=cold(s),
            source="teacher",
            reward_intensity=1.0,
            safety_score=1.0,
        )
        for s in situations
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="embedded:smollm2-135m-instruct")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-3)
    args = ap.parse_args()

    import torch

    from hominem_pipeline.evaluation.scoring import response_nll
    from hominem_pipeline.models import resolve_model
    from hominem_pipeline.records import SFTPair
    from hominem_pipeline.settings import Settings
    from hominem_pipeline.training.config import TrainingConfig
    from hominem_pipeline.training.data import prepare_examples
    from hominem_pipeline.training.measure import load_with_adapter, preference_margin

    def completion_nll(model: object, tok: object, pairs: list[tuple[str, str]]) -> float:
        # Mean over the pairs of each response's NLL per token (the evaluation's one NLL function).
        return sum(response_nll(model, tok, pairs)) / len(pairs)

    from hominem_pipeline.training.trainer import train_dual

    torch.set_num_threads(2)
    base = resolve_model(args.model, Settings().models_cache_dir)
    pairs = warm_over_cold(SITUATIONS)
    sft = [SFTPair(instruction=q, response=a, source="knowledge_update") for q, a in TRAIN]
    common = {
        "lora": {
            "rank": 16,
            "alpha": 32,
            "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj", "gate_proj"],
        },
        "sft_learning_rate": args.lr,
        "preference_learning_rate": args.lr,
        "max_steps": args.steps,
        "sft_batch_size": 3,
        "preference_batch_size": 2,
        "diversity": {"enabled": True},
        "probe": {"interval": 0},
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # Memory channel: dual run (sft 0.4 / preference 0.6).
        cfg = TrainingConfig.model_validate(common)
        t0 = time.perf_counter()
        res = train_dual(
            cfg, prepare_examples(cfg, pairs, sft), base_model_path=base, lora_root=Path(tmp) / "dual"
        )
        t_mem = time.perf_counter() - t0
        model, tok = load_with_adapter(base, res.path)
        with model.disable_adapter():
            b_new, b_gen = completion_nll(model, tok, NEW), completion_nll(model, tok, GENERAL)
        a_new, a_gen = completion_nll(model, tok, NEW), completion_nll(model, tok, GENERAL)
        rows.append(("memory: facts in new phrasings, NLL/token", b_new, a_new))
        rows.append(("memory: untouched general set, NLL/token", b_gen, a_gen))
        # Reward channel: pure preference run (the lora_dpo.yaml shape: sft_weight 0).
        cfg = TrainingConfig.model_validate({**common, "sft_weight": 0.0, "preference_weight": 1.0})
        t0 = time.perf_counter()
        res = train_dual(
            cfg, prepare_examples(cfg, pairs, []), base_model_path=base, lora_root=Path(tmp) / "dpo"
        )
        t_pref = time.perf_counter() - t0
        model, tok = load_with_adapter(base, res.path)
        held = [(s, warm(s), cold(s)) for s in HELD_OUT]
        with model.disable_adapter():
            b_m = preference_margin(model, tok, held)
        a_m = preference_margin(model, tok, held)
        rows.append(("reward: held-out log p(chosen) - log p(rejected)", b_m, a_m))
    print(
        f"model {args.model}; LoRA r=16 on all attention+MLP projections; lr {args.lr}; {args.steps} steps; "
        f"train time dual {t_mem:.0f} s, preference {t_pref:.0f} s"
    )
    print(f"{'measure':52s} {'base':>9s} {'adapter':>9s} {'change':>9s}")
    for name, b, a in rows:
        print(f"{name:52s} {b:9.3f} {a:9.3f} {a - b:+9.3f}")


if __name__ == "__main__":
    main()
