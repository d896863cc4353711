"""When to retrain (seed 000 7.3): what is new since the last accepted cycle, and whether that crosses the
thresholds of `[retraining]` in config/hominem.toml. Plain Python: the Dagster sensor and the weekly
fallback schedule call `assess`, the CLI could too.

"Accepted" is the adapter that `current` names. "New" is measured against a *data mark*: the SFT pair ids
and preference pair ids present in the two channels' JSONL exports at a point in time. Counting reads those
exports only (written atomically by `sft_pairs` / `preference_pairs`), never the DuckDB store, whose lock a
running step may hold. When `current` moves, the mark of the data the cycle was requested for (if this
module recorded a request since the previous `current`) becomes the baseline; otherwise the exports as they
are when the move is first seen. Marks live under `data/automation/retraining/<model>/`, each written
atomically under its content hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from hominem_pipeline.adapters import CURRENT, AdapterRegistry, model_name_for_spec
from hominem_pipeline.atomic import write_json_atomic
from hominem_pipeline.extraction.config import preferences_export_path, sft_export_path
from hominem_pipeline.settings import RetrainingConfig, Settings
from hominem_pipeline.validation import scan_jsonl

#: Which rule fired: the memory channel alone, the reward channel alone, or both at their fraction.
RULES = ("memory", "reward", "both")


@dataclass(frozen=True)
class DataMark:
    """The training data present at one moment: ids of the SFT export's and preference export's rows."""

    sft_pair_ids: frozenset[str] = frozenset()
    preference_pair_ids: frozenset[str] = frozenset()

    @property
    def mark_id(self) -> str:
        h = hashlib.sha256()
        for name, ids in (("sft", self.sft_pair_ids), ("preference", self.preference_pair_ids)):
            h.update(name.encode())
            for i in sorted(ids):
                h.update(b"\0" + i.encode())
        return h.hexdigest()[:16]

    def to_json(self) -> dict:
        return {
            "sft_pair_ids": sorted(self.sft_pair_ids),
            "preference_pair_ids": sorted(self.preference_pair_ids),
        }


@dataclass
class ExportSnapshot:
    """The exports as read now: the mark, the conversation of each SFT row, and lines that did not parse."""

    mark: DataMark
    sft_conversation: dict[str, str]  # SFT pair id -> conversation id (the pair id itself when it has none)
    unreadable_lines: int = 0


@dataclass(frozen=True)
class NewData:
    """What arrived since the baseline mark."""

    conversations: int  # conversations with at least one new SFT pair (the memory channel's unit)
    sft_pairs: int
    preference_pairs: int

    @property
    def anything(self) -> bool:
        return bool(self.conversations or self.sft_pairs or self.preference_pairs)


@dataclass(frozen=True)
class Decision:
    fire: bool
    rule: str | None  # one of RULES when fire
    reason: str  # counts against thresholds, in words


@dataclass
class Assessment:
    """One look at the data: the accepted adapter, the baseline it is measured from, what is new."""

    model_name: str
    current: str | None
    baseline_mark: str
    baseline_note: str
    snapshot: ExportSnapshot
    new: NewData
    decision: Decision
    notes: list[str] = field(default_factory=list)

    @property
    def data_mark(self) -> str:
        return self.snapshot.mark.mark_id

    def summary(self) -> str:
        extra = f"; {'; '.join(self.notes)}" if self.notes else ""
        since = f"since {self.current}, {self.baseline_note}" if self.current else self.baseline_note
        return f"{self.decision.reason} ({since}){extra}"


def _ids(path: Path, *keys: str) -> tuple[list[dict[str, str | None]], int]:
    """The `keys` of every row of a JSONL export (missing file: none); and how many lines did not parse."""
    if not path.is_file():
        return [], 0
    rows, bad = [], 0
    for _, obj, _reason in scan_jsonl(path):
        if obj is None or not obj.get(keys[0]):
            bad += 1
            continue
        rows.append({k: obj.get(k) for k in keys})
    return rows, bad


def read_exports(settings: Settings) -> ExportSnapshot:
    sft_rows, bad_sft = _ids(sft_export_path(settings), "pair_id", "conversation_id")
    pref_rows, bad_pref = _ids(preferences_export_path(settings), "pair_id")
    conv = {str(r["pair_id"]): str(r["conversation_id"] or r["pair_id"]) for r in sft_rows}
    mark = DataMark(frozenset(conv), frozenset(str(r["pair_id"]) for r in pref_rows))
    return ExportSnapshot(mark, conv, bad_sft + bad_pref)


def count_new(snapshot: ExportSnapshot, baseline: DataMark) -> NewData:
    new_sft = snapshot.mark.sft_pair_ids - baseline.sft_pair_ids
    return NewData(
        conversations=len({snapshot.sft_conversation[i] for i in new_sft}),
        sft_pairs=len(new_sft),
        preference_pairs=len(snapshot.mark.preference_pair_ids - baseline.preference_pair_ids),
    )


def decide(new: NewData, config: RetrainingConfig) -> Decision:
    """Seed 000 7.3: memory >= its threshold, or reward >= its threshold, or both >= `both_fraction` of theirs."""
    conv_t, pref_t = config.new_conversations, config.new_preference_pairs
    half_conv, half_pref = config.both_fraction * conv_t, config.both_fraction * pref_t
    counts = f"{new.conversations}/{conv_t} new conversations, {new.preference_pairs}/{pref_t} new preference pairs"
    if new.conversations >= conv_t:
        return Decision(True, "memory", f"memory channel ready: {counts}")
    if new.preference_pairs >= pref_t:
        return Decision(True, "reward", f"reward channel ready: {counts}")
    if new.conversations >= half_conv and new.preference_pairs >= half_pref:
        return Decision(
            True, "both", f"both channels at {config.both_fraction:.0%} of their thresholds: {counts}"
        )
    return Decision(
        False,
        None,
        f"below every threshold: {counts}; both at {config.both_fraction:.0%} needs "
        f">= {half_conv:g} and >= {half_pref:g}",
    )


class MarkStore:
    """Marks and the baseline of one model's adapters, under `data/automation/retraining/<model>/`."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _mark_path(self, mark_id: str) -> Path:
        return self.root / "marks" / f"{mark_id}.json"

    def save(self, mark: DataMark) -> str:
        path = self._mark_path(mark.mark_id)
        if not path.is_file():  # content-addressed: an existing file already holds these ids
            write_json_atomic(path, mark.to_json())
        return mark.mark_id

    def load(self, mark_id: str) -> DataMark | None:
        try:
            raw = json.loads(self._mark_path(mark_id).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        mark = DataMark(frozenset(raw.get("sft_pair_ids", [])), frozenset(raw.get("preference_pair_ids", [])))
        return mark if mark.mark_id == mark_id else None  # a damaged file is no mark

    def _read(self, name: str) -> dict | None:
        try:
            return json.loads((self.root / name).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def baseline(self) -> dict | None:
        """{"version", "mark", "adopted_at", "how"} of the accepted adapter, or None."""
        return self._read("baseline.json")

    def set_baseline(self, version: str, mark_id: str, how: str) -> None:
        write_json_atomic(
            self.root / "baseline.json",
            {"version": version, "mark": mark_id, "adopted_at": datetime.now(UTC).isoformat(), "how": how},
        )

    def request(self) -> dict | None:
        """{"mark", "from_version", "requested_at"} of the last cycle requested, or None."""
        return self._read("requested.json")

    def record_request(self, mark: DataMark, from_version: str | None) -> None:
        self.save(mark)
        write_json_atomic(
            self.root / "requested.json",
            {
                "mark": mark.mark_id,
                "from_version": from_version,
                "requested_at": datetime.now(UTC).isoformat(),
            },
        )
        base = self.baseline()
        self.prune([mark.mark_id, *([str(base.get("mark"))] if base else [])])

    def prune(self, keep: Iterable[str]) -> None:
        """Remove marks no longer referenced (the baseline's and the pending request's stay)."""
        keep = set(keep)
        for p in (self.root / "marks").glob("*.json"):
            if p.stem not in keep:
                p.unlink(missing_ok=True)


def mark_store(settings: Settings, model_name: str) -> MarkStore:
    return MarkStore(settings.data_dir / "automation" / "retraining" / model_name)


def _baseline(store: MarkStore, current: str | None, snapshot: ExportSnapshot) -> tuple[DataMark, str]:
    """The mark new data is counted from, adopting one when `current` has moved since the last look."""
    if current is None:
        return DataMark(), "no adapter accepted yet, so all training data counts as new"
    base = store.baseline()
    if base and base.get("version") == current:
        mark = store.load(str(base.get("mark")))
        if mark is not None:
            return (
                mark,
                f"baseline {base['mark']} adopted {base.get('adopted_at', '?')} ({base.get('how', '?')})",
            )
    previous = base.get("version") if base else None
    req = store.request()
    mark, how = None, ""
    if req and req.get("from_version") == previous and (mark := store.load(str(req.get("mark")))) is not None:
        how = f"the data of the cycle requested {req.get('requested_at', '?')}"
    if mark is None:
        mark, how = snapshot.mark, "the exports when this adapter was first seen as current"
        store.save(mark)
    store.set_baseline(current, mark.mark_id, how)
    store.prune([mark.mark_id])
    return mark, f"baseline {mark.mark_id} adopted now ({how})"


def assess(settings: Settings, config: RetrainingConfig | None = None) -> Assessment:
    """Count what is new since the accepted cycle and decide. Writes only marks and the baseline file."""
    config = config or settings.pipeline.retraining
    model_name = model_name_for_spec(settings.inference.student.model)
    current = AdapterRegistry(settings.artifacts_dir, model_name).pointer(CURRENT).target
    store = mark_store(settings, model_name)
    snapshot = read_exports(settings)
    baseline, note = _baseline(store, current, snapshot)
    new = count_new(snapshot, baseline)
    notes = (
        [f"{snapshot.unreadable_lines} export lines unreadable (not counted)"]
        if snapshot.unreadable_lines
        else []
    )
    return Assessment(model_name, current, baseline.mark_id, note, snapshot, new, decide(new, config), notes)


def record_request(settings: Settings, assessment: Assessment) -> None:
    """Remember the data a cycle is being requested for: it becomes the baseline if that cycle is accepted."""
    store = mark_store(settings, assessment.model_name)
    store.record_request(assessment.snapshot.mark, assessment.current)
