"""Importing human preference pairs into the store, in the layouts public data sets use.

One row a line, validated on its own (a bad line is reported with its number and reason; the rest are
imported). Accepted layouts, each turned into one `{prompt, chosen, rejected}`:
- ours: `{prompt, chosen, rejected}` with text values (optionally `source`, `dimensions`);
- HH-RLHF transcripts: only `chosen` and `rejected`, each a whole "Human: ... Assistant: ..." text;
- TRL's preference layout: `chosen` / `rejected` as lists of chat messages, with `prompt` as text or
  messages, or no prompt at all (the shared leading messages are the prompt);
- pairwise-judge layouts: `{instruction, [input], output_1, output_2, label}` (PandaLM, LLMBar), where
  `label` names the better output (1 or 2); ties are refused, they say nothing about which is better.
Every pair records its `source` (the row's own, else the importer's, else the file name) and the reward
dimensions it is evidence for (the importer's `--dimension`, else the row's own, else the source map in
`config/reward_model.toml`, else none: training then infers them). A pair's id hashes (prompt, chosen,
rejected), so importing the same file twice adds nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from hominem_pipeline.records import content_hash
from hominem_pipeline.reward_model.config import DimensionRule, dimensions_for_source
from hominem_pipeline.store import TrainingDatabase
from hominem_pipeline.validation import field_errors, scan_jsonl

_ASSISTANT = "\n\nAssistant:"
_ROLE_NAMES = {"user": "Human", "assistant": "Assistant", "system": "System"}


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


def _is_messages(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(m, dict) and "content" in m for m in v)


def render_messages(messages: list[dict[str, Any]]) -> str:
    """A chat as one prompt text: a lone user message is its content; longer chats use the HH-RLHF
    transcript form ("Human: ...\\n\\nAssistant: ..."), so imported multi-turn prompts all read alike."""
    if len(messages) == 1 and messages[0].get("role", "user") == "user":
        return str(messages[0]["content"])
    return "\n\n".join(
        f"{_ROLE_NAMES.get(str(m.get('role', 'user')), str(m.get('role')))}: {m['content']}" for m in messages
    )


def _reply(messages: list[dict[str, Any]]) -> str:
    """The response a message list holds: its assistant messages' text (TRL's layout has one)."""
    said = [str(m["content"]) for m in messages if m.get("role", "assistant") == "assistant"]
    return "\n\n".join(said)


def _trl_layout(data: dict[str, Any]) -> dict[str, Any] | None:
    chosen, rejected, prompt = data.get("chosen"), data.get("rejected"), data.get("prompt")
    if not (_is_messages(chosen) and _is_messages(rejected)):
        return None
    if prompt is None:
        # Implicit prompt: both chats share their leading messages; what follows is each response.
        k = 0
        while k < min(len(chosen), len(rejected)) and chosen[k] == rejected[k]:
            k += 1
        prompt_text = render_messages(chosen[:k]) if k else ""
        return {**data, "prompt": prompt_text, "chosen": _reply(chosen[k:]), "rejected": _reply(rejected[k:])}
    prompt_text = render_messages(prompt) if _is_messages(prompt) else prompt
    return {**data, "prompt": prompt_text, "chosen": _reply(chosen), "rejected": _reply(rejected)}


def _judge_layout(data: dict[str, Any]) -> dict[str, Any] | None:
    if not {"output_1", "output_2", "label"} <= data.keys():
        return None
    instruction = data.get("instruction", data.get("input"))
    extra = data.get("input") if "instruction" in data else None
    if not isinstance(instruction, str):
        raise ValueError("instruction: a pairwise-judge row needs the instruction text")
    prompt = f"{instruction}\n\n{extra}" if isinstance(extra, str) and extra.strip() else instruction
    label = str(data["label"]).strip().lower().removeprefix("output_")
    if label not in ("1", "2"):
        raise ValueError(
            f"label: {data['label']!r} does not name the better output (1 or 2); ties are refused"
        )
    first, second = data["output_1"], data["output_2"]
    chosen, rejected = (first, second) if label == "1" else (second, first)
    return {**data, "prompt": prompt, "chosen": chosen, "rejected": rejected}


class ImportedPreferenceRow(BaseModel):
    """One imported row, after its layout is recognised. Extra fields public sets carry are ignored."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    prompt: str
    chosen: str
    rejected: str
    source: str | None = None
    dimensions: list[str] | None = None

    @model_validator(mode="before")
    @classmethod
    def _layouts(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for layout in (_trl_layout, _judge_layout):
            found = layout(data)
            if found is not None:
                return found
        if "prompt" not in data:
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


@dataclass
class ImportReport:
    file: str
    lines: int = 0  # non-blank lines read
    valid: int = 0
    added: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)
    valid_by_source: Counter[str] = field(default_factory=Counter)
    added_by_source: dict[str, int] = field(default_factory=dict)
    dimensions_by_source: dict[str, list[str]] = field(default_factory=dict)

    @property
    def already_present(self) -> int:
        return self.valid - self.added


