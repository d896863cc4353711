"""The Reward Health Index from the project's files: what the Dagster assets (`rhi_report`, the nightly
replay) and the CLI call. Measures, saves the report and its history line, redraws the plot, and runs the
slow loop and the consolidation-dip check. Plain Python; no Dagster."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hominem_pipeline.health.config import HealthConfig, load_health_config
from hominem_pipeline.health.gate import (
    Decision,
    dip_decision,
    log_decision,
    read_adjustment,
    save_adjustment,
    slow_loop_decision,
)
from hominem_pipeline.health.measure import measure_version
from hominem_pipeline.health.plot import plot_history
from hominem_pipeline.health.report import (
    HealthReport,
    find_report,
    health_root,
    read_history,
    report_path,
    save_report,
)

PLOT_NAME = "rhi_over_time.png"


@dataclass
class Measured:
    report: HealthReport
    path: Path
    plot: Path
    decisions: list[Decision] = field(default_factory=list)
    reused: bool = False  # the saved measurement of the same inputs; nothing was measured or appended


def _reward_model(settings: Any) -> Any | None:
    from hominem_pipeline.reward_model import load_current

    return load_current(settings.artifacts_dir)


def plot_paths(settings: Any, model_name: str) -> tuple[Path, Path]:
    return health_root(
        settings.artifacts_dir, model_name
    ) / PLOT_NAME, settings.artifacts_dir / "plots" / PLOT_NAME


def redraw(settings: Any, model_name: str) -> Path:
    """The plot from the whole history, beside it and in artifacts/plots/."""
    rows = read_history(settings.artifacts_dir, model_name)
    beside, docs = plot_paths(settings, model_name)
    plot_history(rows, beside, f"Reward Health Index over time ({model_name})")
    docs.parent.mkdir(parents=True, exist_ok=True)
    from hominem_pipeline.atomic import write_bytes_atomic

    write_bytes_atomic(docs, beside.read_bytes())
    return beside


def measure_and_record(
    settings: Any,
    model_name: str,
    version: str,
    kind: str = "cycle",
    *,
    db: Any | None = None,
    cfg: HealthConfig | None = None,
) -> Measured:
    """Measure `version`, save its report and history line, redraw the plot."""
    cfg = cfg or load_health_config(settings)
    report = measure_version(
        settings, model_name, version, cfg, kind, db=db, reward_model=_reward_model(settings)
    )  # type: ignore[arg-type]
    path = save_report(report, settings.artifacts_dir)
    return Measured(report, path, redraw(settings, model_name))


def cycle_measurement(
    settings: Any, model_name: str, version: str, *, db: Any | None = None, cfg: HealthConfig | None = None
) -> Measured:
    """The RHI of a cycle's adapter, measured once: the saved report when `version` was measured as a cycle
    with the reward model and probe set in use now (a re-run with nothing new measures nothing and adds no
    point to the history, whose trend would otherwise flatten on repeats), else measured and recorded now."""
    from hominem_pipeline.evaluation.config import load_eval_inputs

    saved = find_report(settings.artifacts_dir, model_name, version)
    if saved is not None and saved.kind == "cycle":
        reward_model = _reward_model(settings)
        _, regression_set = load_eval_inputs(settings.config_dir)
        plot = plot_paths(settings, model_name)[0]
        if (
            saved.reward_model == (str(reward_model.version) if reward_model else None)
            and saved.probe_set_hash == regression_set.content_hash
            and plot.is_file()
        ):
            return Measured(
                saved, report_path(settings.artifacts_dir, model_name, version), plot, reused=True
            )
    return measure_and_record(settings, model_name, version, "cycle", db=db, cfg=cfg)


def nightly_replay(
    settings: Any, model_name: str, *, db: Any | None = None, cfg: HealthConfig | None = None
) -> Measured | None:
    """The slow loop: the full RHI of `current` today; a dip at or below `revert_below` rolls `current`
    back (with the store's used marks following); RHI falling `falling_nights` nights in a row lowers the
    next cycles' learning rates. None when there is no `current` to measure."""
    from hominem_pipeline.adapters import CURRENT, AdapterRegistry
    from hominem_pipeline.training import promotion

    cfg = cfg or load_health_config(settings)
    registry = AdapterRegistry(settings.artifacts_dir, model_name)
    current = registry.pointer(CURRENT).target
    if current is None:
        return None
    measured = measure_and_record(settings, model_name, current, "nightly", db=db, cfg=cfg)
    dip = dip_decision(measured.report, cfg.consolidation)
    if "revert" in dip.actions:
        try:
            move = promotion.rollback(registry, db=db)
            dip.inputs["reverted_to"] = move.version
        except Exception as exc:  # no earlier version: the dip is logged, `current` cannot move
            dip.actions = ["keep"]
            dip.reason += f"; nothing to revert to ({exc})"
    log_decision(settings.artifacts_dir, model_name, dip)
    nightly = [r for r in read_history(settings.artifacts_dir, model_name) if r.get("kind") == "nightly"]
    slow, state = slow_loop_decision(
        nightly, read_adjustment(settings.artifacts_dir, model_name), cfg.slow_loop
    )
    if "lower_learning_rate" in slow.actions:
        save_adjustment(settings.artifacts_dir, model_name, state)
    log_decision(settings.artifacts_dir, model_name, slow)
    measured.decisions = [dip, slow]
    return measured


def pending_feedback(settings: Any, now: Any = None) -> list[Any]:
    """The preference export's feedback pairs no online update has learned from yet, at most
    `[fast_loop] max_age_hours` old at `now` (default: the clock's now)."""
    from hominem_pipeline.health.gate import read_online_state
    from hominem_pipeline.health.online import unlearned_feedback
    from hominem_pipeline.training.data import load_preference_pairs
    from hominem_pipeline.training.run import load_config, lora_root, preferences_path

    path = preferences_path(settings)
    model_name = lora_root(settings, load_config(settings)).name
    learned_until = read_online_state(settings.artifacts_dir, model_name).get("learned_until")
    return unlearned_feedback(
        load_preference_pairs(path) if path.is_file() else [],
        learned_until,
        load_health_config(settings).fast_loop.max_age_hours,
        now,
    )


def read_user_signal(settings: Any, db: Any, now: Any = None) -> Any:
    """LRPS from the user's own judgements in the store (`health.measure.user_signal`), for the fast loop.
    None without reading anything when there is no feedback to learn from (`pending_feedback`): the
    scheduled update of a quiet day loads no model and scores no reply."""
    from hominem_pipeline.health.measure import user_signal

    if not pending_feedback(settings, now):
        return None
    return user_signal(db, _reward_model(settings), load_health_config(settings))


def run_online_update(settings: Any, now: Any = None, user: Any = None) -> Any:
    """The fast loop from the project's files: `pending_feedback`, trained on and gated. `user`:
    `read_user_signal`'s reading (the store is read by the caller, which holds it)."""
    from hominem_pipeline.health.online import online_update
    from hominem_pipeline.models import resolve_model
    from hominem_pipeline.training.run import load_config

    cfg = load_health_config(settings)
    training = load_config(settings)
    pairs = pending_feedback(settings, now)
    base = resolve_model(training.base_model or settings.inference.student.model, settings.models_cache_dir)
    return online_update(
        settings,
        pairs,
        health=cfg,
        training_config=training,
        base_model_path=base,
        reward_model=_reward_model(settings),
        user=user,
    )
