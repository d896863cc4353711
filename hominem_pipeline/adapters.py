"""The LoRA adapter registry: published versions under `artifacts/lora/<model_name>/<version>/` and the
pointers (`current`, with history for rollback, plus user-named ones) that say which version to serve.

A version folder is an adapter in PEFT's own format (loadable with `PeftModel.from_pretrained`) plus
`METADATA.json`; it is written aside and renamed into place under its content hash, so it never changes
after publication. A pointer is `artifacts/lora/<model_name>/<pointer>.json`, replaced atomically
(`hominem_pipeline.atomic.Pointer`). Plain Python: the trainer, the evaluation, the Dagster assets, the CLI
and the server all use this module.
"""

from __future__ import annotations

import fcntl
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hominem_pipeline.atomic import (
    CorruptVersion,
    Pointer,
    publish_version,
    verify_version,
    write_json_atomic,
)

CURRENT = "current"
METADATA_FILE = "METADATA.json"
#: Qualitative notes on versions (seed 000 9.3) live beside the immutable version folders, one file each.
NOTES_DIR = "notes"
# Pointer names share a folder with version folders; the pattern keeps them readable file names.
_POINTER_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


class AdapterRegistryError(RuntimeError):
    """A version or pointer does not exist, or a request cannot be honoured; the message says which."""


class AdapterMetadata(BaseModel):
    """What `METADATA.json` must hold. The trainer adds more (config, data hashes, channel contributions,
    reward-model version); those are kept as extra fields."""

    model_config = ConfigDict(extra="allow")

    created_at: datetime
    base_model: str = Field(
        min_length=1, description="the base model spec or folder the adapter was trained on"
    )
    parent_version: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    channel_contributions: dict[str, Any] = Field(default_factory=dict)
    content_hash: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _parent_from_trainer(cls, data: Any) -> Any:
        # The trainer records the adapter it continued from as `continued_from`.
        if isinstance(data, dict) and data.get("parent_version") is None and data.get("continued_from"):
            data = {**data, "parent_version": data["continued_from"]}
        return data


@dataclass
class AdapterVersion:
    version: str
    path: Path
    metadata: AdapterMetadata
    pointers: list[str] = field(default_factory=list)


def model_name_for_spec(spec: str) -> str:
    """The `<model_name>` folder for a base-model spec: `embedded:NAME` -> NAME, a folder or hub id ->
    its last path part. The trainer, the evaluation and the CLI all name the folder with this."""
    name = spec.split(":", 1)[1] if spec.startswith("embedded:") else Path(spec.rstrip("/")).name
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "model"


def read_metadata(version_dir: Path) -> AdapterMetadata:
    path = Path(version_dir) / METADATA_FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise AdapterRegistryError(f"{path} is missing: not a published adapter version") from exc
    except json.JSONDecodeError as exc:
        raise AdapterRegistryError(f"{path}: not valid JSON: {exc}") from exc
    try:
        return AdapterMetadata.model_validate(raw)
    except ValidationError as exc:
        raise AdapterRegistryError(f"{path}: {exc}") from exc


