"""Checks on exported label rows: schema, ranges, missing fields. Used by asset checks and the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from hominem_pipeline.manifold import RewardManifold, validate_label

REQUIRED_ROW_FIELDS = ("label_id", "trajectory_id", "prompt", "response", "reward_vector", "reward_intensity", "safety_score")


def scan_jsonl(path: Path | str) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """Stream a JSONL file: (line number, object, None) for each JSON-object line, (line number, None,
    reason) for a bad one. Blank lines are skipped; line numbers are the file's own."""
    with Path(path).open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                yield lineno, None, f"not valid JSON: {exc.msg}"
                continue
            if not isinstance(obj, dict):
                yield lineno, None, "expected a JSON object"
                continue
            yield lineno, obj, None


def iter_jsonl(path: Path | str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each line; the first bad line raises ValueError naming file and line."""
    for lineno, obj, reason in scan_jsonl(path):
        if obj is None:
            raise ValueError(f"{path}:{lineno}: {reason}")
        yield lineno, obj


def read_jsonl(path: Path | str) -> list[dict[str, Any]]:
    """Rows of a JSONL file. A line that is not a JSON object raises with its line number."""
    return [obj for _, obj in iter_jsonl(path)]


M = TypeVar("M", bound=BaseModel)


def read_jsonl_models(path: Path | str, model: type[M]) -> list[M]:
    """Every row of a JSONL file as `model`; a missing file is empty; a bad row fails naming line and field."""
    if not Path(path).is_file():
        return []
    out = []
    for lineno, row in iter_jsonl(path):
        try:
            out.append(model.model_validate(row))
        except ValidationError as exc:
            raise ValueError(f"{path}: row {lineno}: {exc}") from exc
    return out


def label_row_problems(rows: list[dict[str, Any]], manifold: RewardManifold) -> list[str]:
    """Every problem found, as 'row N (label_id): field: reason'. Empty means valid."""
    problems = []
    for i, row in enumerate(rows, 1):
        where = f"row {i} ({row.get('label_id', '?')})"
        for f in REQUIRED_ROW_FIELDS:
            if f not in row or row[f] is None or row[f] == "":
                problems.append(f"{where}: {f}: missing")
        if not all(f in row for f in ("reward_vector", "reward_intensity", "safety_score")):
            continue
        data = {
            k: row[k]
            for k in ("reward_vector", "reward_intensity", "safety_score", "scalar_preference", "rationale", "confidence")
            if k in row and row[k] is not None
        }
        try:
            validate_label(data, manifold)
        except ValidationError as exc:
            for err in exc.errors():
                loc = ".".join(str(x) for x in err["loc"])
                problems.append(f"{where}: {loc}: {err['msg']}")
    return problems
