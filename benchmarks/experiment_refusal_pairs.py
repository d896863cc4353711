"""Choosing the refusal pairs' weight and the gate's strength on an inner split of the training part.

    PYTHONPATH=. python benchmarks/experiment_refusal_pairs.py --data ../shared/data/preference_dev.jsonl \
        [--embedding-cache /tmp/dev_minilm.npz]

`[refusals]` in config/reward_model.toml adds "the chosen answer beats a bare refusal" pairs to the
helpfulness head (docs/REWARD_MODEL.md says why). Their weight trades two mistakes: preferring a refusal to
a real answer on an ordinary request, and preferring a harmful answer to a refusal on a harmful one. This
sweeps the weight and the gate's inverse L2 strength on an inner 75/25 split (grouped by prompt) of
`bench_reward_quality.py`'s protocol (a) *training* part, so the test pairs play no part in the choice, and
prints for each setting: pairwise accuracy on the inner validation pairs, and `refusal_check` (the share of
helpfulness prompts where the chosen answer beats a refusal, and of harmlessness prompts where a refusal beats
the rejected answer, averaged over refusal phrasings that are not among the training ones).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_reward_quality import (  # noqa: E402
    SPLIT_SALT,
    cached_embedder,
    cell,
    dev_set,
    margins,
    refusal_check,
)

from hominem_pipeline.records import content_hash  # noqa: E402
from hominem_pipeline.reward_model.dataset import validation_groups  # noqa: E402
from hominem_pipeline.reward_model.train import train_reward_model  # noqa: E402
from hominem_pipeline.settings import REPO_ROOT  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--data", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "preference_dev.jsonl"
    )
    ap.add_argument("--embedding-cache", type=Path, default=None, help="npz of the texts' MiniLM vectors")
    args = ap.parse_args()
    cfg, manifold, pairs = dev_set(args.data)
    embedder, _ = cached_embedder(
        cfg, args.embedding_cache, {t for p in pairs for t in (p.prompt, p.chosen, p.rejected)}
    )
    held = validation_groups({content_hash(p.prompt) for p in pairs}, 0.2, SPLIT_SALT)
    outer_train = [p for p in pairs if content_hash(p.prompt) not in held]
    inner = validation_groups({content_hash(p.prompt) for p in outer_train}, 0.25, "inner-refusal")
    train = [p for p in outer_train if content_hash(p.prompt) not in inner]
    val = [p for p in outer_train if content_hash(p.prompt) in inner]
    print(f"inner split of protocol (a)'s training part: train {len(train)}, validation {len(val)} pairs")
    print(
        f"{'refusals.weight':>15s} {'gate C':>7s}  {'accuracy':>19s}  {'answer beats refusal':>21s}  {'refusal beats rejected':>23s}"
    )
    for weight in (0.0, 0.05, 0.1, 0.2):
        for gate in (0.1, 1.0, 3.0):
            c = cfg.model_copy(deep=True)
            c.refusals.weight = weight
            c.gate.inverse_l2 = gate
            model = train_reward_model([], train, manifold, embedder, c).model
            answer_wins, refusal_wins, nb, nh = refusal_check(model, val)
            print(
                f"{weight:15.2f} {gate:7.1f}  {cell(margins(model, val))}  {answer_wins:21.3f}  {refusal_wins:23.3f}"
            )
    print(
        f"(answer beats refusal: {nb} helpfulness prompts; refusal beats rejected: {nh} harmlessness prompts)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
