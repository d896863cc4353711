"""Test helper: the two channels' JSONL exports, written as the retraining sensor reads them."""

from __future__ import annotations

import json
from pathlib import Path


class Exports:
    """Writes the SFT and preference exports the way `sft_pairs` / `preference_pairs` do (ids matter)."""

    def __init__(self, home: Path):
        self.home = home
        self.sft: list[dict] = []
        self.pref: list[dict] = []

    def add(self, conversations: int = 0, pairs: int = 0, tag: str = "") -> None:
        n = len(self.sft)
        for i in range(conversations):
            # Two SFT rows per conversation: the count is of conversations, not rows.
            for turn in range(2):
                self.sft.append(
                    {
                        "pair_id": f"s{tag}{n + i}-{turn}",
                        "conversation_id": f"c{tag}{n + i}",
                        "instruction": "q?",
                        "response": "an answer",
                        "source": "conversation",
                    }
                )
        m = len(self.pref)
        self.pref += [
            {"pair_id": f"p{tag}{m + i}", "prompt": "q", "chosen": "a", "rejected": "b", "source": "feedback"}
            for i in range(pairs)
        ]
        for rel, rows in (
            ("data/sft/sft_training.jsonl", self.sft),
            ("data/preferences/preferences.jsonl", self.pref),
        ):
            path = self.home / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
