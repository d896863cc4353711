"""Synthetic labelled data with a planted signal, for the reward-model tests.

The teacher here is a rule: `empathy` is high exactly when the reply contains the apology keyword, and
every other label is noise. A model that recovers the rule has learned from text, not from label means.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

from hominem_pipeline.manifold import RewardManifold
from hominem_pipeline.settings import REPO_ROOT

KEYWORD = "I'm so sorry you're going through this."
TOPICS = [
    "my job",
    "a friend",
    "moving house",
    "my exam",
    "a diet",
    "learning piano",
    "my sister",
    "a budget",
    "the election",
    "a breakup",
    "a loan",
    "my garden",
    "a new city",
    "my boss",
    "a long trip",
    "my health",
]
ADVICE = [
    "Make a plan and list your options.",
    "Try talking to someone you trust about it.",
    "Write down what bothers you most, then pick one thing.",
    "Take one small step today and see how it feels.",
]


def planted_rows(manifold: RewardManifold, seed: int = 0, topics: list[str] | None = None) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for t_i, topic in enumerate(topics or TOPICS):
        prompt = f"I keep worrying about {topic}. What should I do?"
        for j in range(4):
            kind = j % 2 == 0
            response = (KEYWORD + " " if kind else "") + ADVICE[(t_i + j) % len(ADVICE)]
            vector = {d: round(rng.uniform(-0.3, 0.3), 4) for d in manifold.names}
            vector["empathy"] = round(max(-1.0, min(1.0, (0.7 if kind else -0.5) + rng.gauss(0, 0.08))), 4)
            rows.append(
                {
                    "label_id": f"lab-{t_i}-{j}",
                    "trajectory_id": f"traj-{t_i}-{j}",
                    "prompt_id": f"p{t_i}",
                    "category": "emotional_support",
                    "prompt": prompt,
                    "response": response,
                    "reward_vector": vector,
                    "reward_intensity": round(rng.uniform(0.3, 0.7), 4),
                    "safety_score": round(rng.uniform(0.6, 1.0), 4),
                    "scalar_preference": round(manifold.scalar_preference_of(vector), 6),
                    "rationale": "",
                    "confidence": {},
                }
            )
    return rows


def constant_rows(manifold: RewardManifold) -> list[dict]:
    """Every label identical: no model can beat predicting the mean."""
    rows = planted_rows(manifold)
    for r in rows:
        r["reward_vector"] = {d: 0.1 for d in manifold.names}
        r["reward_intensity"] = 0.5
        r["safety_score"] = 0.9
        r["scalar_preference"] = 0.1
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def make_home(tmp_path: Path) -> Path:
    """A hominem home with the repository's config; nothing else (the reward model needs no LM)."""
    home = tmp_path / "home"
    shutil.copytree(REPO_ROOT / "config", home / "config")
    return home
