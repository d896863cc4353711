"""Does a fine-tuned cross-encoder pay, against the shipped reward model's frozen-embedding heads?

    PYTHONPATH=. python benchmarks/experiment_cross_encoder.py --data ../shared/data/preference_dev.jsonl \
        [--max-len 192] [--prompt-tokens 64] [--epochs 1] [--lr 3e-5] [--batch 8] [--threads 1]

The candidate issue 11 names first: all-MiniLM-L6-v2 (the embedder the project ships) read as a
cross-encoder over "[CLS] prompt [SEP] response [SEP]" (the prompt's last `--prompt-tokens` tokens: the turn
being answered), mean-pooled, a linear score head, every weight fine-tuned with the pairwise
Bradley-Terry loss -log sigmoid(s(chosen) - s(rejected)), AdamW with 10% warm-up and linear decay. Trained
and tested on exactly the pairs of `bench_reward_quality.py`'s protocol (a): the 80/20 split grouped by
prompt, so its per-source accuracies compare with that benchmark's "v2" column. Prints training
throughput, test accuracy per source with 95% Wilson intervals, and the arguments.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_reward_quality import SPLIT_SALT, cell, load_pairs  # noqa: E402

from hominem_pipeline.models import resolve_embedding_model  # noqa: E402
from hominem_pipeline.records import content_hash  # noqa: E402
from hominem_pipeline.reward_model.config import RewardModelConfig  # noqa: E402
from hominem_pipeline.reward_model.dataset import validation_groups  # noqa: E402
from hominem_pipeline.settings import REPO_ROOT, load_toml_model  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--data", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "preference_dev.jsonl"
    )
    ap.add_argument("--max-len", type=int, default=192)
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=3e-5)
    ap.add_argument("--batch", type=int, default=8, help="pairs per step (2x sequences)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = load_toml_model(REPO_ROOT / "config" / "reward_model.toml", RewardModelConfig)
    pairs = load_pairs(args.data, cfg)
    held = validation_groups({content_hash(p.prompt) for p in pairs}, 0.2, SPLIT_SALT)
    train = [p for p in pairs if content_hash(p.prompt) not in held]
    test = [p for p in pairs if content_hash(p.prompt) in held]
    random.Random(0).shuffle(train)
    path = resolve_embedding_model("embedded:all-minilm-l6-v2")
    tok = AutoTokenizer.from_pretrained(path)
    encoder = AutoModel.from_pretrained(path)
    head = torch.nn.Linear(encoder.config.hidden_size, 1)
    opt = torch.optim.AdamW([*encoder.parameters(), *head.parameters()], lr=args.lr, weight_decay=0.01)

    def batch_ids(prompts: list[str], responses: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = []
        for prompt, response in zip(prompts, responses, strict=True):
            p = tok.encode(prompt, add_special_tokens=False)[-args.prompt_tokens :]
            r = tok.encode(response, add_special_tokens=False)[: args.max_len - 3 - len(p)]
            rows.append([tok.cls_token_id, *p, tok.sep_token_id, *r, tok.sep_token_id])
        width = max(map(len, rows))
        ids = torch.full((len(rows), width), tok.pad_token_id)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        return ids, mask

    def score(prompts: list[str], responses: list[str]) -> torch.Tensor:
        ids, mask = batch_ids(prompts, responses)
        hidden = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        pooled = (hidden * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
        return head(pooled).squeeze(-1)

    steps = int(len(train) * args.epochs / args.batch)
    warm = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, (steps - s) / steps)
    )
    encoder.train()
    t0 = time.perf_counter()
    losses = []
    for s in range(steps):
        b = [train[(s * args.batch + j) % len(train)] for j in range(args.batch)]
        scores = score([p.prompt for p in b] * 2, [p.chosen for p in b] + [p.rejected for p in b])
        loss = -torch.nn.functional.logsigmoid(scores[: len(b)] - scores[len(b) :]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if (s + 1) % 20 == 0:
            print(
                f"step {s + 1}/{steps}: loss (mean of 20) {np.mean(losses[-20:]):.4f}, {time.perf_counter() - t0:.0f} s",
                flush=True,
            )
    train_s = time.perf_counter() - t0

    encoder.eval()
    t0 = time.perf_counter()
    margins = []
    with torch.no_grad():
        for i in range(0, len(test), 32):
            b = test[i : i + 32]
            prompts = [p.prompt for p in b]
            margins.append(
                (score(prompts, [p.chosen for p in b]) - score(prompts, [p.rejected for p in b])).numpy()
            )
    m = np.concatenate(margins)
    eval_s = time.perf_counter() - t0
    print(
        f"trained {steps} steps x {args.batch} pairs in {train_s:.0f} s ({2 * steps * args.batch / train_s:.1f} "
        f"sequences/s, forward and backward); scored {len(test)} test pairs in {eval_s:.0f} s "
        f"({2 * len(test) / eval_s:.1f} sequences/s)"
    )
    by = defaultdict(list)
    for i, p in enumerate(test):
        by[p.source].append(i)
    print(f"{'source':30s} {'n':>5s}  {'cross-encoder':>19s}")
    for source in sorted(by):
        print(f"{source[:30]:30s} {len(by[source]):5d}  {cell(m[by[source]])}")
    print(f"{'overall':30s} {len(test):5d}  {cell(m)}")
    print(json.dumps({k: str(v) for k, v in vars(args).items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
