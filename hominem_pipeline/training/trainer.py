"""The dual-channel trainer: SFT (memory) + reward-weighted DPO (values) into one LoRA adapter.

One loop for every configuration: `L = sft_weight * L_sft + preference_weight * L_pref`, each example's
loss scaled by its weight (reward_intensity x recency x safety gate). The DPO reference is the adapter as
it stood at the start of the cycle (the published `current` adapter, or the base model on the first
cycle), frozen, so its log-probs are computed once per cycle and cached: one forward per step.
The result is published as a PEFT folder under `artifacts/lora/<model>/<version>/` (`atomic.publish_version`);
a non-finite loss stops the cycle first. With a store, the examples the cycle trained on are recorded
against the version (`store.consumption`); they count as used only once it is promoted.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hominem_pipeline.atomic import (
    Pointer,
    publish_version,
    verify_version,
    write_json_atomic,
    write_jsonl_atomic,
)
from hominem_pipeline.device import select_device
from hominem_pipeline.health.calibration import calibration_for_cycle
from hominem_pipeline.health.config import Probes
from hominem_pipeline.models import MODEL_LOADING, resolve_embedding_model
from hominem_pipeline.store.consumption import record_trained
from hominem_pipeline.training.config import TrainingConfig
from hominem_pipeline.training.data import Example, PreparedData
from hominem_pipeline.training.losses import (
    ChannelBatch,
    Encoded,
    LossScale,
    blended_loss,
    collate,
    dpo_losses,
    encode,
    sequence_logprobs,
)
from hominem_pipeline.training.probe import gradient_probe
from hominem_pipeline.training.sampler import Draw, build_sampler, mixing_schedule

log = logging.getLogger(__name__)

Progress = Callable[[int, int, dict[str, Any]], None]


class NoTrainingData(RuntimeError):
    """Nothing is left to learn from after loading, the safety gate and the weights."""


@dataclass
class TrainingResult:
    version: str
    path: Path
    published: bool  # False when an identical version already existed
    metadata: dict[str, Any]
    log_rows: list[dict[str, Any]] = field(default_factory=list)


class NonFiniteLoss(RuntimeError):
    """A step's loss was NaN or infinite: the cycle stops and nothing is published."""


def channel_weights(config: TrainingConfig, n_sft: int, n_pref: int) -> tuple[float, float]:
    """Effective (sft, preference) weights. With `dynamic_weighting` the weights lean towards the channel
    with more data, preference kept >= 0.5. A cycle where one channel of a dual config has no data
    follows `single_channel`: "train" gives the other channel the whole weight (there is no blend for
    the 0.5 rule to bound), "skip" trains nothing (NoTrainingData)."""
    if config.sft_weight == 0:
        return 0.0, 1.0
    if n_sft == 0 or n_pref == 0:
        if config.single_channel == "skip" and (n_sft or n_pref):
            empty = "memory (SFT)" if n_sft == 0 else "reward (preference)"
            raise NoTrainingData(f"the {empty} channel has no examples and single_channel is 'skip'")
        return (0.0, 1.0) if n_sft == 0 else (1.0, 0.0)
    s, p = config.sft_weight, config.preference_weight
    if config.dynamic_weighting:
        s, p = s * n_sft, p * n_pref
        s, p = s / (s + p), p / (s + p)
        if p < 0.5:
            s, p = 0.5, 0.5
    return s, p


