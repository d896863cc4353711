"""Step time of hominem's dual-channel trainer against TRL's DPOTrainer (baseline), on the same data.

Both optimise sigmoid DPO + SFT on the chosen response (TRL: `loss_type=["sigmoid", "sft"]`,
`loss_weights=[0.6, 0.4]`; hominem: preference_weight 0.6, sft_weight 0.4 with the SFT channel fed the
same (prompt, chosen) pairs), with the same model, LoRA config, batch size, sequence lengths, learning
rate, fp32, no gradient checkpointing. Each trainer runs in its own subprocess so that its peak memory
is its own. TRL runs twice: its default (reference forward every step) and `precompute_ref_log_probs`.
hominem runs twice too: with the SFT channel fed the pairs' own (prompt, chosen), which the shared forward
deduplicates (4 sequences per step, the like-for-like comparison with TRL), and with separate SFT rows
(facts unrelated to the pairs: 6 sequences per step, the real dual-channel case, which TRL's DPOTrainer
cannot express). Every row is the median of `--repeats` runs (default 3), each in a fresh subprocess.

    PYTHONPATH=$PWD python benchmarks/bench_trainer.py [--model embedded:smollm2-135m-instruct] [--steps 12] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

PREFERENCE_WEIGHT, SFT_WEIGHT = 0.6, 0.4
TOPICS = [
    "a job interview",
    "a broken bicycle",
    "learning the violin",
    "moving to a new city",
    "a noisy neighbour",
    "a failed exam",
    "training for a marathon",
    "a friend who stopped calling",
    "a leaking roof",
    "starting a vegetable garden",
    "public speaking",
    "saving money",
]


def make_data(n: int) -> list[dict[str, str]]:
    rows = []
    for i in range(n):
        t = TOPICS[i % len(TOPICS)]
        rows.append(
            {
                "prompt": f"I keep worrying about {t} and I do not know where to start. What should I do first? ({i})",
                "chosen": f"That sounds stressful. A good first step with {t} is to write down the one part that worries "
                f"you most, then pick a small action you can take today. What feels most urgent to you?",
                "rejected": f"Just deal with {t}. Everyone has problems and worrying about it will not help you at all.",
            }
        )
    return rows


PEOPLE = [
    "Ada",
    "Bruno",
    "Chiara",
    "Dmitri",
    "Esme",
    "Farid",
    "Greta",
    "Hiro",
    "Ines",
    "Jonas",
    "Kemi",
    "Lars",
]
CITIES = [
    "Lisbon",
    "Porto Alegre",
    "Trieste",
    "Tbilisi",
    "Galway",
    "Marrakesh",
    "Bergen",
    "Sapporo",
    "Cusco",
    "Ljubljana",
    "Ibadan",
    "Tromso",
]


def make_sft(n: int) -> list[dict[str, str]]:
    """Memory-channel rows unrelated to the preference pairs (as conversation facts are)."""
    rows = []
    for i in range(n):
        who, city = PEOPLE[i % len(PEOPLE)], CITIES[(i * 5) % len(CITIES)]
        rows.append(
            {
                "prompt": f"Remind me, where did {who} move to last spring, and what did they say about it? ({i})",
                "chosen": f"{who} moved to {city} last spring. They said the first months were hard, but that the "
                f"neighbourhood feels like home now and they have started taking evening language classes.",
            }
        )
    return rows


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def gpu_peak_mb() -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None


def tokens_per_step(
    rows: list[dict[str, str]], tok, batch: int, max_length: int, sft_rows: list | None = None
) -> float:
    """Tokens one step processes: prompt+chosen and prompt+rejected per pair, plus prompt+response per
    separate SFT row."""
    from hominem_pipeline.training.losses import encode

    n = 0
    for r in rows:
        n += len(encode(tok, r["prompt"], r["chosen"], max_length, max_length).input_ids)
        n += len(encode(tok, r["prompt"], r["rejected"], max_length, max_length).input_ids)
    per_step = n / len(rows) * batch
    if sft_rows:
        m = sum(
            len(encode(tok, r["prompt"], r["chosen"], max_length, max_length).input_ids) for r in sft_rows
        )
        per_step += m / len(sft_rows) * batch
    return per_step


def run_ours(
    args: argparse.Namespace, base: str, rows: list[dict[str, str]], sft_rows: list[dict[str, str]]
) -> dict:
    from hominem_pipeline.records import PreferencePair, SFTPair
    from hominem_pipeline.training.config import TrainingConfig
    from hominem_pipeline.training.data import prepare_examples
    from hominem_pipeline.training.trainer import train_dual

    config = TrainingConfig.model_validate(
        {
            "sft_weight": SFT_WEIGHT,
            "preference_weight": PREFERENCE_WEIGHT,
            "batch_mixing": "interleaved",
            "sft_batch_size": args.batch,
            "preference_batch_size": args.batch,
            "beta": 0.1,
            "sft_learning_rate": args.lr,
            "preference_learning_rate": args.lr,
            "normalize_losses": False,
            "max_steps": args.steps + args.warmup,
            "max_length": args.max_length,
            "max_prompt_tokens": args.max_length,
            "lora": {"rank": 8, "alpha": 16, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
            "diversity": {"enabled": False},
            "probe": {"interval": 0},
            "recency": {"enabled": False},
        }
    )
    pairs = [PreferencePair(source="teacher", reward_intensity=1.0, safety_score=1.0, **r) for r in rows]
    sft = [
        SFTPair(
            instruction=r["prompt"],
            response=r["chosen"],
            source="teacher",
            reward_intensity=1.0,
            safety_score=1.0,
        )
        for r in sft_rows
    ]
    stamps: list[float] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = train_dual(
            config,
            prepare_examples(config, pairs, sft),
            base_model_path=base,
            lora_root=Path(tmp),
            progress=lambda *_: stamps.append(time.perf_counter()),
            publish=False,
        )
    total = time.perf_counter() - t0
    times = [b - a for a, b in zip(stamps[args.warmup - 1 :], stamps[args.warmup :], strict=False)]
    return {
        "step_s": sum(times) / len(times),
        "reference_precompute_s": result.metadata["timing"]["reference_logprobs_s"],
        "wall_s": total,
        "loss_last": result.log_rows[-1]["loss"],
    }


def run_trl(args: argparse.Namespace, base: str, rows: list[dict[str, str]], precompute: bool) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(base)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    data = Dataset.from_list(
        [
            {
                "prompt": [{"role": "user", "content": r["prompt"]}],
                "chosen": [{"role": "assistant", "content": r["chosen"]}],
                "rejected": [{"role": "assistant", "content": r["rejected"]}],
            }
            for r in rows
        ]
    )
    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, *a, **k):  # noqa: ANN002, ANN003
            stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as tmp:
        cfg = DPOConfig(
            output_dir=tmp,
            per_device_train_batch_size=args.batch,
            max_steps=args.steps + args.warmup,
            learning_rate=args.lr,
            lr_scheduler_type="constant",
            warmup_steps=0,
            beta=0.1,
            loss_type=["sigmoid", "sft"],
            loss_weights=[PREFERENCE_WEIGHT, SFT_WEIGHT],
            max_length=args.max_length,
            bf16=False,
            gradient_checkpointing=False,
            report_to=[],
            save_strategy="no",
            logging_steps=1000,
            precompute_ref_log_probs=precompute,
            dataloader_num_workers=0,
            seed=0,
            disable_tqdm=True,
        )
        lora = LoraConfig(
            r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"
        )
        t0 = time.perf_counter()
        trainer = DPOTrainer(
            model=model,
            args=cfg,
            train_dataset=data,
            processing_class=tok,
            peft_config=lora,
            callbacks=[Clock()],
        )
        t_init = time.perf_counter()
        trainer.train()
        total = time.perf_counter() - t0
    times = [b - a for a, b in zip(stamps[args.warmup - 1 :], stamps[args.warmup :], strict=False)]
    return {"step_s": sum(times) / len(times), "setup_s": t_init - t0, "wall_s": total}


def child(args: argparse.Namespace) -> None:
    import torch

    from hominem_pipeline.models import resolve_model
    from hominem_pipeline.settings import Settings

    torch.set_num_threads(args.threads)
    base = resolve_model(args.model, Settings().models_cache_dir)
    rows = make_data(args.pairs)
    separate = make_sft(args.pairs) if args.which == "ours-separate-sft" else None
    if args.which.startswith("ours"):
        out = run_ours(args, base, rows, separate or rows)
    else:
        out = run_trl(args, base, rows, precompute=args.which == "trl-precompute")
    from transformers import AutoTokenizer

    out["tokens_per_step"] = tokens_per_step(
        rows, AutoTokenizer.from_pretrained(base), args.batch, args.max_length, separate
    )
    out["peak_rss_mb"] = peak_rss_mb()
    out["gpu_peak_mb"] = gpu_peak_mb()
    print("RESULT " + json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="embedded:smollm2-135m-instruct")
    ap.add_argument("--steps", type=int, default=12, help="timed steps (after warm-up)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--pairs", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="runs per trainer; each row reports the median")
    ap.add_argument("--baselines", default="trl,trl-precompute", help="which TRL runs: trl, trl-precompute")
    ap.add_argument(
        "--which", choices=["ours", "ours-separate-sft", "trl", "trl-precompute"], help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    if args.which:
        child(args)
        return
    runs: dict[str, list[dict]] = {}
    for which in [b for b in args.baselines.split(",") if b] + ["ours", "ours-separate-sft"]:
        cmd = [sys.executable, __file__, "--which", which] + [
            a
            for k, v in vars(args).items()
            if k not in ("which", "baselines", "repeats")
            for a in (f"--{k.replace('_', '-')}", str(v))
        ]
        for _ in range(args.repeats):
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
            if proc.returncode or not line:
                print(f"{which} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}", file=sys.stderr)
                sys.exit(1)
            runs.setdefault(which, []).append(json.loads(line[-1][7:]))
        print(f"{which}: s/step per run {[round(r['step_s'], 3) for r in runs[which]]}", flush=True)
    results = {
        w: {k: statistics.median(r[k] for r in rs) if rs[0][k] is not None else None for k in rs[0]}
        for w, rs in runs.items()
    }
    base = results["trl"]["step_s"]
    print(
        f"model {args.model}, LoRA r=8 q_proj,v_proj, batch {args.batch} pairs, max_length {args.max_length}, "
        f"{args.steps} timed steps after {args.warmup} warm-up, {args.threads} threads, fp32, "
        f"median of {args.repeats} runs"
    )
    print(
        f"{'trainer':40s} {'seq/step':>8s} {'s/step':>8s} {'tokens/s':>9s} {'peak RSS MB':>12s} {'GPU peak MB':>12s} "
        f"{'vs TRL':>7s}"
    )
    names = {
        "trl": ("TRL DPOTrainer (baseline)", 4),
        "trl-precompute": ("TRL DPOTrainer, precompute ref", 4),
        "ours": ("hominem dual, SFT = pairs' chosen", 4),
        "ours-separate-sft": ("hominem dual, separate SFT rows", 6),
    }
    for which, r in results.items():
        gpu = f"{r['gpu_peak_mb']:.0f}" if r["gpu_peak_mb"] is not None else "-"
        name, seqs = names[which]
        print(
            f"{name:40s} {seqs * args.batch // 2:8d} {r['step_s']:8.3f} {r['tokens_per_step'] / r['step_s']:9.0f} "
            f"{r['peak_rss_mb']:12.0f} {gpu:>12s} {r['step_s'] / base:6.2f}x"
        )
    for which in ("ours", "ours-separate-sft"):
        ours = results[which]
        amortised = ours["step_s"] + ours["reference_precompute_s"] / args.steps
        print(
            f"{names[which][0]}: reference log-probs precomputed once: {ours['reference_precompute_s']:.2f} s for "
            f"{args.pairs} pairs; step incl. that cost spread over {args.steps} steps: {amortised:.3f} s "
            f"({amortised / base:.2f}x TRL)"
        )


if __name__ == "__main__":
    main()
