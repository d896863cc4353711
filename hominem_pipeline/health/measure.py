"""Gathering the Reward Health Index's inputs from the project and measuring one adapter version.

- DCS and GVS come from the adapter's own METADATA.json: the gradient probes and gradient norms the
  trainer logged (`training.probe`) and the `health_calibration` it stored (`health.calibration`).
- MSS, CDRS and LRPS ask the current reward model about fixed probes: the evaluation set's scenario
  answers (config/eval, versioned by its hash), the teacher's preference pairs (their prompt category is
  the domain) and the conversations in the store (per-turn rewards for MSS's curvature; for LRPS, the
  user's own emoji and choices against a user head cross-fitted on the reward model's outputs
  (`health.predictivity`; too few of them and LRPS is not measured), or, where the user gave none, each
  conversation's teacher emotion valence or reward labels as its outcome).
Without a reward model those three are not measured and the report says so.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hominem_pipeline.health import components as C
from hominem_pipeline.health.config import HealthConfig
from hominem_pipeline.health.predictivity import Judgements, reply_features, user_lrps
from hominem_pipeline.health.report import (
    ComponentValue,
    HealthReport,
    Kind,
    interpret,
    now_iso,
    read_history,
)

ACCEPTED_FILE = "accepted.json"  # the RDM (and RHI) of the last consolidated version: MSS drift's "before"


@dataclass
class Conversation:
    conversation_id: str
    turns: list[tuple[str, str, str]] = field(default_factory=list)  # (message_id, user prompt, response)


def training_components(meta: Mapping[str, Any], cfg: HealthConfig) -> dict[str, C.Component]:
    """DCS from the adapter's gradient probes, GVS from its gradient norms and stored GVI_max_reference."""
    gda, left_out = C.mean_gda(meta.get("gradient_probes") or [])
    calibration = meta.get("health_calibration") or {}
    gvs = C.gvs(meta.get("grad_norms") or [], calibration.get("gvi_max_reference"), cfg.probes.gvs_window)
    if calibration.get("reference_version") or calibration.get("gvi_max_reference") is not None:
        gvs.inputs["reference_version"] = calibration.get("reference_version") or "this adapter"
    return {"dcs": C.dcs(gda, left_out), "gvs": gvs}


def conversations_from_store(db: Any, limit: int) -> list[Conversation]:
    """Up to `limit` conversations (store order), each with its assistant turns and the user turn each answers."""
    out = []
    for rows in db.iter_conversation_messages():
        conv = Conversation(rows[0]["conversation_id"])
        last_user = None
        for r in rows:
            if r["role"] == "user":
                last_user = r["content"]
            elif r["role"] == "assistant" and last_user is not None:
                conv.turns.append((r["event_id"], last_user, r["content"]))
        if conv.turns:
            out.append(conv)
        if len(out) >= limit:
            break
    return out


def teacher_outcomes(
    db: Any, conversations: list[Conversation], manifold: Any
) -> dict[str, tuple[float, str]]:
    """conversation id -> (outcome, where from) for a user who gave no judgement: the teacher's
    emotion-label valence of its assistant turns, else the teacher's reward-label scalar. (The user's own
    emoji and choices are `user_judgements`, read per reply by `health.predictivity`.)"""
    owner = {mid: c.conversation_id for c in conversations for mid, _, _ in c.turns}
    out: dict[str, tuple[float, str]] = {}
    labels = db.get_conversation_labels(message_ids=sorted(owner)) if owner else []
    emotion: dict[str, list[float]] = defaultdict(list)
    reward: dict[str, list[float]] = defaultdict(list)
    for r in labels:
        cid = owner.get(r["message_id"])
        if r["kind"] == "emotion" and "valence" in r["vector"]:
            emotion[cid].append(float(r["vector"]["valence"]))
        elif r["kind"] == "reward":
            scalar = r.get("scalar_preference")
            reward[cid].append(
                float(scalar) if scalar is not None else manifold.scalar_preference_of(r["vector"])
            )
    for source, values in (("teacher emotion valence", emotion), ("teacher reward labels", reward)):
        for cid, v in values.items():
            out.setdefault(cid, (float(np.mean(v)), source))
    return out


def user_judgements(db: Any, conversations: list[Conversation]) -> Judgements:
    """The user's emoji valence per reply (mean over the emoji it has on) and its regenerate-and-pick
    choices, for the replies of `conversations`."""
    replies = {mid for c in conversations for mid, _, _ in c.turns}
    valence: dict[str, list[float]] = defaultdict(list)
    for f in db.get_feedback(kind="emoji"):
        if f["message_id"] in replies and "valence" in f["axes"]:
            valence[f["message_id"]].append(float(f["axes"]["valence"]))
    choices = [
        (f["chosen_message_id"], f["rejected_message_id"])
        for f in db.get_feedback(kind="preference")
        if f["chosen_message_id"] in replies and f["rejected_message_id"] in replies
    ]
    return Judgements({m: float(np.mean(v)) for m, v in valence.items()}, choices)


