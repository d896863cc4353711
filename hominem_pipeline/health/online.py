"""The fast loop: a small online update of the adapter from the feedback no update has learned from yet,
gated by partial RHI, and not trained at all while the user's own judgements contradict each other.

The update continues the adapter the `online` pointer names (or `current` on the first update) for a few
preference steps with a gradient probe every `probe_interval` steps (by default one, at the last), and is
published as a version of its own. Its partial RHI (DCS from the probes, GVS from the step gradient norms
against the lineage's stored GVI_max_reference) decides, by `health.gate.fast_loop_decision`: apply (move `online` to it), skip,
roll back the previous online update (move `online` back one step), freeze online learning until a
batch's partial RHI recovers. `current` never moves here: consolidation is the slow path's job. A skipped
candidate stays on disk (unreferenced) for inspection; the decision names it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hominem_pipeline import clock
from hominem_pipeline.adapters import CURRENT, AdapterRegistry, AdapterRegistryError
from hominem_pipeline.health.components import Component, partial_index
from hominem_pipeline.health.config import HealthConfig
from hominem_pipeline.health.gate import (
    Decision,
    fast_loop_decision,
    log_decision,
    read_online_state,
    save_online_state,
)
from hominem_pipeline.health.measure import build_report, training_components
from hominem_pipeline.health.report import HealthReport, now_iso, save_report
from hominem_pipeline.records import PreferencePair
from hominem_pipeline.store.connection import naive_utc

#: The METADATA `notes` key that marks a version as an online update (not a training cycle's adapter).
ONLINE_UPDATE_NOTE = "online_update"


@dataclass
class OnlineResult:
    decision: Decision
    report: HealthReport | None
    candidate: str | None  # the version trained (applied or not)
    base: str | None  # the version it continued from
    online: str | None  # what the `online` pointer names afterwards


def unlearned_feedback(
    pairs: list[PreferencePair],
    learned_until: datetime | str | None,
    max_age_hours: float,
    now: datetime | None = None,
) -> list[PreferencePair]:
    """Preference pairs from the user's own feedback that no online update has learned from yet: dated
    after `learned_until` (the newest pair an earlier update took) and at most `max_age_hours` old.

    A window of "the last N hours" would never hold anything: feedback reaches the preference export only
    after the daily ingest and labelling of its day, hours after it was given."""
    now = naive_utc(now or clock.now())  # the simulated clock's now under `hominem simulate`
    since = now - timedelta(hours=max_age_hours)
    if learned_until is not None:
        mark = naive_utc(
            datetime.fromisoformat(learned_until) if isinstance(learned_until, str) else learned_until
        )
        since = max(since, mark + timedelta(microseconds=1))
    return [
        p
        for p in pairs
        if p.source == "feedback" and p.created_at is not None and naive_utc(p.created_at) >= since
    ]


def _newest(pairs: list[PreferencePair]) -> str:
    return max(naive_utc(p.created_at) for p in pairs if p.created_at is not None).isoformat()


def update_config(training_config: Any, health: HealthConfig, n_pairs: int) -> Any:
    """The cycle's config shrunk to an online step: preference only, a few steps, a probe over the whole
    batch every `probe_interval` steps (by default one, at the last step), no diversity clustering (a
    handful of pairs), learning rates scaled down."""
    fast = health.fast_loop
    interval = min(fast.probe_interval, fast.max_steps)
    return training_config.model_copy(
        update={
            "sft_weight": 0.0,
            "preference_weight": 1.0,
            "max_steps": fast.max_steps,
            "preference_learning_rate": training_config.preference_learning_rate * fast.learning_rate_factor,
            "sft_learning_rate": training_config.sft_learning_rate * fast.learning_rate_factor,
            "probe": training_config.probe.model_copy(
                update={"interval": interval, "batch_size": max(1, min(256, n_pairs))}
            ),
            "diversity": training_config.diversity.model_copy(update={"enabled": False}),
            "recency": training_config.recency.model_copy(update={"enabled": False}),
        }
    )


def _apply(
    registry: AdapterRegistry, decision: Decision, pointer: str, base: str | None, candidate: str
) -> list[str]:
    """Carry out the decision's pointer moves; returns notes on what could not be done."""
    notes = []
    if "rollback" in decision.actions:
        try:
            registry.rollback(pointer)
        except AdapterRegistryError:
            if registry.pointer(pointer).path.is_file():
                # The first online update, trained before any `current` existed: undoing it leaves no
                # online adapter at all.
                registry.pointer(pointer).path.unlink()
                notes.append(f"`{pointer}` removed: the rolled-back update was the first one")
            else:
                notes.append("no previous online update to roll back")
    if "apply" in decision.actions:
        if registry.pointer(pointer).target is None and base is not None:
            registry.set_pointer(pointer, base)  # so that rolling the first update back returns to `current`
        registry.set_pointer(pointer, candidate)
    return notes


