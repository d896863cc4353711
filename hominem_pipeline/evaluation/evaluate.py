"""Evaluate one adapter version: load base, candidate, its parent and (when different) `current` into one
model, measure each arm (measure.py), gate the candidate (gate.py) and write the report (report.py).

The knowledge probes are pinned to the adapter: its METADATA names the SFT rows it trained on
(`trained_sft_pair_ids`), the evaluation takes those rows' stored held-out probes (new phrasings, see
extraction/knowledge.py) from the SFT export, and the probes of the rows its ancestors trained on for
retention. docs/EVALUATION.md defines each metric."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hominem_pipeline.adapters import CURRENT, AdapterRegistry, AdapterRegistryError, AdapterVersion, now_utc
from hominem_pipeline.evaluation.config import LoraEvalConfig, RegressionSet
from hominem_pipeline.evaluation.gate import channel_interference, describe_regressions, find_regressions
from hominem_pipeline.evaluation.measure import ArmMetrics, Probe, collect_probes, measure
from hominem_pipeline.evaluation.report import EvalReport, ProbeCounts, read_report, report_path, write_report
from hominem_pipeline.reward_model.registry import current_with_note
from hominem_pipeline.validation import read_jsonl

# The key under which the trainer records, in an adapter's METADATA.json, the SFT rows it trained on.
TRAINED_IDS_KEY = "trained_sft_pair_ids"


def trained_ids(adapter: AdapterVersion) -> list[str] | None:
    """The SFT pair ids the adapter says it trained on, or None when its metadata does not say."""
    ids = (adapter.metadata.model_extra or {}).get(TRAINED_IDS_KEY)
    return [str(i) for i in ids] if isinstance(ids, list) else None


def ancestor_ids(registry: AdapterRegistry, adapter: AdapterVersion) -> list[str]:
    """SFT pair ids trained on by the adapter's parent, its parent's parent, ... (a missing link ends it)."""
    out: list[str] = []
    seen = {adapter.version}
    parent = adapter.metadata.parent_version
    while parent and parent not in seen:
        seen.add(parent)
        try:
            ancestor = registry.get(parent)
        except AdapterRegistryError:
            break
        out += trained_ids(ancestor) or []
        parent = ancestor.metadata.parent_version
    return out


def rows_by_id(rows: Sequence[dict[str, Any]], ids: Sequence[str], limit: int = 0) -> list[dict[str, Any]]:
    """The rows whose pair_id is in `ids`, in the ids' order, at most `limit` (0 = all)."""
    index = {str(r.get("pair_id")): r for r in rows}
    found = [index[i] for i in dict.fromkeys(ids) if i in index]
    return found[:limit] if limit else found


def evaluate_version(
    registry: AdapterRegistry,
    version: str,
    cfg: LoraEvalConfig,
    regression_set: RegressionSet,
    *,
    reward_model: Any | None = None,
    reward_model_note: str = "no reward model given",
    sft_rows: Sequence[dict[str, Any]] = (),
    earlier_rows: Sequence[dict[str, Any]] = (),
    trained_rows: int | None = None,
    base_model_path: str | None = None,
) -> EvalReport:
    """Run the evaluation on base, candidate, its parent and `current` (each when present and different),
    in one loaded model: adapters are switched, the base is the adapter disabled. `sft_rows` are the rows
    the candidate trained on, `earlier_rows` those its ancestors trained on; `trained_rows` is how many
    rows the adapter named (None: it did not name them, so the probes are not pinned)."""
    from peft import PeftModel

    from hominem_pipeline.models import MODEL_LOADING, load_causal_lm

    candidate = registry.get(version)
    parent = candidate.metadata.parent_version
    current = registry.pointer(CURRENT).target
    extra: dict[str, str] = {}  # arm name -> version
    if parent and parent != candidate.version:
        extra["parent"] = parent
    if cfg.compare_against_current and current and current not in (candidate.version, parent):
        extra["current"] = current
    with MODEL_LOADING:
        model, tok = load_causal_lm(base_model_path or registry.base_model_path(candidate))
        model = PeftModel.from_pretrained(model, str(candidate.path), adapter_name="candidate")
    for arm, ref in extra.items():
        try:
            with MODEL_LOADING:
                model.load_adapter(str(registry.resolve(ref)), adapter_name=arm)
        except AdapterRegistryError as exc:
            raise AdapterRegistryError(f"the {arm} adapter {ref} cannot be compared: {exc}") from exc
    model.eval()
    probes = collect_probes(sft_rows, earlier_rows)

    arms: dict[str, ArmMetrics] = {}
    with model.disable_adapter():
        arms["base"] = measure(model, tok, regression_set, probes, cfg, reward_model)
    for arm in ("candidate", *extra):
        model.set_adapter(arm)
        arms[arm] = measure(model, tok, regression_set, probes, cfg, reward_model)

    tol = cfg.tolerances
    regressions = find_regressions(arms["candidate"], arms["base"], "base", tol)
    for arm, ref in extra.items():
        regressions += find_regressions(arms["candidate"], arms[arm], f"{arm} ({ref})", tol)
    gate_failures = describe_regressions(regressions)
    if reward_model is None and cfg.require_reward_model:
        gate_failures.append(
            f"behavioural alignment not measured: {reward_model_note} (require_reward_model is on)"
        )
    notes = []
    if trained_rows is None:
        notes.append(
            "the adapter does not name the SFT rows it trained on: taught-fact probes are not pinned"
        )
    return EvalReport(
        model_name=registry.model_name,
        version=candidate.version,
        base_model=candidate.metadata.base_model,
        parent_version=parent,
        current_version=current,
        evaluated_at=now_utc().isoformat(),
        regression_set_hash=regression_set.content_hash,
        tolerances=tol,
        reward_model=getattr(reward_model, "version", None) if reward_model is not None else None,
        reward_model_note=reward_model_note,
        probes=_counts(probes, sft_rows, trained_rows),
        arms=arms,
        regressions=regressions,
        gate_failures=gate_failures,
        passed=not gate_failures,
        interference=channel_interference(
            arms["base"], arms["candidate"], candidate.metadata.channel_contributions, tol
        ),
        notes=notes,
    )


