"""How long `lora_eval` takes on the real student, and what scoring only the response positions saves.

Baseline (named, measured in the same run): the plain way to score a response's NLL, right padding and
logits for every position. Ours (`evaluation.scoring.response_nll`): left padding and logits only for
the response positions (`logits_to_keep`). Both score the same (prompt, response) pairs of the fixed
evaluation set; the script checks they agree. Then the whole evaluation (base + a fresh LoRA adapter,
default config/eval/lora_eval.yaml, no SFT probes) is timed: close to what `make run` pays for
`lora_eval`, which adds a parent arm from the second cycle on and a few knowledge probes per taught fact.

    HF_HUB_OFFLINE=1 python benchmarks/bench_lora_eval.py [--model embedded:smollm2-135m-instruct]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from hominem_pipeline.adapters import AdapterRegistry, now_utc
from hominem_pipeline.evaluation.config import load_eval_inputs
from hominem_pipeline.evaluation.evaluate import evaluate_version
from hominem_pipeline.evaluation.scoring import prompt_text, response_nll
from hominem_pipeline.models import load_causal_lm, resolve_model
from hominem_pipeline.settings import Settings


def full_logits_nll(model, tok, pairs, batch_size: int = 8) -> list[float]:
    """Baseline: right padding, logits for every position, loss masked to the response."""
    out = []
    for start in range(0, len(pairs), batch_size):
        rows = []
        for prompt, response in pairs[start : start + batch_size]:
            p = tok(prompt_text(tok, prompt), add_special_tokens=False)["input_ids"]
            rows.append((p + tok(response, add_special_tokens=False)["input_ids"], len(p)))
        width = max(len(r) for r, _ in rows)
        ids = torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long)
        att = torch.zeros_like(ids)
        lab = torch.full_like(ids, -100)
        for i, (r, n) in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            att[i, : len(r)] = 1
            lab[i, n : len(r)] = torch.tensor(r[n:])
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=att).logits.float()
        nll = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.size(-1)),
            lab[:, 1:].reshape(-1),
            ignore_index=-100,
            reduction="none",
        ).view(len(rows), -1)
        mask = (lab[:, 1:] != -100).float()
        out.extend((nll * mask).sum(1).div(mask.sum(1)).tolist())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="embedded:smollm2-135m-instruct")
    ap.add_argument(
        "--repeats", type=int, default=3, help="runs of each arm and of the whole evaluation; medians"
    )
    args = ap.parse_args()
    settings = Settings()
    path = resolve_model(args.model, settings.models_cache_dir)
    cfg, rs = load_eval_inputs(settings.config_dir)
    model, tok = load_causal_lm(path)
    pairs = [(g.prompt, g.reference) for g in rs.general]
    for s in rs.scenarios:
        pairs += [(s.prompt, s.balanced)] + [(s.prompt, f.response) for f in s.failures]

    timings: dict[str, list[float]] = {"baseline": [], "ours": []}
    results = {}
    for _ in range(args.repeats):
        for name, fn in (("baseline", full_logits_nll), ("ours", response_nll)):
            t = time.perf_counter()
            results[name] = fn(model, tok, pairs, cfg.nll_batch_size)
            timings[name].append(time.perf_counter() - t)
    diff = max(abs(a - b) for a, b in zip(results["baseline"], results["ours"], strict=True))

    b, o = statistics.median(timings["baseline"]), statistics.median(timings["ours"])
    print(f"model: {args.model}; {len(pairs)} scored pairs per arm; torch threads {torch.get_num_threads()}")
    for name, runs in timings.items():
        print(f"{name}: seconds per run {[round(x, 2) for x in runs]}")
    print(f"| what | seconds (median of {args.repeats}) | pairs/s | ratio to baseline |")
    print("|---|---|---|---|")
    print(f"| baseline: full logits, right padding | {b:.2f} | {len(pairs) / b:.1f} | 1.00x |")
    print(
        f"| ours: response positions only (`response_nll`) | {o:.2f} | {len(pairs) / o:.1f} | {o / b:.2f}x |"
    )
    print(f"max |NLL difference| between the two: {diff:.2e} nats/token")
    sys.stdout.flush()

    with tempfile.TemporaryDirectory() as tmp:
        from peft import LoraConfig, get_peft_model

        peft_model = get_peft_model(
            model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
        )
        registry = AdapterRegistry(Path(tmp), "bench")
        version = registry.publish_model(peft_model, {"created_at": now_utc(), "base_model": path})
        wholes = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            report = evaluate_version(registry, version, cfg, rs, base_model_path=path)
            wholes.append(time.perf_counter() - t)

    print(
        f"whole evaluation (base + candidate, default config, {cfg.generation.prompts_limit} greedy outputs of"
        f" {cfg.generation.max_new_tokens} tokens per arm, gate {'passed' if report.passed else 'failed'}):"
        f" median {statistics.median(wholes):.1f} s of {[round(x, 1) for x in wholes]}"
    )


if __name__ == "__main__":
    main()