def load_policy(base_path: str, config: TrainingConfig, adapter_dir: Path | None) -> tuple[Any, Any]:
    """Base model + the adapter to continue (trainable), or a fresh LoRA from the config."""
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with MODEL_LOADING:
        tok = AutoTokenizer.from_pretrained(base_path)
        # fp32 master weights on the selected device; bf16 enters only through autocast in the forward passes.
        base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32).to(select_device().device)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    base.config.use_cache = False
    if adapter_dir is not None:
        with MODEL_LOADING:
            model = PeftModel.from_pretrained(base, str(adapter_dir), is_trainable=True)
    else:
        lora = LoraConfig(
            r=config.lora.rank,
            lora_alpha=config.lora.alpha,
            lora_dropout=config.lora.dropout,
            target_modules=list(config.lora.target_modules),
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(base, lora)
    return model, tok


@torch.no_grad()
def reference_logprobs(
    model: Any, pairs: list[tuple[Encoded, Encoded]], pad_id: int
) -> list[tuple[float, float]]:
    """Log-probs of (chosen, rejected) under the frozen reference, one pair per forward so that a pair's
    numbers never depend on which other pairs are in the data (exact reproducibility)."""
    model.eval()
    out = []
    for chosen, rejected in pairs:
        with select_device().autocast():
            lp, _ = sequence_logprobs(model, collate([chosen, rejected], pad_id))
        out.append((float(lp[0]), float(lp[1])))
    model.train()
    return out


def _shared_forward(model: Any, seqs: list[Encoded], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    slot: dict[tuple[tuple[int, ...], int], int] = {}
    unique: list[Encoded] = []
    index = []
    for s in seqs:
        key = (tuple(s.input_ids), s.prompt_len)
        if key not in slot:
            slot[key] = len(unique)
            unique.append(s)
        index.append(slot[key])
    with select_device().autocast():
        logps, counts = sequence_logprobs(model, collate(unique, pad_id))
    logps = logps.float()  # losses and their gradients in fp32 whatever the forward ran in
    if len(unique) == len(seqs):
        return logps, counts
    idx = torch.tensor(index, device=logps.device)
    return logps[idx], counts[idx]


def _draw_stats(draw: Draw | None, examples: list[Example]) -> dict[str, float]:
    if draw is None:
        return {}
    w = [examples[i].weight for i in draw.indices]
    return {"weight_mean": float(np.mean(w)), "probability_mean": float(np.mean(draw.probabilities))}


def train_dual(
    config: TrainingConfig,
    data: PreparedData,
    *,
    base_model_path: str,
    lora_root: Path,
    db: Any | None = None,
    reward_model_version: str | None = None,
    progress: Progress | None = None,
    publish: bool = True,
    notes: dict[str, str] | None = None,
    health_probes: Probes | None = None,
    continue_from: str | None = None,
    extra_metadata: dict[str, Any] | None = None,
) -> TrainingResult:
    """Run one training cycle and publish the adapter. `lora_root` is `artifacts/lora/<model_name>/`;
    its `current` pointer (if any) is verified and read to continue training, never moved (an online
    update passes the version to continue as `continue_from`). With `db`, the store SFT rows and
    preference pairs trained on are recorded against the published version. `health_probes` sizes the
    GVS calibration stored in METADATA (`health.calibration`)."""
    torch.manual_seed(config.seed)
    current = continue_from or (
        Pointer(lora_root, "current").target if config.continue_from_current else None
    )
    adapter_dir = lora_root / current if current else None
    if adapter_dir is not None:
        verify_version(adapter_dir)  # never continue from (and use as DPO reference) a corrupted adapter
    previous_meta: dict[str, Any] = {}
    if adapter_dir is not None and (adapter_dir / "METADATA.json").is_file():
        previous_meta = json.loads((adapter_dir / "METADATA.json").read_text())
    cycle = int(previous_meta.get("cycle", 0)) + 1
    model, tok = load_policy(base_model_path, config, adapter_dir)
    log.info("training on %s", select_device().describe())
    pad_id = tok.pad_token_id

    sft = [e for e in data.examples if e.channel == "sft"]
    pref = [e for e in data.examples if e.channel == "preference"]
    sft_w, pref_w = channel_weights(config, len(sft), len(pref))
    sft = sft if sft_w > 0 else []
    pref = pref if pref_w > 0 else []
    if not sft and not pref:
        raise NoTrainingData(f"nothing to train on after the safety gate and weighting: {data.counts}")

    enc_sft = [encode(tok, e.prompt, e.chosen, config.max_prompt_tokens, config.max_length) for e in sft]
    enc_pref = [
        (
            encode(tok, e.prompt, e.chosen, config.max_prompt_tokens, config.max_length),
            encode(tok, e.prompt, e.rejected or "", config.max_prompt_tokens, config.max_length),
        )
        for e in pref
    ]
    t0 = time.perf_counter()
    ref = reference_logprobs(model, enc_pref, pad_id)
    ref_seconds = time.perf_counter() - t0

    embed_path = (
        resolve_embedding_model(config.diversity.embedding_model) if config.diversity.enabled else None
    )
    samplers = {}
    for name, exs, bs in (
        ("sft", sft, config.sft_batch_size),
        ("preference", pref, config.preference_batch_size),
    ):
        samplers[name] = (
            build_sampler(
                [f"{e.prompt}\n{e.chosen}" for e in exs],
                [e.weight for e in exs],
                bs,
                diversity=config.diversity.enabled,
                embedding_model=embed_path,
                k=config.diversity.k,
                per_cluster=config.diversity.per_cluster,
                farthest_first_basis=config.diversity.farthest_first_basis,
                seed=config.seed,
            )
            if exs
            else None
        )
    if config.max_steps > 0:
        n_steps = config.max_steps
    else:
        per_epoch = [s.batches_per_epoch() for s in samplers.values() if s is not None]
        factor = 2 if config.batch_mixing == "alternating" and sft and pref else 1
        n_steps = config.epochs * max(per_epoch) * factor

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    scales = {"sft": LossScale(), "preference": LossScale()} if config.normalize_losses else None
    probe_idx = [i for i, e in enumerate(pref) if e.dimension_deltas][: config.probe.batch_size]

    rows: list[dict[str, Any]] = []
    probes: list[dict[str, Any]] = []
    seen = {"sft": set(), "preference": set()}
    tokens = Counter()
    loss_share = Counter()
    step_seconds: list[float] = []
    model.train()
    schedule = mixing_schedule(
        config.batch_mixing, samplers["sft"], samplers["preference"], n_steps, sft_w, config.seed
    )
    for step, plan in enumerate(schedule, 1):
        t_step = time.perf_counter()
        seqs: list[Encoded] = []
        if plan.preference is not None:
            seqs += [enc_pref[i][0] for i in plan.preference.indices] + [
                enc_pref[i][1] for i in plan.preference.indices
            ]
        if plan.sft is not None:
            seqs += [enc_sft[i] for i in plan.sft.indices]
        # Both channels share one forward pass: one padded batch of chosen, rejected and SFT sequences,
        # each distinct sequence once (an SFT example may be a pair's chosen response).
        logps, counts = _shared_forward(model, seqs, pad_id)
        row: dict[str, Any] = {"step": step}
        batches: dict[str, ChannelBatch] = {}
        lrs = []
        offset = 0
        if plan.preference is not None:
            idx = plan.preference.indices
            n = len(idx)
            ref_c = torch.tensor([ref[i][0] for i in idx], device=logps.device)
            ref_r = torch.tensor([ref[i][1] for i in idx], device=logps.device)
            losses, margins = dpo_losses(logps[:n], logps[n : 2 * n], ref_c, ref_r, config.beta)
            batches["preference"] = ChannelBatch(
                losses, torch.tensor([pref[i].weight for i in idx], dtype=losses.dtype, device=losses.device)
            )
            row.update(
                preference_margin=float(margins.mean()),
                preference_accuracy=float((margins > 0).float().mean()),
                preference_sampling=_draw_stats(plan.preference, pref),
            )
            tokens["preference"] += int(counts[: 2 * n].sum())
            seen["preference"].update(pref[i].example_id for i in idx)
            lrs.append(config.preference_learning_rate)
            offset = 2 * n
        if plan.sft is not None:
            idx = plan.sft.indices
            nll = -logps[offset:] / counts[offset:].clamp(min=1)
            batches["sft"] = ChannelBatch(
                nll, torch.tensor([sft[i].weight for i in idx], dtype=nll.dtype, device=nll.device)
            )
            row.update(sft_sampling=_draw_stats(plan.sft, sft))
            tokens["sft"] += int(counts[offset:].sum())
            seen["sft"].update(sft[i].example_id for i in idx)
            lrs.append(config.sft_learning_rate)
        total, parts = blended_loss(batches, {"sft": sft_w, "preference": pref_w}, scales)
        for channel, (loss, scale) in parts.items():
            row[f"{channel}_loss"] = loss
            loss_share[channel] += (sft_w if channel == "sft" else pref_w) * loss / scale
        _check_finite(step, total, parts)
        # One channel in the step: its own learning rate; both: the channel-weighted mean.
        lr = (
            lrs[0]
            if len(lrs) == 1
            else sft_w * config.sft_learning_rate + pref_w * config.preference_learning_rate
        )
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
        optimizer.step()
        row.update(loss=float(total.detach()), grad_norm=float(grad_norm), lr=lr)
        if config.probe.interval and probe_idx and step % config.probe.interval == 0:
            probes.append(
                {
                    "step": step,
                    **gradient_probe(
                        model,
                        params,
                        [enc_pref[i] for i in probe_idx],
                        [ref[i] for i in probe_idx],
                        [pref[i].dimension_deltas for i in probe_idx],
                        config.beta,
                        pad_id,
                    ),
                }
            )
        rows.append(row)
        step_seconds.append(time.perf_counter() - t_step)
        if progress:
            progress(step, n_steps, row)

    t_knowledge = time.perf_counter()
    knowledge_rows = consolidate_knowledge(model, params, config, sft, enc_sft, pad_id, len(rows), progress)
    knowledge_seconds = time.perf_counter() - t_knowledge
    for r in knowledge_rows:
        seen["sft"].update(r["rows"])
        tokens["sft"] += r["tokens"]

    sft_trained = sorted(e.example_id for e in sft if e.from_database and e.example_id in seen["sft"])
    coverage = {k: s.coverage() for k, s in samplers.items() if s is not None}
    total_share = sum(loss_share.values()) or 1.0
    contributions = {
        ch: {
            "examples_available": len(exs),
            "examples_seen": len(seen[ch]),
            "tokens": tokens[ch],
            "loss_share": loss_share[ch] / total_share,
            "weight": wt,
        }
        for ch, exs, wt in (("sft", sft, sft_w), ("preference", pref, pref_w))
    }
    metrics = _final_metrics(rows)
    metadata = {
        "kind": "hominem-dual-lora",
        "cycle": cycle,
        "continued_from": current,
        "base_model": base_model_path,
        "config": config.model_dump(mode="json"),
        "data_hashes": data.data_hashes,
        "data_counts": data.counts,
        "channel_contributions": contributions,
        # The SFT rows this cycle trained on: lora_eval probes their facts (pinned to this adapter).
        "trained_sft_pair_ids": sorted(seen["sft"]),
        "reward_model_version": reward_model_version,
        "scored_by": data.scored_by,  # reward-model version that scored unscored examples of either channel
        "notes": notes or {},
        "dpo_reference": "adapter at the start of the cycle"
        + (f" ({current})" if current else " (base model)"),
        "recency": data.recency_stats,
        "cluster_coverage": coverage,
        # Recorded in the store's trained_examples after publication; marked used only when this
        # adapter becomes `current` (training.promotion).
        "trained_examples": {"sft": len(sft_trained), "preference": len(seen["preference"])},
        "steps": len(rows),
        "metrics": metrics,
        "knowledge_consolidation": {
            "steps": len(knowledge_rows),
            "rows": len({i for r in knowledge_rows for i in r["rows"]}),
            "learning_rate": config.knowledge_consolidation.learning_rate,
            **(
                {
                    "sft_loss_first": knowledge_rows[0]["sft_loss"],
                    "sft_loss_last": knowledge_rows[-1]["sft_loss"],
                }
                if knowledge_rows
                else {}
            ),
        },
        "gradient_probes": probes,
        "grad_norms": [r["grad_norm"] for r in rows],
        # GVI_max_reference for the Reward Health Index's GVS: inherited from the parent, or this run's.
        "health_calibration": calibration_for_cycle(
            previous_meta, current, [r["grad_norm"] for r in rows], health_probes or Probes()
        ),
        "timing": {
            "reference_logprobs_s": ref_seconds,
            "train_s": sum(step_seconds),
            "knowledge_consolidation_s": knowledge_seconds,
            "seconds_per_step": float(np.mean(step_seconds)) if step_seconds else None,
            "tokens_per_s": (sum(tokens.values()) / sum(step_seconds)) if step_seconds else None,
        },
        "created_at": datetime.now(UTC).isoformat(),
        **(extra_metadata or {}),  # e.g. the cycle's inputs fingerprint (training.reuse)
    }
    if not publish:
        return TrainingResult("", lora_root, False, metadata, rows)

    def write(folder: Path) -> None:
        # Only LoRA weights train; with lm_head targeted PEFT would otherwise copy the (unchanged, tied)
        # embedding matrix into every adapter.
        model.save_pretrained(str(folder), save_embedding_layers=False)
        # The log holds only what the data and config determine (no timings), so the folder hash is a
        # content address: the same cycle trained twice gives the same version.
        write_jsonl_atomic(folder / "training_log.jsonl", rows + knowledge_rows)
        write_json_atomic(folder / "gradient_probes.json", probes)

    published = publish_version(lora_root, write, lambda version: metadata)
    metadata.update(version=published.version)
    if db is not None:
        record_trained(
            db,
            lora_root.name,
            published.version,
            cycle,
            [("sft", i) for i in sft_trained] + [("preference", i) for i in sorted(seen["preference"])],
        )
    return TrainingResult(published.version, published.path, published.new, metadata, rows)


def _check_finite(step: int, total: torch.Tensor, parts: dict[str, tuple[float, float]]) -> None:
    if not torch.isfinite(total):
        # A NaN adapter or reward score would otherwise train, publish and be promoted silently.
        raise NonFiniteLoss(
            f"step {step}: loss is {float(total.detach())} ({', '.join(f'{c} {v[0]}' for c, v in parts.items())}); "
            "the cycle stopped and nothing was published"
        )


def consolidate_knowledge(
    model: Any,
    params: list[torch.Tensor],
    config: TrainingConfig,
    sft: list[Example],
    enc_sft: list[Encoded],
    pad_id: int,
    after_step: int,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """The memory-only steps after the blended loop (`knowledge_consolidation`): each step one batch of
    the cycle's knowledge rows (all of them when they fit in `batch_size`, else the next window of a
    seeded order), each row's loss scaled by its weight as in the blended loop, at the consolidation
    learning rate, with its own optimizer. Returns one log row per step, numbered after the blended steps."""
    kc = config.knowledge_consolidation
    idx = [i for i, e in enumerate(sft) if e.source in kc.sources]
    if not kc.steps or not idx:
        return []
    order = [idx[i] for i in np.random.default_rng(config.seed).permutation(len(idx))]
    size = min(kc.batch_size, len(order))
    # Its own AdamW: the blended steps' second-moment estimates (beta2 0.999 remembers ~1000 steps) would
    # otherwise shrink these updates by the ratio of the blended gradients to these smaller ones.
    optimizer = torch.optim.AdamW(params, lr=kc.learning_rate, weight_decay=config.weight_decay)
    out: list[dict[str, Any]] = []
    for k in range(kc.steps):
        start = (k * size) % len(order)
        batch = (order + order)[start : start + size]
        logps, counts = _shared_forward(model, [enc_sft[i] for i in batch], pad_id)
        weights = torch.tensor([sft[i].weight for i in batch], dtype=logps.dtype, device=logps.device)
        total, parts = blended_loss(
            {"sft": ChannelBatch(-logps / counts.clamp(min=1), weights)}, {"sft": 1.0}
        )
        step = after_step + k + 1
        _check_finite(step, total, parts)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
        optimizer.step()
        out.append(
            {
                "step": step,
                "phase": "knowledge",
                "sft_loss": parts["sft"][0],
                "loss": float(total.detach()),
                "grad_norm": float(grad_norm),
                "lr": kc.learning_rate,
                "tokens": int(counts.sum()),
                "rows": [sft[i].example_id for i in batch],
            }
        )
        if progress:
            progress(step, after_step + kc.steps, out[-1])
    return out


def _final_metrics(rows: list[dict[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {"steps": float(len(rows))}
    for key in (
        "loss",
        "sft_loss",
        "preference_loss",
        "preference_margin",
        "preference_accuracy",
        "grad_norm",
    ):
        vals = [r[key] for r in rows if key in r]
        if vals:
            out[f"{key}_first"] = vals[0]
            out[f"{key}_last"] = vals[-1]
            tail = vals[-max(1, len(vals) // 4) :]
            out[f"{key}_tail_mean"] = float(np.mean(tail))
    return out