def scenario_pairs(regression_set: Any) -> list[tuple[str, str, str, str]]:
    """(domain, prompt, chosen, rejected): each scenario's balanced answer over each of its failures."""
    return [
        (s.scenario, s.prompt, s.balanced, f.response) for s in regression_set.scenarios for f in s.failures
    ]


def teacher_pairs(preferences_path: Path, limit: int) -> list[tuple[str, str, str, str]]:
    """Teacher-labelled preference pairs with a prompt category, by pair id (a fixed, reproducible subset)."""
    from hominem_pipeline.training.data import load_preference_pairs

    if not Path(preferences_path).is_file():
        return []
    pairs = sorted(
        (p for p in load_preference_pairs(preferences_path) if p.source == "teacher" and p.category),
        key=lambda p: p.pair_id,
    )
    return [(str(p.category), p.prompt, p.chosen, p.rejected) for p in pairs[:limit]]


def judged_lrps(
    reward_model: Any,
    conversations: list[Conversation],
    judgements: Judgements,
    cfg: HealthConfig,
    turn_scores: Any | None = None,
) -> C.Component:
    """LRPS from the user's own judgements of `conversations`' replies: the user head over the reward
    model's outputs (`health.predictivity`). `turn_scores`: the reward model's scores of those replies in
    turn order, when the caller has them already."""
    items = [(p, r) for c in conversations for _, p, r in c.turns]
    if turn_scores is None:
        turn_scores = reward_model.score_items(items)
    index = {mid: i for i, mid in enumerate(mid for c in conversations for mid, _, _ in c.turns)}
    groups = [c.conversation_id for c in conversations for _ in c.turns]
    x = reply_features(turn_scores.heads, turn_scores.scalar, [r for _, r in items])
    return user_lrps(
        x,
        groups,
        [(index[m], v) for m, v in judgements.valence.items() if m in index],
        [(index[c], index[r]) for c, r in judgements.choices if c in index and r in index],
        cfg.probes.lrps_folds,
        cfg.probes.lrps_min_judgements,
    )


def user_signal(db: Any, reward_model: Any | None, cfg: HealthConfig) -> C.Component | None:
    """Can the user's own judgements be predicted from the replies (LRPS by the user head)? None where
    there is no reward model or the user has judged nothing; a component with value None while the
    judgements are too few. The fast loop's brake on learning from a user who contradicts itself."""
    if reward_model is None:
        return None
    conversations = conversations_from_store(db, cfg.probes.conversations_limit)
    judgements = user_judgements(db, conversations) if conversations else None
    if not judgements:
        return None
    return judged_lrps(reward_model, conversations, judgements, cfg)


def reward_components(
    reward_model: Any,
    probe_texts: list[tuple[str, str]],
    accepted_rdm: list[float] | None,
    pairs: list[tuple[str, str, str, str]],
    conversations: list[Conversation],
    outcomes: Mapping[str, tuple[float, str]],
    cfg: HealthConfig,
    judgements: Judgements | None = None,
) -> tuple[dict[str, C.Component], list[float]]:
    """MSS, CDRS and LRPS from the reward model's answers; returns them and this RDM (for later drift).
    LRPS reads the user's own `judgements` of the replies (`health.predictivity`; not measured while they
    are too few); only where the user gave none, the conversations' `outcomes` (the teacher's labels)."""
    names = list(reward_model.manifold.names)
    vectors = [[o.reward_vector[d] for d in names] for o in reward_model.score_batch(probe_texts)]
    rdm = C.rdm(vectors)
    drift = (
        C.rdm_drift(accepted_rdm, rdm) if accepted_rdm is not None and len(accepted_rdm) == len(rdm) else None
    )

    items = [(p, r) for c in conversations for _, p, r in c.turns]
    turn_scores = reward_model.score_items(items) if items else None
    scalars = iter(turn_scores.scalar.tolist() if turn_scores is not None else [])
    per_conv = {c.conversation_id: [next(scalars) for _ in c.turns] for c in conversations}
    curvature, used = C.curvature_variance(list(per_conv.values()), cfg.probes.curvature_min_turns)
    mss = C.mss(
        drift,
        curvature,
        {
            "probe_texts": len(probe_texts),
            "curvature_conversations": used,
            "compared_with_accepted": accepted_rdm is not None,
        },
    )

    scored = []
    if pairs:
        prefix = cfg.probes.prompt_variant_prefix
        texts = [(p, x) for _, p, a, b in pairs for x in (a, b)] + [
            (prefix + p, x) for _, p, a, b in pairs for x in (a, b)
        ]
        s = reward_model.score_items(texts).scalar
        n = len(pairs)
        t = float(reward_model.params.temperature)
        for i, (domain, *_rest) in enumerate(pairs):
            margin = float(s[2 * i] - s[2 * i + 1])
            variant = float(s[2 * n + 2 * i] - s[2 * n + 2 * i + 1])
            scored.append(C.ScoredPair(domain, margin, variant, float(1.0 / (1.0 + np.exp(-t * margin)))))
    if judgements and turn_scores is not None:
        lrps = judged_lrps(reward_model, conversations, judgements, cfg, turn_scores)
    else:
        with_outcome = [cid for cid in per_conv if cid in outcomes]
        lrps = C.lrps(
            [float(np.mean(per_conv[c])) for c in with_outcome],
            [outcomes[c][0] for c in with_outcome],
            cfg.probes.lrps_min_conversations,
        )
        lrps.inputs["outcome_sources"] = dict(
            sorted(
                {
                    src: sum(1 for c in with_outcome if outcomes[c][1] == src) for _, src in outcomes.values()
                }.items()
            )
        )
    return {"mss": mss, "cdrs": C.cdrs(scored), "lrps": lrps}, rdm


