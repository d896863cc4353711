"""Tokenisation, the two per-example losses and their blend. Hand-written because TRL has no per-example
weights: its DPO and SFT losses reduce over the batch inside the trainer, so a gain per example cannot be
applied.

The maths follows TRL's `sigmoid` DPO loss and its `sft` term (mean token NLL of the chosen response);
`blended_loss` is the one place the step's loss is put together (docs/TRAINING.md, "What a weight does").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from hominem_pipeline.models import chat_prompt


@dataclass
class Encoded:
    input_ids: list[int]
    prompt_len: int  # tokens before the completion; loss is taken on the rest

    @property
    def completion_tokens(self) -> int:
        return len(self.input_ids) - self.prompt_len


def encode(tok: Any, prompt: str, completion: str, max_prompt_tokens: int, max_length: int) -> Encoded:
    """Chat-template the prompt (as the model sees it when served), append completion + end of turn."""
    prompt_ids = tok(chat_prompt(tok, prompt), add_special_tokens=False)["input_ids"][-max_prompt_tokens:]
    end = tok.eos_token or ""
    completion_ids = tok(completion + end, add_special_tokens=False)["input_ids"]
    completion_ids = completion_ids[: max(1, max_length - len(prompt_ids))]
    return Encoded(prompt_ids + completion_ids, len(prompt_ids))


def collate(seqs: Sequence[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch with a mask that marks completion tokens (the ones that carry loss)."""
    width = max(len(s.input_ids) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(seqs), width), dtype=torch.long)
    loss_mask = torch.zeros((len(seqs), width), dtype=torch.bool)
    for i, s in enumerate(seqs):
        n = len(s.input_ids)
        ids[i, :n] = torch.tensor(s.input_ids)
        attn[i, :n] = 1
        loss_mask[i, s.prompt_len : n] = True
    return {"input_ids": ids, "attention_mask": attn, "loss_mask": loss_mask}


def sequence_logprobs(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of completion-token log-probs, completion-token count) per sequence, in one forward pass."""
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items()}
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    targets = batch["input_ids"][:, 1:]
    mask = batch["loss_mask"][:, 1:]
    # gather - logsumexp avoids materialising a second vocab-sized tensor for log_softmax.
    token_lp = torch.gather(logits, 2, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(
        logits.float(), dim=-1
    )
    token_lp = token_lp * mask
    return token_lp.sum(-1), mask.sum(-1)


def dpo_losses(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pair sigmoid DPO loss and the implicit reward margin (TRL's `sigmoid` loss, unreduced)."""
    logits = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    return -F.logsigmoid(beta * logits), beta * logits.detach()


def weighted_mean(losses: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum(w_i * loss_i) / batch size: each example's gradient is scaled by its weight, and the
    batch-size division keeps the scale independent of the batch size."""
    return (losses * weights).sum() / max(1, losses.shape[0])


class LossScale:
    """Running magnitude (EMA) of a channel's *unweighted* mean loss, for `normalize_losses`. Measured
    without the weights so that dividing by it rescales the channel to a common size but leaves a batch
    of low-weight examples smaller than a batch of high-weight ones."""

    def __init__(self, momentum: float = 0.9):
        self.value: float | None = None
        self.momentum = momentum

    def update(self, x: float) -> float:
        self.value = x if self.value is None else self.momentum * self.value + (1 - self.momentum) * x
        return max(self.value, 1e-6)


@dataclass
class ChannelBatch:
    """One channel's part of a step: per-example unweighted losses and their weights."""

    losses: torch.Tensor
    weights: torch.Tensor


def blended_loss(
    batches: dict[str, ChannelBatch],
    channel_weights: dict[str, float],
    scales: dict[str, LossScale] | None = None,
) -> tuple[torch.Tensor, dict[str, tuple[float, float]]]:
    """`sum over channels of channel_weight * weighted_mean(losses, weights) / scale`, where scale is 1,
    or with `scales` (normalize_losses) the channel's running unweighted loss magnitude. Returns the
    total and, per channel, (weighted mean loss, scale)."""
    total = torch.zeros(())
    parts: dict[str, tuple[float, float]] = {}
    for channel, batch in batches.items():
        loss = weighted_mean(batch.losses, batch.weights)
        scale = scales[channel].update(float(batch.losses.detach().mean())) if scales is not None else 1.0
        total = total + channel_weights[channel] * loss / scale
        parts[channel] = (float(loss.detach()), scale)
    return total, parts
