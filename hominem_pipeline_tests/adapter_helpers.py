"""Real PEFT adapters on the tiny model for registry, evaluation and promotion tests: fresh (untouched),
trained for a few optimizer steps on given (prompt, response) pairs, or with perturbed LoRA weights."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hominem_pipeline.adapters import AdapterRegistry, now_utc
from hominem_pipeline.evaluation.scoring import prompt_text


def lora_model(base_dir: Path, seed: int = 0) -> tuple[Any, Any]:
    import torch
    from peft import LoraConfig, get_peft_model

    from hominem_pipeline.models import load_causal_lm

    torch.manual_seed(seed)
    model, tok = load_causal_lm(str(base_dir))
    # The tiny random model's logits are nearly uniform and the final RMSNorm caps how far LoRA alone can
    # sharpen them; training the norms too (PEFT's modules_to_save) lets a few steps visibly teach it.
    cfg = LoraConfig(
        r=8,
        lora_alpha=32,
        lora_dropout=0.0,
        target_modules=["q_proj", "v_proj", "up_proj", "down_proj"],
        modules_to_save=["norm"],
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, cfg), tok


def train_steps(
    model: Any, tok: Any, pairs: Sequence[tuple[str, str]], steps: int = 20, lr: float = 1e-2
) -> None:
    """Plain SFT on the response tokens, all pairs in one batch per step."""
    import torch

    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    rows = []
    for prompt, response in pairs:
        p_ids = tok(prompt_text(tok, prompt), add_special_tokens=False)["input_ids"]
        rows.append((p_ids + tok(response, add_special_tokens=False)["input_ids"], len(p_ids)))
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    attention = torch.zeros_like(input_ids)
    labels = torch.full_like(input_ids, -100)
    for i, (ids, n_prompt) in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        attention[i, : len(ids)] = 1
        labels[i, n_prompt : len(ids)] = torch.tensor(ids[n_prompt:])
    # The model is where device.select_device() put it (load_causal_lm): the batch goes there too.
    device = next(model.parameters()).device
    input_ids, attention, labels = input_ids.to(device), attention.to(device), labels.to(device)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    for _ in range(steps):
        loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()


def perturb(model: Any, scale: float = 20.0, seed: int = 1) -> None:
    """Random norm and LoRA B weights: an adapter that damages the base model's behaviour (a small
    `scale` gives a slightly different, harmless adapter)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name or "modules_to_save" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * scale)


def publish(
    registry: AdapterRegistry, model: Any, base_dir: Path, parent: str | None = None, **extra: Any
) -> str:
    meta = {"created_at": now_utc(), "base_model": str(base_dir), "parent_version": parent, **extra}
    return registry.publish_model(model, meta)