def read_accepted(root: Path) -> dict[str, Any] | None:
    path = Path(root) / ACCEPTED_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def build_report(
    model_name: str,
    version: str,
    kind: Kind,
    parts: dict[str, C.Component],
    cfg: HealthConfig,
    artifacts_dir: Path,
    **extra: Any,
) -> HealthReport:
    """The report of one measurement: index, partial index, components, and the trend's reading."""
    rhi = C.weighted_index(parts, cfg.weights)
    values = {k: v.value for k, v in parts.items()}
    earlier = [r["rhi"] for r in read_history(artifacts_dir, model_name) if r.get("kind") == kind]
    report = HealthReport(
        model_name=model_name,
        version=version,
        kind=kind,
        measured_at=now_iso(),
        rhi=rhi,
        partial=C.partial_index(parts, cfg.weights),
        components={k: ComponentValue.of(v) for k, v in parts.items()},
        weights=cfg.weights,
        interpretation=interpret([*earlier, rhi], values),
        **extra,
    )
    return report


def measure_version(
    settings: Any,
    model_name: str,
    version: str,
    cfg: HealthConfig,
    kind: Kind = "cycle",
    *,
    db: Any | None = None,
    reward_model: Any | None = None,
) -> HealthReport:
    """Measure every component for a published adapter version (the report is not saved here)."""
    from hominem_pipeline.adapters import AdapterRegistry
    from hominem_pipeline.evaluation.config import load_eval_inputs
    from hominem_pipeline.health.report import health_root

    registry = AdapterRegistry(settings.artifacts_dir, model_name)
    path = registry.resolve(version)  # verifies the files
    meta = json.loads((path / "METADATA.json").read_text())
    parts = training_components(meta, cfg)
    notes: list[str] = []
    _, regression_set = load_eval_inputs(settings.config_dir)
    probe_texts = [(p, x) for _, p, a, b in scenario_pairs(regression_set) for x in (a, b)]
    probe_texts = list(dict.fromkeys(probe_texts))
    extra: dict[str, Any] = {"probe_set_hash": regression_set.content_hash}
    if reward_model is None:
        for name in ("mss", "cdrs", "lrps"):
            parts[name] = C.Component(
                name, None, {}, "no reward model published (`current` under artifacts/reward_model)"
            )
        notes.append("no reward model: MSS, CDRS and LRPS not measured")
    else:
        accepted = read_accepted(health_root(settings.artifacts_dir, model_name))
        accepted_rdm = None
        if accepted and accepted.get("probe_set_hash") == regression_set.content_hash:
            accepted_rdm = accepted.get("reward_rdm")
        elif accepted:
            notes.append("the evaluation set changed since the last consolidation: RDM drift not comparable")
        pairs = scenario_pairs(regression_set)
        pairs += teacher_pairs(
            settings.data_dir / "preferences" / "preferences.jsonl",
            max(0, cfg.probes.cdrs_max_pairs - len(pairs)),
        )
        conversations = conversations_from_store(db, cfg.probes.conversations_limit) if db is not None else []
        judgements = user_judgements(db, conversations) if conversations else None
        outcomes = (
            teacher_outcomes(db, conversations, reward_model.manifold)
            if conversations and not judgements
            else {}
        )
        reward_parts, rdm = reward_components(
            reward_model,
            probe_texts,
            accepted_rdm,
            pairs[: cfg.probes.cdrs_max_pairs],
            conversations,
            outcomes,
            cfg,
            judgements,
        )
        parts.update(reward_parts)
        extra.update(reward_model=str(reward_model.version), reward_rdm=[round(x, 6) for x in rdm])
    return build_report(model_name, version, kind, parts, cfg, settings.artifacts_dir, notes=notes, **extra)
