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
    cfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    return get_peft_model(model, cfg), tok


def train_steps(model: Any, tok: Any, pairs: Sequence[tuple[str, str]], steps: int = 30, lr: float = 1e-2) -> None:
    """Plain SFT on the response tokens: enough for the tiny model to memorise a handful of pairs."""
    import torch

    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    for _ in range(steps):
        for prompt, response in pairs:
            p_ids = tok(prompt_text(tok, prompt), add_special_tokens=False)["input_ids"]
            r_ids = tok(response, add_special_tokens=False)["input_ids"]
            ids = torch.tensor([p_ids + r_ids])
            labels = ids.clone()
            labels[0, : len(p_ids)] = -100
            loss = model(input_ids=ids, labels=labels).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
    model.eval()


def perturb(model: Any, scale: float = 0.5, seed: int = 1) -> None:
    """Random LoRA B weights: an adapter that damages the base model's behaviour."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * scale)


def publish(registry: AdapterRegistry, model: Any, base_dir: Path, parent: str | None = None, **extra: Any) -> str:
    meta = {"created_at": now_utc(), "base_model": str(base_dir), "parent_version": parent, **extra}
    return registry.publish_model(model, meta)