def parse_preference_file(
    path: Path | str,
    *,
    source: str | None = None,
    dimensions: list[str] | None = None,
    dimension_names: list[str] | None = None,
    rules: list[DimensionRule] | None = None,
) -> tuple[list[dict[str, Any]], ImportReport]:
    """Valid rows ready for the store, and the report naming every rejected line.

    `source` is used for rows that name none (default: the file's name); `dimensions` (the importer's
    choice) overrides every row's; `dimension_names` (the manifold's) is what a dimension may be called.
    """
    path = Path(path)
    report = ImportReport(file=str(path.resolve()))
    known = set(dimension_names) if dimension_names is not None else None
    if dimensions and known is not None:
        bad = [d for d in dimensions if d not in known]
        if bad:
            raise ValueError(f"--dimension: unknown dimension(s) {bad}; the manifold has {sorted(known)}")
    rows: list[dict[str, Any]] = []
    for lineno, obj, reason in scan_jsonl(path):
        report.lines += 1
        if obj is None:
            report.rejected.append((lineno, str(reason)))
            continue
        try:
            row = ImportedPreferenceRow.model_validate(obj)
        except (ValidationError, ValueError) as exc:
            report.rejected.append(
                (lineno, field_errors(exc) if isinstance(exc, ValidationError) else str(exc))
            )
            continue
        row_source = row.source or source or path.stem
        if dimensions:
            dims, origin = list(dimensions), "importer"
        elif row.dimensions:
            dims, origin = list(row.dimensions), "row"
        else:
            dims = dimensions_for_source(row_source, rules or [])
            origin = "source" if dims else "none"
        if known is not None and any(d not in known for d in dims):
            report.rejected.append((lineno, f"dimensions: {dims} names a dimension not in the manifold"))
            continue
        report.valid += 1
        report.valid_by_source[row_source] += 1
        report.dimensions_by_source.setdefault(row_source, dims)
        rows.append(
            {
                "pair_id": content_hash(row.prompt, row.chosen, row.rejected),
                "prompt": row.prompt,
                "chosen": row.chosen,
                "rejected": row.rejected,
                "source_file": report.file,
                "line_no": lineno,
                "source": row_source,
                "dimensions": dims,
                "dimensions_from": origin,
            }
        )
    if not report.lines:
        raise ValueError(f"{path}: no rows: expected JSON Lines, one preference pair per line")
    return rows, report


def import_preferences(
    db: TrainingDatabase,
    path: Path | str,
    *,
    source: str | None = None,
    dimensions: list[str] | None = None,
    dimension_names: list[str] | None = None,
    rules: list[DimensionRule] | None = None,
) -> ImportReport:
    rows, report = parse_preference_file(
        path, source=source, dimensions=dimensions, dimension_names=dimension_names, rules=rules
    )
    report.added_by_source = db.insert_imported_preferences(rows)
    report.added = sum(report.added_by_source.values())
    return report
