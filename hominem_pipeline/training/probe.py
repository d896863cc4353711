"""Per-dimension gradient directions for the Reward Health Index (DCS and GVS inputs).

On a fixed probe batch of preference pairs, for each reward dimension d the pair losses are weighted by
how much d drove the preference, `a_d = max(0, chosen_d - rejected_d)` (the pair's `dimension_deltas`),
and `g_d = grad(sum(a_d * loss) / sum(a_d))` over the LoRA parameters. The trainer logs the gradient
norms and the pairwise cosines GDA(i, j); `dcs` is their mean of max(0, GDA), i.e. 2/(N(N-1)) * sum
(the seed's 1/(N(N-1)) would cap it at 0.5). Dimensions no probe pair drove are listed in `left_out`.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch

from hominem_pipeline.training.losses import Encoded, collate, dpo_losses, sequence_logprobs


def gradient_probe(
    model: Any,
    params: list[torch.Tensor],
    pairs: list[tuple[Encoded, Encoded]],
    ref: list[tuple[float, float]],
    deltas: list[dict[str, float]],
    beta: float,
    pad_id: int,
) -> dict[str, Any]:
    n = len(pairs)
    logps, _ = sequence_logprobs(model, collate([c for c, _ in pairs] + [r for _, r in pairs], pad_id))
    losses, _ = dpo_losses(
        logps[:n],
        logps[n:],
        torch.tensor([r[0] for r in ref], device=logps.device),
        torch.tensor([r[1] for r in ref], device=logps.device),
        beta,
    )
    dims = sorted({d for delta in deltas for d in delta})
    grads: dict[str, torch.Tensor] = {}
    left_out = []
    for d in dims:
        a = torch.tensor(
            [max(0.0, delta.get(d, 0.0)) for delta in deltas], dtype=losses.dtype, device=losses.device
        )
        if float(a.sum()) <= 0:
            left_out.append(d)
            continue
        g = torch.autograd.grad((a * losses).sum() / a.sum(), params, retain_graph=True, allow_unused=True)
        grads[d] = torch.cat(
            [
                (x if x is not None else torch.zeros_like(p)).reshape(-1)
                for x, p in zip(g, params, strict=True)
            ]
        )
    norms = {d: float(g.norm()) for d, g in grads.items()}
    gda = {}
    for a_name, b_name in itertools.combinations(sorted(grads), 2):
        cos = torch.nn.functional.cosine_similarity(grads[a_name], grads[b_name], dim=0)
        gda[f"{a_name}|{b_name}"] = float(cos)
    dcs = sum(max(0.0, v) for v in gda.values()) / len(gda) if gda else None
    return {"dimensions": sorted(grads), "left_out": left_out, "grad_norms": norms, "gda": gda, "dcs": dcs}