def _counts(probes: Sequence[Probe], sft_rows: Sequence[Any], trained_rows: int | None) -> ProbeCounts:
    return ProbeCounts(
        pinned=trained_rows is not None,
        trained_rows=len(sft_rows) if trained_rows is None else trained_rows,
        rows_found=len(sft_rows),
        held_out=sum(p.kind == "held_out" for p in probes),
        taught=sum(p.kind == "taught" for p in probes),
        earlier=sum(p.kind == "earlier" for p in probes),
    )


def evaluation_fingerprint(
    registry: AdapterRegistry,
    adapter: AdapterVersion,
    cfg: LoraEvalConfig,
    regression_set: RegressionSet,
    reward_model: Any | None,
    rows: Sequence[dict[str, Any]],
) -> str:
    """Everything an evaluation of `adapter` reads, hashed: the eval config and regression set, the arms
    it would compare (candidate, parent, `current` when different), the probe rows and the reward model."""
    current = registry.pointer(CURRENT).target
    parent = adapter.metadata.parent_version
    arms = {
        "candidate": adapter.version,
        "parent": parent,
        "current": current
        if cfg.compare_against_current and current not in (adapter.version, parent)
        else None,
    }
    payload = {
        "config": cfg.model_dump(mode="json"),
        "regression_set": regression_set.content_hash,
        "arms": arms,
        "reward_model": getattr(reward_model, "version", None) if reward_model is not None else None,
        # The rows' probes and text, not their consumption state (promotion marks them used).
        "rows": [
            {k: v for k, v in r.items() if k not in ("is_used", "used_timestamp", "cycle")} for r in rows
        ],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def reusable_report(
    artifacts_dir: Path, model_name: str, version: str, fingerprint: str
) -> EvalReport | None:
    """The stored report of `version` when it was made from exactly these inputs, else None."""
    path = report_path(artifacts_dir, model_name, version)
    if not path.is_file():
        return None
    try:
        report = read_report(path)
    except Exception:  # an unreadable report is simply not reused: the evaluation runs and replaces it
        return None
    return report if report.inputs_fingerprint == fingerprint and report.version == version else None


def evaluate_published(
    settings: Any, model_name: str, version: str, log: Any = None, reuse: bool = True
) -> tuple[EvalReport, Path]:
    """Evaluate one published adapter with the project's eval config, the probes of the SFT rows it (and
    its ancestors) trained on and the current reward model, and write its report. What the `lora_eval`
    asset and scripts call. With `reuse`, a report made from the same inputs (`evaluation_fingerprint`)
    is returned as it is, without loading any model."""
    from hominem_pipeline.evaluation.config import load_eval_inputs

    cfg, regression_set = load_eval_inputs(settings.config_dir)
    reward_model, note = current_with_note(settings.artifacts_dir)
    if reward_model is None and log is not None:
        log(f"behavioural alignment not scored: {note}")
    registry = AdapterRegistry(settings.artifacts_dir, model_name)
    adapter = registry.get(version)
    ids = trained_ids(adapter)
    sft_path = Path(cfg.sft_probes.path)
    sft_path = sft_path if sft_path.is_absolute() else settings.home / sft_path
    rows = read_jsonl(sft_path) if cfg.sft_probes.max_rows and sft_path.is_file() else []
    mine = rows_by_id(rows, ids or [], cfg.sft_probes.max_rows)
    earlier = rows_by_id(
        rows, [i for i in ancestor_ids(registry, adapter) if i not in set(ids or [])], cfg.sft_probes.max_rows
    )
    fingerprint = evaluation_fingerprint(
        registry, adapter, cfg, regression_set, reward_model, [*mine, *earlier]
    )
    if reuse:
        stored = reusable_report(settings.artifacts_dir, model_name, version, fingerprint)
        if stored is not None:
            if log is not None:
                log(f"{model_name}/{version}: unchanged inputs, reusing its evaluation report")
            return stored, report_path(settings.artifacts_dir, model_name, version)
    if log is not None:
        log(
            f"evaluating {model_name}/{version}: {len(mine)} of {len(ids or [])} trained SFT rows found in "
            f"{sft_path}, {len(earlier)} rows of earlier cycles"
        )
    report = evaluate_version(
        registry,
        version,
        cfg,
        regression_set,
        reward_model=reward_model,
        reward_model_note=note,
        sft_rows=mine,
        earlier_rows=earlier,
        trained_rows=None if ids is None else len(ids),
    )
    report = report.model_copy(update={"inputs_fingerprint": fingerprint})
    return report, write_report(report, settings.artifacts_dir)
