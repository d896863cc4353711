"""LRPS on a simulation home's stored feedback, two readings side by side (docs/REWARD_HEALTH.md):

- `reward model vs emoji` (the baseline, the reading before the user head): per conversation, the mean
  scalar of the published reward model against the mean emoji valence the user gave;
- `user head`: the user's emoji and choices against a head cross-fitted by conversation
  (`health.predictivity`), on the judgements as stored and with every judgement flipped at random
  (each emoji's sign and each choice's order, per seed): what a contradictory user would have given on the
  same replies.

Usage: PYTHONPATH=. python benchmarks/bench_lrps_reading.py HOME [HOME ...] [--seeds 4]
(HOME: a `hominem simulate` home, e.g. data/simulation/concise after `make demo`).
"""

from __future__ import annotations

import argparse
import os
import random
from collections import defaultdict

import numpy as np


def measure(home: str, seeds: int) -> None:
    os.environ["HOMINEM_HOME"] = home
    os.environ["HOMINEM_CONFIG_DIR"] = os.path.join(home, "config")
    from hominem_pipeline.health import components as C
    from hominem_pipeline.health.config import HealthConfig
    from hominem_pipeline.health.measure import conversations_from_store, judged_lrps, user_judgements
    from hominem_pipeline.health.predictivity import Judgements
    from hominem_pipeline.reward_model import load_current
    from hominem_pipeline.settings import Settings
    from hominem_pipeline.store.db import TrainingDatabase

    settings, cfg = Settings(), HealthConfig()
    reward_model = load_current(settings.artifacts_dir)
    with TrainingDatabase(settings.database_path) as db:
        conversations = conversations_from_store(db, cfg.probes.conversations_limit)
        judged = user_judgements(db, conversations)

    # the baseline: the reward model's scalar against each conversation's mean emoji valence
    owner = {mid: c.conversation_id for c in conversations for mid, _, _ in c.turns}
    items = [(p, r) for c in conversations for _, p, r in c.turns]
    scores = reward_model.score_items(items)  # once: every reading below asks about the same replies
    scalars = scores.scalar
    local, outcome = defaultdict(list), defaultdict(list)
    for mid, s in zip(owner, scalars, strict=True):  # dicts keep order: the turns' order, as `items`
        local[owner[mid]].append(float(s))
    for mid, v in judged.valence.items():
        outcome[owner[mid]].append(v)
    with_outcome = sorted(outcome)
    baseline = C.lrps(
        [float(np.mean(local[c])) for c in with_outcome], [float(np.mean(outcome[c])) for c in with_outcome]
    )

    def lrps_of(j: Judgements) -> C.Component:
        return judged_lrps(reward_model, conversations, j, cfg, scores)

    def show(name: str, c: C.Component) -> None:
        keys = ("choice_accuracy", "choice_agreement", "emoji_pearson", "pearson", "conversations")
        info = ", ".join(f"{k} {c.inputs[k]}" for k in keys if k in c.inputs)
        value = "not measured" if c.value is None else f"{c.value:.3f}"
        print(f"  {name:34s} LRPS {value:>12s}  ({info}{'; ' + c.note if c.note else ''})")

    print(
        f"{home}: {len(conversations)} conversations, {len(judged.valence)} replies with emoji, "
        f"{len(judged.choices)} choices, reward model {reward_model.version}"
    )
    show("reward model vs emoji (baseline)", baseline)
    show("user head, as stored", lrps_of(judged))
    for seed in range(1, seeds + 1):
        rng = random.Random(seed)
        flipped = Judgements(
            {m: (-v if rng.random() < 0.5 else v) for m, v in judged.valence.items()},
            [(c, r) if rng.random() < 0.5 else (r, c) for c, r in judged.choices],
        )
        show(f"user head, flipped at random (seed {seed})", lrps_of(flipped))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("homes", nargs="+")
    ap.add_argument("--seeds", type=int, default=4)
    args = ap.parse_args()
    for home in args.homes:
        measure(home, args.seeds)


if __name__ == "__main__":
    main()
