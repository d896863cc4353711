"""Importing human preference data (JSONL rows `{prompt, chosen, rejected}`) into the store.

Every line is validated on its own: a bad line is reported with its number and reason and the rest are
imported. Rows in the raw HH-RLHF layout (only `chosen` and `rejected`, each a whole
"Human: ... Assistant: ..." transcript) are split into the shared prompt and the two final replies.
A pair's id hashes (prompt, chosen, rejected), so importing the same file twice adds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from hominem_pipeline.records import content_hash
from hominem_pipeline.store import TrainingDatabase
from hominem_pipeline.validation import scan_jsonl

_ASSISTANT = "\n\nAssistant:"


class ImportedPreferenceRow(BaseModel):
    """One imported row. Extra fields (ids, sources, scores) that public sets carry are ignored."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    prompt: str
    chosen: str
    rejected: str

    @model_validator(mode="before")
    @classmethod
    def _hh_transcripts(cls, data: Any) -> Any:
        if isinstance(data, dict) and "prompt" not in data:
            split = split_hh_transcripts(data.get("chosen"), data.get("rejected"))
            if split is not None:
                return {**data, "prompt": split[0], "chosen": split[1], "rejected": split[2]}
        return data

    @field_validator("prompt", "chosen", "rejected")
    @classmethod
    def _not_empty(cls, v: str) -> str:
        if not v:
            raise ValueError("must not be empty")
        return v

    @model_validator(mode="after")
    def _different(self) -> ImportedPreferenceRow:
        if self.chosen == self.rejected:
            raise ValueError("chosen and rejected are the same text")
        return self


def split_hh_transcripts(chosen: Any, rejected: Any) -> tuple[str, str, str] | None:
    """(prompt, chosen reply, rejected reply) from two HH-RLHF transcripts sharing everything up to the
    last "Assistant:" turn; None when they are not such transcripts."""
    if not isinstance(chosen, str) or not isinstance(rejected, str):
        return None
    cut = chosen.rfind(_ASSISTANT)
    if cut < 0 or rejected.rfind(_ASSISTANT) != cut or chosen[:cut] != rejected[:cut]:
        return None
    head = cut + len(_ASSISTANT)
    return chosen[:cut].strip(), chosen[head:].strip(), rejected[head:].strip()


@dataclass
class ImportReport:
    file: str
    lines: int = 0  # non-blank lines read
    valid: int = 0
    added: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)

    @property
    def already_present(self) -> int:
        return self.valid - self.added


def _reason(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors():
        loc = ".".join(str(x) for x in e["loc"])
        parts.append(f"{loc}: {e['msg']}" if loc else e["msg"])
    return "; ".join(parts)


def parse_preference_file(path: Path | str) -> tuple[list[dict[str, Any]], ImportReport]:
    """Valid rows ready for the store, and the report naming every rejected line."""
    path = Path(path)
    report = ImportReport(file=str(path.resolve()))
    rows: list[dict[str, Any]] = []
    for lineno, obj, reason in scan_jsonl(path):
        report.lines += 1
        if obj is None:
            report.rejected.append((lineno, str(reason)))
            continue
        try:
            row = ImportedPreferenceRow.model_validate(obj)
        except ValidationError as exc:
            report.rejected.append((lineno, _reason(exc)))
            continue
        report.valid += 1
        rows.append(
            {
                "pair_id": content_hash(row.prompt, row.chosen, row.rejected),
                "prompt": row.prompt,
                "chosen": row.chosen,
                "rejected": row.rejected,
                "source_file": report.file,
                "line_no": lineno,
            }
        )
    return rows, report


def import_preferences(db: TrainingDatabase, path: Path | str) -> ImportReport:
    rows, report = parse_preference_file(path)
    report.added = db.insert_imported_preferences(rows)
    return report
