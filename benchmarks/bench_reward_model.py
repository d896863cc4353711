"""Throughput of the reward model against the local teacher's rating path, on the same (prompt, response) set.

    PYTHONPATH=. python benchmarks/bench_reward_model.py [--items 240] [--teacher-items 8] [--repeats 3]

Rows: the bare sentence encoder (every distinct text of the items encoded once, no cache, no heads: the
floor any embedding scorer pays), the local teacher (`LocalTeacher.rate`, the configured embedded SmolLM2, G-Eval over every dimension
and scalar, with and without the rationale the pipeline asks for by default) and the reward model
(`RewardModel.score_batch`, and `score` one call per item). Model loading is excluded from every row.
The reward model scored is `current` under HOMINEM_HOME if there is one, else one trained here on
synthetic labels (its speed does not depend on what its weights learned). Every response in the set is
distinct; each prompt is shared by several candidates, as when candidates of one prompt are scored.
The machine may be shared: the ratio, measured in one run, matters more than the absolute numbers.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from hominem_pipeline.atomic import Pointer
from hominem_pipeline.data.prompts import load_seed_prompts
from hominem_pipeline.embedding import Embedder
from hominem_pipeline.manifold import load_manifold
from hominem_pipeline.reward_model import RewardModel
from hominem_pipeline.reward_model.config import RewardModelConfig
from hominem_pipeline.reward_model.dataset import sample_from_row
from hominem_pipeline.reward_model.registry import publish, reward_model_root
from hominem_pipeline.reward_model.train import train_reward_model
from hominem_pipeline.settings import Settings
from hominem_pipeline.teacher import build_teacher

OPENINGS = [
    "That sounds really hard, and it makes sense that you feel this way.",
    "Here is one way to think about it.",
    "I can't tell you what to do, but I can help you weigh it.",
    "Good question: the honest answer is that it depends.",
    "Let's slow down and look at what you already know.",
]
BODIES = [
    "Start by writing down the two or three things that matter most to you here, then ask which option "
    "protects them. If you are unsure, talk it through with someone you trust before deciding.",
    "The evidence is mixed, so be wary of anyone who sounds certain. Look for sources that explain how "
    "they know what they claim, and notice where they separate fact from opinion.",
    "You do not have to solve everything today. Pick one small step you can take this week and see how "
    "it feels; you can always change course once you know more.",
    "People often find it helps to say out loud what they are afraid of. What would happen if the worst "
    "case came true, and what would you do then?",
]


def build_items(settings: Settings, n: int, seed: int = 0) -> list[tuple[str, str]]:
    prompts = [p.text for p in load_seed_prompts(settings.seed_prompts_path)]
    rng = random.Random(seed)
    items = []
    for i in range(n):
        response = f"{rng.choice(OPENINGS)} {rng.choice(BODIES)} ({i})"
        items.append((prompts[(i // 4) % len(prompts)], response))
    return items


def reward_model_folder(settings: Settings, items: list[tuple[str, str]], workdir: Path) -> tuple[Path, str]:
    root = reward_model_root(settings.artifacts_dir)
    current = Pointer(root, "current").target
    if current:
        return root / current, f"current ({current})"
    manifold = load_manifold(settings.manifold_path)
    rng = random.Random(1)
    samples = []
    for prompt, response in items[:80]:
        vector = {d: rng.uniform(-0.5, 0.5) for d in manifold.names}
        row = {
            "prompt": prompt,
            "response": response,
            "reward_vector": vector,
            "reward_intensity": rng.uniform(0, 1),
            "safety_score": rng.uniform(0, 1),
        }
        samples.append(sample_from_row(row, manifold))
    embedder = Embedder(settings.inference.embeddings.model)
    result = train_reward_model(samples, [], manifold, embedder, RewardModelConfig())
    published = publish(result, workdir)
    return published.path, f"trained here on synthetic labels ({published.version})"


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=240, help="(prompt, response) pairs for the reward model")
    ap.add_argument("--teacher-items", type=int, default=8, help="how many of them the teacher rates")
    ap.add_argument(
        "--repeats", type=int, default=3, help="runs of the score_batch and encoder rows (median)"
    )
    ap.add_argument("--single-repeats", type=int, default=3, help="runs of the score()-per-item row (median)")
    args = ap.parse_args()

    settings = Settings()
    manifold = load_manifold(settings.manifold_path)
    items = build_items(settings, args.items)
    teacher_items = items[: args.teacher_items]
    rows = []

    texts = list(dict.fromkeys([p for p, _ in items] + [r for _, r in items]))
    with tempfile.TemporaryDirectory() as tmp:
        folder, which = reward_model_folder(settings, items, Path(tmp))
        # A freshly loaded model (empty embedding cache) per repeat, so no run reuses an earlier run's
        # work; one warm-up call first so loading MiniLM is not counted. The bare encoder encodes the
        # distinct texts the items need (each prompt once), with no cache and no heads.
        batch, single, bare = [], [], []
        for _ in range(args.repeats):
            model = RewardModel.load(folder)
            model.score_batch([("warm up", "warm up")])
            batch.append(timed(model.score_batch, items))
            encoder = Embedder(model.embedder_spec)
            encoder.encode(["warm up"])
            bare.append(timed(encoder.encode, texts))
            if len(single) < args.single_repeats:
                fresh = RewardModel.load(folder)
                fresh.score_batch([("warm up", "warm up")])
                single.append(timed(lambda xs, m=fresh: [m.score(p, r) for p, r in xs], items))
        rows.append(("reward model, score_batch", len(items), statistics.median(batch)))
        rows.append(("reward model, score() per item", len(items), statistics.median(single)))
        bare_row = (
            f"bare encoder on the same items ({len(texts)} distinct texts)",
            len(items),
            statistics.median(bare),
        )

    teacher = build_teacher(settings)

    def rate(xs: list[tuple[str, str]]) -> object:
        return teacher.rate(xs, manifold)

    rate(items[-1:])  # warm-up: loading the model is not rating
    rows.append((f"teacher {teacher.rater_identity}", len(teacher_items), timed(rate, teacher_items)))
    if getattr(teacher, "rationale", False):
        teacher.rationale = False
        rows.append(("teacher, G-Eval without rationale", len(teacher_items), timed(rate, teacher_items)))

    print(f"reward model: {which}; teacher: {settings.inference.teacher.model}")
    print(
        f"score_batch and encoder rows: median of {args.repeats} runs; score() per item: median of "
        f"{len(single)}; teacher rows: one run each"
    )
    print(f"{'scorer':60s} {'items':>6s} {'seconds':>9s} {'items/s':>9s}")
    for name, n, secs in [*rows[:2], bare_row, *rows[2:]]:
        print(f"{name[:60]:60s} {n:6d} {secs:9.3f} {n / secs:9.2f}")
    rm = rows[0][1] / rows[0][2]
    print(
        f"ratio reward model (score_batch) / bare encoder: {rm / (bare_row[1] / bare_row[2]):.2f}x (goal >= 0.8x)"
    )
    for name, n, secs in rows[2:]:
        print(f"ratio reward model (score_batch) / {name}: {rm / (n / secs):.0f}x (goal >= 1000x)")
    slowest_rm = rows[1][1] / rows[1][2]
    fastest_teacher = max(n / secs for _, n, secs in rows[2:])
    print(f"ratio worst case (score() per item vs fastest teacher row): {slowest_rm / fastest_teacher:.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
