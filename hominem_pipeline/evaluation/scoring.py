"""Model-side measurements the evaluation is built from: per-token NLL of a response given a prompt, and
greedy generation, both batched and both formatted with the model's chat template."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hominem_pipeline.models import chat_prompt

# Re-exported under the evaluation's name: one formatting for training, evaluation and serving.
prompt_text = chat_prompt


def response_nll(
    model: Any, tokenizer: Any, pairs: Sequence[tuple[str, str]], batch_size: int = 8
) -> list[float]:
    """Mean negative log-likelihood per response token (nats) of each (prompt, response)."""
    import torch

    rows: list[tuple[list[int], int]] = []
    for prompt, response in pairs:
        p_ids = tokenizer(prompt_text(tokenizer, prompt), add_special_tokens=False)["input_ids"]
        r_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
        if not r_ids:
            raise ValueError(f"empty response for prompt {prompt[:60]!r}")
        rows.append((p_ids + r_ids, len(p_ids)))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out: list[float] = []
    device = next(model.parameters()).device
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        width = max(len(ids) for ids, _ in chunk)
        # Left padding puts every response at the end of its row, so only the last `keep` positions need
        # logits: the vocabulary projection dominates the cost and the prompts are not scored.
        keep = max(len(ids) - n_prompt for ids, n_prompt in chunk) + 1
        input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        attention = torch.zeros((len(chunk), width), dtype=torch.long)
        labels = torch.full((len(chunk), width), -100, dtype=torch.long)
        for i, (ids, n_prompt) in enumerate(chunk):
            offset = width - len(ids)
            input_ids[i, offset:] = torch.tensor(ids)
            attention[i, offset:] = 1
            labels[i, offset + n_prompt :] = torch.tensor(ids[n_prompt:])
        with torch.no_grad():
            logits = model(
                input_ids=input_ids.to(device), attention_mask=attention.to(device), logits_to_keep=keep
            ).logits.float()
        shift_logits, shift_labels = logits[:, :-1], labels[:, width - keep + 1 :].to(device)
        token_nll = torch.nn.functional.cross_entropy(
            shift_logits.reshape(-1, shift_logits.size(-1)),
            shift_labels.reshape(-1),
            ignore_index=-100,
            reduction="none",
        ).view(shift_labels.shape)
        mask = (shift_labels != -100).float()
        out.extend((token_nll * mask).sum(1).div(mask.sum(1)).tolist())
    return out


def greedy_generate(
    model: Any, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int = 40, batch_size: int = 8
) -> list[str]:
    """Greedy continuations (deterministic, so base and adapter outputs are comparable run to run)."""
    import torch

    previous_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    out: list[str] = []
    device = next(model.parameters()).device
    try:
        for start in range(0, len(prompts), batch_size):
            texts = [prompt_text(tokenizer, p) for p in prompts[start : start + batch_size]]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            with torch.no_grad():
                gen = model.generate(
                    **enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
                )
            new = gen[:, enc["input_ids"].shape[1] :]
            out.extend(t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True))
    finally:
        tokenizer.padding_side = previous_side
    return out
