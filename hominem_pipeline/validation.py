"""Checks on exported label rows: schema, ranges, missing fields. Used by asset checks and the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from hominem_pipeline.manifold import RewardManifold, validate_label

REQUIRED_ROW_FIELDS = (
    "label_id",
    "trajectory_id",
    "prompt",
    "response",
    "reward_vector",
    "reward_intensity",
    "safety_score",
)


def field_errors(exc: ValidationError) -> str:
    """A pydantic error on one line: `field.path: reason; ...` (the reason alone for the whole record)."""
    parts = []
    for e in exc.errors():
        loc = ".".join(str(x) for x in e["loc"])
        parts.append(f"{loc}: {e['msg']}" if loc else e["msg"])
    return "; ".join(parts)


class NotJsonLinesError(ValueError):
    """A file that should hold one JSON object per line holds one JSON document over several lines."""


def parse_json(text: str | bytes) -> Any:
    """`json.loads` that refuses what cannot be stored as UTF-8 text (a lone surrogate such as "\\ud800")
    and JSON nested too deeply for Python, each as a ValueError naming where (json.JSONDecodeError,
    also a ValueError, for malformed text)."""
    try:
        obj = json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply (more than Python's recursion limit allows)") from None
    where = lone_surrogate_path(obj)
    if where is not None:
        raise ValueError(
            f"{where}: contains a lone surrogate (an escape such as \\ud800 that is not valid Unicode)"
        )
    return obj


def lone_surrogate_path(obj: Any, where: str = "") -> str | None:
    """The field path ("messages.0.content") of the first string holding a lone surrogate, else None."""
    stack: list[tuple[str, Any]] = [(where, obj)]
    while stack:  # iterative: the objects come from json.loads, which already bounds their depth
        path, node = stack.pop()
        if isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                return path or "value"
        elif isinstance(node, dict):
            for k, v in node.items():
                key = f"{path}.{k}" if path else str(k)
                if lone_surrogate_path(k) is not None:
                    return key
                stack.append((key, v))
        elif isinstance(node, list):
            stack.extend((f"{path}.{i}" if path else str(i), v) for i, v in enumerate(node))
    return None


# A whole-file parse to recognise a pretty-printed document is attempted only below this size.
_PRETTY_CHECK_MAX_BYTES = 64 * 1024 * 1024


def _one_document(path: Path) -> Any:
    """The file's content when it is a single JSON document (pretty-printed), else None."""
    if path.stat().st_size > _PRETTY_CHECK_MAX_BYTES:
        return None
    try:
        return json.loads(path.read_bytes())
    except (ValueError, RecursionError):
        return None


def scan_jsonl(path: Path | str) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """Stream a JSONL file: (line number, object, None) for each JSON-object line, (line number, None,
    reason) for a bad one (not UTF-8, not JSON, nested too deeply, a lone surrogate, not an object).
    Blank lines are skipped; line numbers are the file's own. A file that is one pretty-printed JSON
    document raises NotJsonLinesError saying which format is expected."""
    path = Path(path)
    seen_object = False
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield lineno, None, f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at column {exc.start + 1}"
                continue
            if not line.strip():
                continue
            try:
                obj = parse_json(line)
            except json.JSONDecodeError as exc:
                if not seen_object and _one_document(path) is not None:
                    raise NotJsonLinesError(
                        f"{path}: one JSON document over several lines; expected JSON Lines, one JSON object "
                        "per line (e.g. `jq -c . FILE`, or `jq -c '.[]' FILE` for an array)"
                    ) from None
                yield lineno, None, f"not valid JSON: {exc.msg} (column {exc.colno})"
                continue
            except ValueError as exc:
                yield lineno, None, str(exc)
                continue
            if not isinstance(obj, dict):
                yield lineno, None, "expected a JSON object"
                continue
            seen_object = True
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
            for k in (
                "reward_vector",
                "reward_intensity",
                "safety_score",
                "scalar_preference",
                "rationale",
                "confidence",
            )
            if k in row and row[k] is not None
        }
        try:
            validate_label(data, manifold)
        except ValidationError as exc:
            for err in exc.errors():
                loc = ".".join(str(x) for x in err["loc"])
                problems.append(f"{where}: {loc}: {err['msg']}")
    return problems
