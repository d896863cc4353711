"""Training examples for both channels: loading, reward-model scoring of every unscored example (preference
pairs and SFT rows alike), recency weights, preference replay and the safety gate. Produces `Example`s whose `weight` is the per-example gain on its loss.

An example whose final weight is 0 (intensity 0, blocked by the safety gate, refused) is dropped here,
before sampling and batching, so it changes nothing downstream: not the clusters, not the batch
composition, not the random stream. That is what makes "weight 0 = as if absent" exact.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from hominem_pipeline.extraction.preferences import ResponseScores, pair_scores
from hominem_pipeline.records import PreferencePair, SFTPair
from hominem_pipeline.training.config import RecencySettings, SafetyGateSettings, TrainingConfig
from hominem_pipeline.validation import read_jsonl_models

log = logging.getLogger(__name__)

Channel = Literal["sft", "preference"]


@dataclass
class Example:
    """One training example of either channel. For SFT, `chosen` is the response and `rejected` is None."""

    channel: Channel
    example_id: str
    prompt: str
    chosen: str
    rejected: str | None
    reward_intensity: float
    safety_score: float
    recency_weight: float
    weight: float  # reward_intensity x recency x safety-gate factor (x SFT row weight)
    gate: str  # "pass" | "caution"
    created_at: datetime | None = None
    dimension_deltas: dict[str, float] = field(default_factory=dict)
    from_database: bool = False
    source: str | None = None  # an SFT row's source (conversation, knowledge_update, ...)


@dataclass
class PreparedData:
    examples: list[Example]
    counts: dict[str, int]  # what the gate and the scoring did, for the metadata
    data_hashes: dict[str, str]
    scored_by: str | None
    recency_stats: dict[str, dict[str, float]]


def _rows_hash(rows: list[dict[str, Any]]) -> str:
    h = hashlib.sha256()
    for r in rows:
        h.update(json.dumps(r, sort_keys=True, default=str).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def load_preference_pairs(path: Path) -> list[PreferencePair]:
    """Rows of `data/preferences/preferences.jsonl`; a bad row fails naming its line and field."""
    return read_jsonl_models(path, PreferencePair)


def load_sft_pairs(
    db: Any | None, jsonl_path: Path, source: str, limit: int | None, unused_only: bool = True
) -> tuple[list[SFTPair], bool]:
    """SFT pairs from the store (`TrainingDatabase.get_sft_pairs`) when one is given, else the JSONL
    export. Returns (pairs, from_database)."""
    if source in ("auto", "database") and db is not None:
        # The store is the source of truth: its JSONL export does not see the `is_used` updates made
        # by training, so falling back to it would re-train used rows.
        return list(db.get_sft_pairs(is_used=False if unused_only else None, limit=limit)), True
    if source == "database":
        raise RuntimeError("sft_source is 'database' but no store was opened")
    pairs = [p for p in read_jsonl_models(jsonl_path, SFTPair) if not (unused_only and p.is_used)]
    return (pairs[:limit] if limit else pairs), False


def recency_weights(created: list[datetime | None], decay: str, settings: RecencySettings) -> list[float]:
    """`exp(-age/tau)`, `max(fast, slow)` for `both`, floored at `min_weight`. Age counts from the newest
    dated example, so the same data always gives the same weights. Undated examples weigh 1."""
    if not settings.enabled:
        return [1.0] * len(created)
    # Store rows are naive UTC; JSONL rows may carry an offset: compare both as naive UTC.
    created = [c.astimezone(UTC).replace(tzinfo=None) if c is not None and c.tzinfo else c for c in created]
    dated = [c for c in created if c is not None]
    if not dated:
        return [1.0] * len(created)
    newest = max(dated)
    taus = {"fast": [settings.tau_fast_s], "slow": [settings.tau_slow_s]}.get(
        decay, [settings.tau_fast_s, settings.tau_slow_s]
    )
    out = []
    for c in created:
        if c is None:
            out.append(1.0)
            continue
        age = max(0.0, (newest - c).total_seconds())
        out.append(max(settings.min_weight, max(math.exp(-age / t) for t in taus)))
    return out


def gate_factor(safety: float, gate: SafetyGateSettings) -> tuple[float, str]:
    """(factor, verdict): 0 and 'blocked' below block, caution_factor and 'caution' below caution, else 1."""
    if safety < gate.block_threshold:
        return 0.0, "blocked"
    if safety < gate.caution_threshold:
        return gate.caution_factor, "caution"
    return 1.0, "pass"


def _response_scores(output: Any, where: str) -> ResponseScores:
    """A reward-model output as `ResponseScores`; a non-finite number (a corrupted model) stops here
    rather than becoming a training weight."""
    numbers = {
        "reward_intensity": output.reward_intensity,
        "safety_score": output.safety_score,
        **{f"reward_vector.{k}": v for k, v in output.reward_vector.items()},
    }
    bad = [k for k, v in numbers.items() if not math.isfinite(float(v))]
    if bad:
        raise ValueError(
            f"{where}: the reward model returned non-finite {', '.join(bad)}; refusing to train on it"
        )
    scalar = output.scalar_preference
    return ResponseScores(
        {k: float(v) for k, v in output.reward_vector.items()},
        min(1.0, max(0.0, float(output.reward_intensity))),
        min(1.0, max(0.0, float(output.safety_score))),
        None if scalar is None or not math.isfinite(float(scalar)) else float(scalar),
    )


def score_unscored_pairs(pairs: list[PreferencePair], reward_model: Any) -> tuple[list[PreferencePair], int]:
    """Fill intensity/safety/deltas of pairs that lack them with the reward model (by `pair_scores`, the
    rule teacher-labelled pairs follow too); records `scored_by`."""
    todo = [i for i, p in enumerate(pairs) if p.reward_intensity is None or p.safety_score is None]
    if not todo or reward_model is None:
        return pairs, 0
    texts = []
    for i in todo:
        texts += [(pairs[i].prompt, pairs[i].chosen), (pairs[i].prompt, pairs[i].rejected)]
    outputs = reward_model.score_batch(texts)
    out = list(pairs)
    for j, i in enumerate(todo):
        where = f"preference pair {pairs[i].pair_id}"
        update = pair_scores(
            _response_scores(outputs[2 * j], where), _response_scores(outputs[2 * j + 1], where)
        )
        update["dimension_deltas"] = pairs[i].dimension_deltas or update["dimension_deltas"]
        update["scored_by"] = str(reward_model.version)
        out[i] = pairs[i].model_copy(update=update)
    return out, len(todo)


def score_unscored_sft(pairs: list[SFTPair], reward_model: Any) -> tuple[list[SFTPair], int]:
    """Fill intensity/safety of SFT rows that lack them (knowledge updates, single-draft turns) with the
    reward model, so every example of both channels is scored and gated; `metadata.scored_by` says by what."""
    todo = [i for i, p in enumerate(pairs) if p.reward_intensity is None or p.safety_score is None]
    if not todo or reward_model is None:
        return pairs, 0
    outputs = reward_model.score_batch([(pairs[i].instruction, pairs[i].response) for i in todo])
    out = list(pairs)
    for i, output in zip(todo, outputs, strict=True):
        scores = _response_scores(output, f"SFT row {pairs[i].pair_id}")
        out[i] = pairs[i].model_copy(
            update={
                "reward_intensity": pairs[i].reward_intensity
                if pairs[i].reward_intensity is not None
                else scores.reward_intensity,
                "safety_score": pairs[i].safety_score
                if pairs[i].safety_score is not None
                else scores.safety_score,
                "metadata": {**pairs[i].metadata, "scored_by": str(reward_model.version)},
            }
        )
    return out, len(todo)


def _score_and_gate(
    channel: str,
    intensity: float | None,
    safety: float | None,
    gate: SafetyGateSettings,
    counts: Counter[str],
) -> tuple[float, float, float, str] | None:
    """(intensity, safety, gate factor, verdict) of one example, the same rule for both channels; None
    when it is left out: unscored under `unscored: skip`, or blocked (for a pair: its chosen is unsafe)."""
    if intensity is None or safety is None:
        if gate.unscored == "skip":
            counts[f"{channel}_skipped_unscored"] += 1
            return None
        counts[f"{channel}_neutral_unscored"] += 1
    intensity = intensity if intensity is not None else gate.neutral_intensity
    safety = safety if safety is not None else 1.0
    factor, verdict = gate_factor(safety, gate)
    if verdict == "blocked":
        counts["preference_refused_unsafe_chosen" if channel == "preference" else f"{channel}_blocked"] += 1
        return None
    return intensity, safety, factor, verdict


def prepare_examples(
    config: TrainingConfig,
    preference_pairs: list[PreferencePair],
    sft_pairs: list[SFTPair],
    sft_from_database: bool = False,
    reward_model: Any | None = None,
    replays: dict[str, int] | None = None,
) -> PreparedData:
    """Score, weight and gate both channels. Examples whose weight ends at 0 are left out (see module doc).
    `replays` counts, per preference pair, the adapters of the current lineage that already trained on it."""
    gate = config.safety_gate
    replay = config.preference_replay
    replays = replays or {}
    counts: Counter[str] = Counter()
    scored_by = None
    if config.preference_weight > 0:
        preference_pairs, n_scored = score_unscored_pairs(preference_pairs, reward_model)
        counts["preference_scored_by_reward_model"] = n_scored
    else:
        preference_pairs = []
    if config.sft_weight == 0:
        sft_pairs = []
    sft_pairs, n_sft_scored = score_unscored_sft(sft_pairs, reward_model)
    counts["sft_scored_by_reward_model"] = n_sft_scored
    if counts["preference_scored_by_reward_model"] or n_sft_scored:
        scored_by = str(reward_model.version)

    examples: list[Example] = []
    stats: dict[str, dict[str, float]] = {}
    pref_rec = recency_weights(
        [p.created_at for p in preference_pairs], config.recency.preference_decay, config.recency
    )
    for p, rec in zip(preference_pairs, pref_rec, strict=True):
        counts["preference_loaded"] += 1
        # The gate acts on what the pair teaches: the chosen response (older exports stored the lower of
        # the two as safety_score, which blocked "prefer the safe answer over the unsafe one").
        gated = _score_and_gate(
            "preference",
            p.reward_intensity,
            p.chosen_safety if p.chosen_safety is not None else p.safety_score,
            gate,
            counts,
        )
        if gated is None:
            continue
        intensity, safety, factor, verdict = gated
        times = replays.get(p.pair_id, 0)
        if replay.max_cycles and times >= replay.max_cycles:
            counts["preference_replay_capped"] += 1
            continue
        weight = intensity * rec * factor * replay.decay**times
        if weight <= 0.0:
            counts["preference_zero_weight"] += 1
            continue
        counts[f"preference_{verdict}"] += 1
        if times:
            counts["preference_replayed"] += 1
        examples.append(
            Example(
                "preference",
                p.pair_id,
                p.prompt,
                p.chosen,
                p.rejected,
                intensity,
                safety,
                rec,
                weight,
                verdict,
                p.created_at,
                dict(p.dimension_deltas),
            )
        )
    sft_rec = recency_weights([s.created_at for s in sft_pairs], config.recency.sft_decay, config.recency)
    for s, rec in zip(sft_pairs, sft_rec, strict=True):
        counts["sft_loaded"] += 1
        gated = _score_and_gate("sft", s.reward_intensity, s.safety_score, gate, counts)
        if gated is None:
            continue
        intensity, safety, factor, verdict = gated
        weight = intensity * rec * factor * s.weight * s.confidence
        if weight <= 0.0:
            counts["sft_zero_weight"] += 1
            continue
        counts[f"sft_{verdict}"] += 1
        examples.append(
            Example(
                "sft",
                s.pair_id,
                s.instruction,
                s.response,
                None,
                intensity,
                safety,
                rec,
                weight,
                verdict,
                s.created_at,
                from_database=sft_from_database,
                source=s.source,
            )
        )
    for channel, recs in (("preference", pref_rec), ("sft", sft_rec)):
        if recs:
            stats[channel] = {"min": min(recs), "mean": sum(recs) / len(recs), "max": max(recs)}
    hashes = {
        "preferences": _rows_hash([p.model_dump(mode="json") for p in preference_pairs]),
        "sft": _rows_hash(
            [s.model_dump(mode="json", exclude={"is_used", "used_timestamp", "cycle"}) for s in sft_pairs]
        ),
    }
    return PreparedData(examples, dict(counts), hashes, scored_by, stats)
