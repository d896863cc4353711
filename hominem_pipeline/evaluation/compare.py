"""Base vs base+LoRA on one prompt: both greedy outputs, a word diff, and the reward model's reading of
each (reward vector, intensity, safety) when one is published. Used by `hominem compare`."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel

from hominem_pipeline.adapters import AdapterRegistry
from hominem_pipeline.evaluation.scoring import greedy_generate


class Scored(BaseModel):
    output: str
    reward_vector: dict[str, float] | None = None
    reward_intensity: float | None = None
    safety_score: float | None = None
    scalar_preference: float | None = None


class Comparison(BaseModel):
    prompt: str
    adapter_version: str
    base: Scored
    lora: Scored
    diff: str
    reward_model: str | None
    reward_model_note: str


def word_diff(before: str, after: str) -> str:
    """Words only in `before` as [-w-], only in `after` as {+w+}, shared words plain."""
    a, b = before.split(), after.split()
    out: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            out.extend(a[i1:i2])
            continue
        if op in ("delete", "replace"):
            out.append("[-" + " ".join(a[i1:i2]) + "-]")
        if op in ("insert", "replace"):
            out.append("{+" + " ".join(b[j1:j2]) + "+}")
    return " ".join(out)


def _scored(output: str, reward: Any | None) -> Scored:
    if reward is None:
        return Scored(output=output)
    return Scored(
        output=output,
        reward_vector=dict(reward.reward_vector),
        reward_intensity=reward.reward_intensity,
        safety_score=reward.safety_score,
        scalar_preference=getattr(reward, "scalar_preference", None),
    )


def compare_prompt(
    registry: AdapterRegistry,
    ref: str,
    prompt: str,
    *,
    max_new_tokens: int = 64,
    reward_model: Any | None = None,
    reward_model_note: str = "no reward model given",
) -> Comparison:
    model, tok, adapter = registry.load(ref)
    with model.disable_adapter():
        [base_out] = greedy_generate(model, tok, [prompt], max_new_tokens)
    [lora_out] = greedy_generate(model, tok, [prompt], max_new_tokens)
    rewards: list[Any | None] = [None, None]
    if reward_model is not None:
        rewards = list(reward_model.score_batch([(prompt, base_out), (prompt, lora_out)]))
    return Comparison(
        prompt=prompt,
        adapter_version=adapter.version,
        base=_scored(base_out, rewards[0]),
        lora=_scored(lora_out, rewards[1]),
        diff=word_diff(base_out, lora_out),
        reward_model=getattr(reward_model, "version", None) if reward_model is not None else None,
        reward_model_note=reward_model_note,
    )