class AdapterRegistry:
    """Versions and pointers of one base model's adapters."""

    def __init__(self, artifacts_dir: Path | str, model_name: str):
        if not model_name or "/" in model_name or model_name.startswith("."):
            raise AdapterRegistryError(f"invalid model name {model_name!r}")
        self.model_name = model_name
        self.artifacts_dir = Path(artifacts_dir)
        self.root = Path(artifacts_dir) / "lora" / model_name

    # -- publishing --------------------------------------------------------------------------------
    def publish(
        self, write_adapter: Callable[[Path], None], metadata: AdapterMetadata | dict[str, Any]
    ) -> str:
        """Write an adapter aside with `write_adapter(folder)` (e.g. `peft_model.save_pretrained`), name it
        by its content hash and rename it into place (`atomic.publish_version`). Returns the version.
        Publishing the same bytes twice returns the existing version and leaves it untouched."""
        meta = metadata if isinstance(metadata, AdapterMetadata) else AdapterMetadata.model_validate(metadata)

        def write(folder: Path) -> None:
            write_adapter(folder)
            if not (folder / "adapter_config.json").is_file():
                raise AdapterRegistryError(
                    "the adapter writer produced no adapter_config.json (not a PEFT adapter)"
                )

        return publish_version(self.root, write, lambda _version: meta.model_dump(mode="json")).version

    def publish_model(self, peft_model: Any, metadata: AdapterMetadata | dict[str, Any]) -> str:
        return self.publish(lambda folder: peft_model.save_pretrained(str(folder)), metadata)

    # -- reading -----------------------------------------------------------------------------------
    def version_names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and not p.name.startswith(".") and (p / METADATA_FILE).is_file()
        )

    def pointer_names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.stem for p in self.root.glob("*.json") if not p.name.startswith("."))

    def pointer(self, name: str = CURRENT) -> Pointer:
        return Pointer(self.root, name)

    def pointers(self) -> dict[str, str | None]:
        return {name: self.pointer(name).target for name in self.pointer_names()}

    def versions(self) -> list[AdapterVersion]:
        """Every published version, oldest first, with the pointers that name it."""
        by_target: dict[str, list[str]] = {}
        for name, target in self.pointers().items():
            if target:
                by_target.setdefault(target, []).append(name)
        out = [
            AdapterVersion(v, self.root / v, read_metadata(self.root / v), sorted(by_target.get(v, [])))
            for v in self.version_names()
        ]
        return sorted(out, key=lambda a: (a.metadata.created_at, a.version))

    def get(self, ref: str) -> AdapterVersion:
        path = self.resolve(ref)
        pointers = sorted(n for n, t in self.pointers().items() if t == path.name)
        return AdapterVersion(path.name, path, read_metadata(path), pointers)

    def resolve(self, ref: str = CURRENT) -> Path:
        """A version, a unique version prefix, or a pointer name -> the version folder, verified against
        the checksums it was published with (a corrupted version is refused, naming the file)."""
        path = self._find(ref)
        try:
            verify_version(path)
        except CorruptVersion as exc:
            raise AdapterRegistryError(str(exc)) from exc
        return path

    def _find(self, ref: str) -> Path:
        # A version is a folder name from this registry's listing, never a path: "../x" cannot escape it.
        if ref in self.version_names():
            return self.root / ref
        if _POINTER_NAME.match(ref) and self.pointer(ref).path.is_file():
            target = self.pointer(ref).target
            if not target or not (self.root / target).is_dir():
                raise AdapterRegistryError(
                    f"pointer {ref!r} names {target!r}, which is not under {self.root}"
                )
            return self.root / target
        matches = [v for v in self.version_names() if v.startswith(ref)] if len(ref) >= 4 else []
        if len(matches) == 1:
            return self.root / matches[0]
        if len(matches) > 1:
            raise AdapterRegistryError(f"{ref!r} is ambiguous: {matches}")
        raise AdapterRegistryError(
            f"no adapter version or pointer {ref!r} under {self.root}; known versions: {self.version_names()},"
            f" pointers: {self.pointer_names()}"
        )

    # -- pointers ----------------------------------------------------------------------------------
    def set_pointer(self, name: str, ref: str) -> str:
        """Point `name` at a version (or at what another pointer names). Returns the version."""
        if not _POINTER_NAME.match(name):
            raise AdapterRegistryError(
                f"invalid pointer name {name!r}: lower-case letters, digits, '-' and '_', starting with a letter"
            )
        if name in self.version_names():
            raise AdapterRegistryError(f"pointer name {name!r} collides with a version folder")
        version = self.resolve(ref).name
        self.pointer(name).set(version)
        return version

    def promote(self, ref: str, pointer: str = CURRENT) -> str:
        """Make `pointer` (default `current`) name a version; the previous target goes on its history."""
        return self.set_pointer(pointer, ref)

    def rollback(self, pointer: str = CURRENT) -> str:
        """Move `pointer` back to the version it named before. Returns that version."""
        if not self.pointer(pointer).path.is_file():
            raise AdapterRegistryError(f"no pointer {pointer!r} under {self.root}")
        try:
            return self.pointer(pointer).rollback()
        except RuntimeError as exc:
            raise AdapterRegistryError(str(exc)) from exc

    def lineage(self, ref: str | None) -> list[str]:
        """`ref`'s version and the versions it continued from, newest first (empty for None). Stops at a
        parent that is not published here."""
        if ref is None:
            return []
        out = [self._find(ref).name]
        while True:
            parent = read_metadata(self.root / out[-1]).parent_version
            if not parent or parent in out or not (self.root / parent / METADATA_FILE).is_file():
                return out
            out.append(parent)

    def history(self, pointer: str = CURRENT) -> list[str]:
        state = self.pointer(pointer).read() or {}
        return list(state.get("history", []))

    # -- notes -------------------------------------------------------------------------------------
    def _notes_path(self, version: str) -> Path:
        return self.root / NOTES_DIR / f"{version}.json"

    def notes(self, ref: str) -> list[dict[str, str]]:
        """The notes attached to a version, oldest first: [{"at": ISO time, "text": ...}]."""
        path = self._notes_path(self._find(ref).name)
        try:
            return list(json.loads(path.read_text()))
        except FileNotFoundError:
            return []
        except json.JSONDecodeError as exc:
            raise AdapterRegistryError(f"{path}: not valid JSON: {exc}") from exc

    def add_note(self, ref: str, text: str) -> tuple[str, Path]:
        """Attach a note to a version. The version folder stays untouched (its checksums hold); the notes
        file beside it is rewritten atomically under a lock, so two notes at once both land."""
        text = text.strip()
        if not text:
            raise AdapterRegistryError("a note needs some text")
        version = self._find(ref).name
        path = self._notes_path(version)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.parent / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            notes = self.notes(version)
            notes.append({"at": now_utc().isoformat(), "text": text})
            write_json_atomic(path, notes)
        return version, path

    # -- inference ---------------------------------------------------------------------------------
    def base_model_path(self, adapter: AdapterVersion) -> str:
        """The adapter's base model as something `from_pretrained` loads (embedded specs are converted once)."""
        from hominem_pipeline.models import resolve_model

        return resolve_model(adapter.metadata.base_model, self.artifacts_dir / "models")

    def load(self, ref: str = CURRENT, base_model_path: str | None = None) -> tuple[Any, Any, AdapterVersion]:
        """Load base + adapter for inference: (peft_model, tokenizer, version). The base model comes from
        the adapter's metadata unless a resolved path is given."""
        from peft import PeftModel

        from hominem_pipeline.models import MODEL_LOADING, load_causal_lm

        adapter = self.get(ref)
        with MODEL_LOADING:
            base, tok = load_causal_lm(base_model_path or self.base_model_path(adapter))
            model = PeftModel.from_pretrained(base, str(adapter.path))
        model.eval()
        return model, tok, adapter


def now_utc() -> datetime:
    return datetime.now(UTC)
