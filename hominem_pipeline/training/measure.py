"""Measurements on a base model and a trained adapter: preference log-prob margins (the NLL of a response is
`evaluation.scoring.response_nll`, the one NLL function). Used by the proof-it-learns tests and
`benchmarks/proof_it_learns.py`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from hominem_pipeline.models import MODEL_LOADING
from hominem_pipeline.training.losses import collate, encode, sequence_logprobs


def load_with_adapter(base_path: str, adapter_dir: Path | str) -> tuple[Any, Any]:
    """(PeftModel in eval mode, tokenizer); `with model.disable_adapter():` gives the base model."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with MODEL_LOADING:
        tok = AutoTokenizer.from_pretrained(base_path)
        base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
        model = PeftModel.from_pretrained(base, str(adapter_dir))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.eval()
    return model, tok


@torch.no_grad()
def preference_margin(
    model: Any, tok: Any, triples: Sequence[tuple[str, str, str]], max_length: int = 256
) -> float:
    """Mean of log p(chosen) - log p(rejected) over (prompt, chosen, rejected)."""
    margins = []
    for prompt, chosen, rejected in triples:
        seqs = [encode(tok, prompt, c, max_length, max_length) for c in (chosen, rejected)]
        lp, _ = sequence_logprobs(model, collate(seqs, tok.pad_token_id))
        margins.append(float(lp[0] - lp[1]))
    return sum(margins) / max(1, len(margins))
