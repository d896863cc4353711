"""Moving `current`: what `hominem adapters promote|rollback` and the `adapter_promotion` asset both call.

A promotion checks the version (files against their published checksums, a passing evaluation report
under `artifacts/lora_eval/<model>/<version>.json`, and, for `current`, the Reward Health Index gate:
consolidation only with RHI above the threshold, `health.gate`; both unless forced), moves the pointer, and then
makes the store's `sft_pairs.is_used` follow the new `current` (`store.consumption.sync_used`): the
rows that the adapter and its ancestors trained on are used; a rollback hands the rolled-back
adapter's rows back. Named pointers other than `current` move without touching the store: they do not
decide what the next cycle continues from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hominem_pipeline.adapters import CURRENT, AdapterRegistry, AdapterRegistryError
from hominem_pipeline.health.config import Consolidation
from hominem_pipeline.store.consumption import sync_used


class PromotionRefused(AdapterRegistryError):
    """The version has no passing evaluation (and the promotion was not forced)."""


class EvaluationFailed(PromotionRefused):
    """The version's evaluation ran and found regressions beyond the tolerances: the gate refused it."""


class ConsolidationHeld(PromotionRefused):
    """The evaluation passed but the Reward Health Index is not above the consolidation threshold."""


@dataclass
class PointerMove:
    pointer: str
    version: str
    previous: str | None
    marked_used: int = 0  # SFT rows that became used (trained by the new current's lineage)
    unmarked: int = 0  # SFT rows handed back (trained only by adapters no longer in the lineage)
    evaluation: str = ""  # what the evaluation check found ("passed", or why it was forced)
    health: str = ""  # what the RHI gate decided for `current` ("" for other pointers)


def evaluation_verdict(registry: AdapterRegistry, version: str) -> tuple[bool, str, bool]:
    """(passed, note, regressed) from the version's evaluation report, as `lora_eval` wrote it;
    `regressed`: a sound report for this version that failed its gate (not a missing or bad report)."""
    from hominem_pipeline.evaluation.report import read_report, report_path

    path = report_path(registry.artifacts_dir, registry.model_name, version)
    if not path.is_file():
        return False, f"no evaluation report {path} (run lora_eval, or promote with --force)", False
    try:
        report = read_report(path)
    except Exception as exc:  # an unreadable report is no evidence of a pass
        return False, f"{path}: unreadable evaluation report ({exc})", False
    if report.version != version:
        return False, f"{path}: the report is for version {report.version}, not {version}", False
    if not report.passed:
        return False, f"{path}: the evaluation failed: {'; '.join(report.gate_failures)}", True
    return True, "passed", False


def _sync(registry: AdapterRegistry, db: Any | None, pointer: str) -> tuple[int, int]:
    if db is None or pointer != CURRENT:
        return 0, 0
    return sync_used(db, registry.model_name, registry.lineage(registry.pointer(CURRENT).target))


def consolidation_gate(registry: AdapterRegistry, version: str, cfg: Consolidation) -> Any:
    """The RHI gate's decision for making `version` the new `current` (logged with its inputs, once: the
    same decision on the same evidence again, as a re-run with nothing new makes it, is not logged twice)."""
    from hominem_pipeline.health.gate import consolidation_decision, log_changed_decision
    from hominem_pipeline.health.report import find_report

    try:
        report = find_report(registry.artifacts_dir, registry.model_name, version)
    except Exception as exc:  # an unreadable report is no evidence of health
        report = None
        note = f"unreadable RHI report ({exc})"
    else:
        note = ""
    decision = consolidation_decision(report, version, cfg)
    if note:
        decision.reason = f"{note}; {decision.reason}"
    log_changed_decision(registry.artifacts_dir, registry.model_name, decision)
    return decision, report


def promote(
    registry: AdapterRegistry,
    ref: str,
    *,
    db: Any | None = None,
    force: bool = False,
    pointer: str = CURRENT,
    health: Consolidation | None = None,
) -> PointerMove:
    """Point `pointer` at `ref` after checking it; with a store, mark what the new `current` trained on.
    `current` moves only when the RHI gate consolidates (`health`: the thresholds, seed defaults if None)."""
    version = registry.resolve(ref).name  # verifies the files
    passed, note, regressed = evaluation_verdict(registry, version)
    if not passed and not force:
        raise (EvaluationFailed if regressed else PromotionRefused)(f"refusing to promote {version}: {note}")
    health_note = ""
    if pointer == CURRENT:
        decision, report = consolidation_gate(registry, version, health or Consolidation())
        health_note = decision.reason
        if "consolidate" not in decision.actions:
            if not force:
                raise ConsolidationHeld(
                    f"refusing to consolidate {version} into `current`: {decision.reason}"
                )
            health_note = f"forced: {decision.reason}"
        elif report is not None:
            _record_accepted(registry, report)
    previous = registry.pointer(pointer).target
    registry.promote(version, pointer)
    marked, unmarked = _sync(registry, db, pointer)
    return PointerMove(
        pointer, version, previous, marked, unmarked, note if passed else f"forced: {note}", health_note
    )


def _record_accepted(registry: AdapterRegistry, report: Any) -> None:
    """The consolidated state MSS measures drift against (the reward vectors' RDM on the probe set)."""
    from hominem_pipeline.atomic import write_json_atomic
    from hominem_pipeline.health.measure import ACCEPTED_FILE
    from hominem_pipeline.health.report import health_root

    write_json_atomic(
        health_root(registry.artifacts_dir, registry.model_name) / ACCEPTED_FILE,
        {
            "version": report.version,
            "rhi": report.rhi,
            "reward_rdm": report.reward_rdm,
            "probe_set_hash": report.probe_set_hash,
            "reward_model": report.reward_model,
            "measured_at": report.measured_at,
        },
    )


def rollback(registry: AdapterRegistry, *, db: Any | None = None, pointer: str = CURRENT) -> PointerMove:
    """Move `pointer` back one step; with a store, hand back the rows only the rolled-back adapter had."""
    previous = registry.pointer(pointer).target
    version = registry.rollback(pointer)
    marked, unmarked = _sync(registry, db, pointer)
    return PointerMove(pointer, version, previous, marked, unmarked)