def online_update(
    settings: Any,
    pairs: list[PreferencePair],
    *,
    health: HealthConfig,
    training_config: Any,
    base_model_path: str,
    reward_model: Any | None = None,
    user: Component | None = None,
) -> OnlineResult:
    """Train one online update on `pairs`, measure its partial RHI, gate, log the decision. `user`: LRPS
    from the user's own judgements (`health.measure.user_signal`); below `min_user_lrps` nothing is
    trained. None (or not measurable): the partial RHI decides alone."""
    from hominem_pipeline.training.data import prepare_examples
    from hominem_pipeline.training.run import lora_root
    from hominem_pipeline.training.trainer import NoTrainingData, train_dual

    root = lora_root(settings, training_config)
    registry = AdapterRegistry(settings.artifacts_dir, root.name)
    pointer = health.fast_loop.pointer
    if pointer == CURRENT:
        raise ValueError("fast_loop.pointer must not be `current`: online updates never consolidate")
    state = read_online_state(settings.artifacts_dir, root.name)
    base = registry.pointer(pointer).target or registry.pointer(CURRENT).target

    lrps = user.value if user is not None else None
    user_inputs = {
        "user_lrps": lrps,
        **({"user_lrps_note": user.note} if user is not None and user.note else {}),
    }

    def skipped(reason: str) -> OnlineResult:
        decision = Decision("fast", ["skip"], reason, {"pairs": len(pairs), "base": base, **user_inputs})
        log_decision(settings.artifacts_dir, root.name, decision)
        return OnlineResult(decision, None, None, base, registry.pointer(pointer).target)

    if not pairs:  # the scheduled update on a quiet day: no model is loaded, nothing is trained
        return skipped(
            f"no feedback pairs newer than the last online update's (and at most "
            f"{health.fast_loop.max_age_hours:g} h old)"
        )
    # A batch is learned from once, whatever its gate says: a refused batch is not retried next time.
    state["learned_until"] = _newest(pairs)
    if lrps is not None and lrps < health.fast_loop.min_user_lrps:
        # Partial RHI reads the gradients, not the user: a user who rewards and punishes the same trait at
        # random gives steady gradients all the same. Nothing is trained on such a batch.
        save_online_state(settings.artifacts_dir, root.name, state)
        return skipped(
            f"the user's judgements contradict each other: LRPS {lrps:.3f} < {health.fast_loop.min_user_lrps} "
            f"(a head fitted on the user's other conversations predicts its emoji and choices no "
            f"better than chance); {len(pairs)} feedback pairs not learned from"
        )
    cfg = update_config(training_config, health, len(pairs))
    data = prepare_examples(cfg, pairs, [], False, reward_model)
    try:
        result = train_dual(
            cfg,
            data,
            base_model_path=base_model_path,
            lora_root=root,
            continue_from=base,
            health_probes=health.probes,
            notes={ONLINE_UPDATE_NOTE: f"{len(pairs)} feedback pairs"},
        )
    except NoTrainingData as exc:
        save_online_state(settings.artifacts_dir, root.name, state)
        return skipped(f"nothing to learn from: {exc}")
    parts = training_components(result.metadata, health)
    partial = partial_index(parts, health.weights)
    dcs, gvs = parts["dcs"], parts["gvs"]
    decision = fast_loop_decision(
        partial,
        bool(state.get("frozen")),
        health.fast_loop,
        {
            "candidate": result.version,
            "base": base,
            "pairs": len(pairs),
            "examples": len(data.examples),
            "dcs": dcs.value,
            "gvs": gvs.value,
            "most_opposed": dcs.inputs.get("most_opposed"),
            "most_opposed_gda": dcs.inputs.get("most_opposed_gda"),
            "gvi": gvs.inputs.get("gvi"),
            "gvi_max_reference": gvs.inputs.get("gvi_max_reference"),
            **user_inputs,
        },
    )
    decision.inputs["notes"] = _apply(registry, decision, pointer, base, result.version)
    if "freeze" in decision.actions or "unfreeze" in decision.actions:
        state.update(frozen="freeze" in decision.actions, since=now_iso(), partial=partial)
    save_online_state(settings.artifacts_dir, root.name, state)
    log_decision(settings.artifacts_dir, root.name, decision)
    report = build_report(
        root.name,
        result.version,
        "online",
        parts,
        health,
        settings.artifacts_dir,
        notes=[f"fast loop: {decision.action} ({decision.reason})"],
    )
    save_report(report, settings.artifacts_dir)
    return OnlineResult(decision, report, result.version, base, registry.pointer(pointer).target)
