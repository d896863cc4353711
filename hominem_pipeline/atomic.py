"""Crash-safe publication: files and version folders are written aside, then renamed into place.

A crash at any point leaves either the previous good state or the new complete one, never a torn file.
Versioned artifacts (LoRA adapters, reward models) go through one function, `publish_version`: content
hash, staging, fsync, rename, and a per-file checksum list in `METADATA.json` that `verify_version`
checks on every load, so a corrupted version is refused naming the file instead of loading silently.

Every file of a version is fsync'd, and so is every folder, before the rename that publishes it. A writer
holds an exclusive `flock` on its temp file or staging folder for as long as it writes, so the leftovers of
a writer that was killed (its lock died with it) can be told from work in progress: `sweep_leftovers`
removes them, and is called wherever versions are published or loaded and before every atomic write.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Names of the scratch entries the writers here make beside their final home.
STAGING_PREFIX = ".staging-"
TMP_SUFFIX = ".tmp"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: Path) -> None:
    """fsync every file and every folder under `folder`, deepest first, then `folder` itself: after this
    a rename of `folder` can only publish bytes that are on disk (a crash cannot leave a named, empty file)."""
    folder = Path(folder)
    for dirpath, _dirnames, filenames in os.walk(folder, topdown=False):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(dirpath))


@dataclass(frozen=True)
class Swept:
    """What `sweep_leftovers` removed from one folder."""

    paths: list[Path]
    bytes: int

    @property
    def count(self) -> int:
        return len(self.paths)


def _leftover(entry: Path) -> bool:
    name = entry.name
    return name.startswith(STAGING_PREFIX) or (name.startswith(".") and name.endswith(TMP_SUFFIX))


def _owner_is_gone(entry: Path) -> bool:
    """True when no live process holds the entry's writer lock (its writer finished or was killed)."""
    try:
        fd = os.open(entry, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False  # a writer is at work in it
    finally:
        os.close(fd)
    return True


def _size(entry: Path) -> int:
    if entry.is_dir():
        return sum(p.stat().st_size for p in entry.rglob("*") if p.is_file())
    return entry.stat().st_size


def sweep_leftovers(folder: Path) -> Swept:
    """Remove the staging folders (`.staging-*`) and temp files (`.*.tmp`) that killed writers left in
    `folder` (not below it), and log how many and how big. Entries whose writer is still running hold its
    lock and are left alone, so this is safe while other processes publish into the same folder."""
    folder = Path(folder)
    removed: list[Path] = []
    total = 0
    try:
        entries = [e for e in folder.iterdir() if _leftover(e)]
    except FileNotFoundError:
        return Swept([], 0)
    for entry in entries:
        try:
            if not _owner_is_gone(entry):
                continue
            size = _size(entry)
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except FileNotFoundError:
            continue  # its writer finished (renamed or removed it) meanwhile
        except OSError as exc:  # e.g. a read-only copy of the artifacts: report, never fail a load on it
            log.warning("could not sweep %s: %s", entry, exc)
            continue
        removed.append(entry)
        total += size
    if removed:
        log.warning(
            "swept %d leftover(s) of interrupted writes (%d bytes) from %s: %s",
            len(removed),
            total,
            folder,
            ", ".join(p.name for p in removed),
        )
    return Swept(removed, total)


def _lock_fd(fd: int) -> None:
    # Held until the descriptor closes (or the process dies): what sweep_leftovers checks.
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


@contextlib.contextmanager
def open_atomic(path: Path, mode: str = "wb") -> Iterator[Any]:
    """Open a temp file beside `path`; on a clean exit it is fsync'd and renamed over `path`, on an error
    it is removed and `path` keeps its previous content."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_leftovers(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    _lock_fd(fd)
    # A second descriptor keeps the lock (it belongs to the open file) after the file object closes, until
    # the rename is done: a sweep in between must not take the finished temp file for a dead one.
    lock = os.dup(fd)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        os.close(lock)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    with open_atomic(path, "wb") as fh:
        fh.write(data)


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_jsonl_atomic(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows as JSON lines to a temp file, then rename. Returns the row count."""
    n = 0
    with open_atomic(path, "w") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, sort_keys=True, default=str))
            fh.write("\n")
            n += 1
    return n


class AppendError(OSError):
    """An append failed (disk full, file too large, I/O error); the message names the file and says what
    was kept."""


def append_durable(path: Path, data: bytes, what: str = "lines") -> int:
    """Append whole lines to `path` under an exclusive flock with O_APPEND, fsync before returning. A
    file ending mid-line (a crashed writer's torn tail) gets that fragment closed first, so the torn
    bytes become one bad line instead of corrupting the next record. A failed write is cut back off the
    file (still under the lock) and raises `AppendError`, so no partial record is left behind. Returns the
    lines written. The one durable append: the event log and the RHI's logs use it."""
    import fcntl

    if not data:
        return 0
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            size = os.fstat(fd).st_size
            if size:
                with open(path, "rb") as fh:
                    fh.seek(size - 1)
                    if fh.read(1) != b"\n":
                        data = b"\n" + data  # close a crashed writer's torn line
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            except OSError as exc:
                raise _undo_append(fd, path, size, exc, what) from exc
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    if created:
        fsync_dir(path.parent)
    return data.count(b"\n") - (1 if data.startswith(b"\n") else 0)


def _undo_append(fd: int, path: Path, size: int, exc: OSError, what: str) -> AppendError:
    """Cut the file back to where this append began (still under the lock), and say so."""
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
        left = "nothing of this write was kept"
    except OSError as undo_exc:  # the file keeps a torn tail, which readers skip and the next append closes
        left = f"its partial line could not be cut off ({undo_exc.strerror})"
    return AppendError(
        f"{path}: could not append {what} ({exc.strerror or exc}); {left} and every earlier record is "
        "intact; free space (or fix the disk) and send them again"
    )


def append_jsonl_durable(path: Path, row: dict[str, Any]) -> None:
    """One JSON line appended with `append_durable` (logs that only grow: RHI history, gate decisions)."""
    append_durable(path, (json.dumps(row, ensure_ascii=False, sort_keys=True, default=str) + "\n").encode())


METADATA_FILE = "METADATA.json"


def file_digest(path: Path, length: int = 16) -> str:
    """sha256 of a file's bytes (hex, first `length` characters): exports' data versions, checksums."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:length]


def hash_tree(folder: Path) -> str:
    """Content hash of a folder: relative paths and bytes of every file, in a stable order."""
    h = hashlib.sha256()
    folder = Path(folder)
    for p in sorted(q for q in folder.rglob("*") if q.is_file()):
        rel = p.relative_to(folder).as_posix()
        if rel == METADATA_FILE:
            continue  # metadata names the hash; it cannot be part of it
        h.update(rel.encode())
        h.update(b"\0")
        with p.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()


@contextlib.contextmanager
def staging_dir(parent: Path) -> Iterator[Path]:
    """A scratch folder next to its final home (same filesystem, so the final rename is atomic).
    Removed on error; on success the caller publishes it with `publish_dir`. The folder is locked while
    it is in use, and dead writers' leftovers in `parent` are swept first."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    sweep_leftovers(parent)
    tmp = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=parent))
    fd = os.open(tmp, os.O_RDONLY)
    try:
        _lock_fd(fd)
        yield tmp
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        os.close(fd)


def publish_dir(staged: Path, final: Path) -> bool:
    """fsync a staged folder's files and folders, then rename it into place. Returns False (and discards
    the staged copy) if a folder with that name already exists: versions are content-addressed, so an
    existing one holds the same bytes."""
    final = Path(final)
    if final.exists():
        shutil.rmtree(staged, ignore_errors=True)
        return False
    fsync_tree(staged)
    os.replace(staged, final)
    fsync_dir(final.parent)
    return True


class CorruptPointer(RuntimeError):
    """A pointer file that cannot be read as a pointer (truncated, garbage, hand-edited wrongly)."""


class Pointer:
    """A named pointer file (e.g. `current`) naming a version folder, with a history for rollback.

    The pointer is a small JSON file replaced atomically; its history lists earlier targets so that
    `rollback()` moves it back one step. A pointer file that is not a valid pointer is refused naming the
    file (`CorruptPointer`); setting the pointer again replaces it.
    """

    def __init__(self, root: Path, name: str = "current"):
        self.root = Path(root)
        self.name = name
        self.path = self.root / f"{name}.json"

    def _corrupt(self, why: str) -> CorruptPointer:
        return CorruptPointer(
            f"{self.path}: not a valid pointer ({why}); point it at a published version again "
            f"(e.g. `hominem adapters promote VERSION --force` for adapters, `hominem reward train` for the "
            f"reward model), which replaces the file"
        )

    def read(self) -> dict[str, Any] | None:
        try:
            state = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise self._corrupt(f"not JSON: {type(exc).__name__}") from None
        if not isinstance(state, dict) or not isinstance(state.get("version"), str | None):
            raise self._corrupt('no "version" name')
        history = state.get("history", [])
        if not isinstance(history, list) or not all(isinstance(v, str) for v in history):
            raise self._corrupt('"history" is not a list of version names')
        return {"version": state["version"], "history": history}

    @property
    def target(self) -> str | None:
        state = self.read()
        return state["version"] if state else None

    def set(self, version: str) -> None:
        if not (self.root / version).is_dir():
            raise FileNotFoundError(f"no version {version!r} under {self.root}")
        try:
            state = self.read() or {"version": None, "history": []}
        except CorruptPointer as exc:
            log.warning("%s; replacing it with a pointer to %s (its history is lost)", exc, version)
            state = {"version": None, "history": []}
        history = list(state["history"])
        if state["version"] and state["version"] != version:
            history.append(state["version"])
        write_json_atomic(self.path, {"version": version, "history": history})

    def rollback(self) -> str:
        state = self.read()
        if not state or not state.get("history"):
            raise RuntimeError(f"pointer {self.name!r} has no earlier version to roll back to")
        history = list(state["history"])
        previous = history.pop()
        write_json_atomic(self.path, {"version": previous, "history": history})
        return previous

    def good_target(self, verify: Callable[[Path], None]) -> str | None:
        """The pointer's version if `verify(folder)` accepts it, else the newest version in its history
        that passes (logged, naming what was damaged), so a damaged version falls back to the previous
        good one. None when the pointer is unset; `CorruptVersion` when no version passes."""
        state = self.read()
        if not state or not state["version"]:
            return None
        damage: list[str] = []
        for version in [state["version"], *reversed(state["history"])]:
            try:
                verify(self.root / version)
            except CorruptVersion as exc:
                damage.append(str(exc))
                continue
            if damage:
                log.warning(
                    "%s names a damaged version (%s); using %s, the previous good one in its history",
                    self.path,
                    damage[0],
                    version,
                )
            return version
        raise CorruptVersion(
            f"{damage[0]}; no earlier version in {self.path}'s history is intact either: publish a new one"
        )


class CorruptVersion(RuntimeError):
    """A published version's files no longer match the checksums it was published with (or are missing).
    The message names the file; the fix is to roll the pointer back or publish again."""


@dataclass(frozen=True)
class PublishedVersion:
    version: str
    path: Path
    new: bool  # False when a version with the same content already existed (it is left untouched)


def file_checksums(folder: Path) -> dict[str, str]:
    """{relative path: full sha256} of every file but METADATA.json (which holds this list)."""
    folder = Path(folder)
    return {
        p.relative_to(folder).as_posix(): file_digest(p, 64)
        for p in sorted(q for q in folder.rglob("*") if q.is_file())
        if p.relative_to(folder).as_posix() != METADATA_FILE
    }


def publish_version(
    root: Path,
    write: Callable[[Path], None],
    metadata: Callable[[str], dict[str, Any]],
    prefix: str = "",
) -> PublishedVersion:
    """Publish a content-addressed version folder under `root`: `write(folder)` fills a staging folder,
    the version is `prefix + hash_tree(folder)[:16]`, `metadata(version)` is written to METADATA.json
    with the content hash and per-file checksums, and the folder is fsync'd and renamed into place. A
    version that already exists is the same content and stays as it is (`new=False`)."""
    root = Path(root)
    with staging_dir(root) as tmp:
        write(tmp)
        digest = hash_tree(tmp)
        version = f"{prefix}{digest[:16]}"
        meta = {**metadata(version), "version": version, "content_hash": digest, "files": file_checksums(tmp)}
        write_json_atomic(tmp / METADATA_FILE, meta)
        new = publish_dir(tmp, root / version)
    return PublishedVersion(version, root / version, new)


#: What a reader of a CorruptVersion message can do about it.
_CORRUPT_FIX = "move the pointer off it (`hominem adapters rollback`, or train again) and delete the folder"


def verify_version(folder: Path) -> None:
    """Refuse a version whose files differ from what was published: each file against the checksums in
    METADATA.json, or (older versions without them) the folder's content hash against its name. Loading
    a version is also when the dead writers' leftovers beside it are swept."""
    folder = Path(folder)
    sweep_leftovers(folder.parent)
    meta_path = folder / METADATA_FILE
    try:
        meta = json.loads(meta_path.read_bytes())
    except FileNotFoundError as exc:
        raise CorruptVersion(f"{meta_path}: missing; {folder} is not a published version") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorruptVersion(f"{meta_path}: not valid JSON ({exc}); {_CORRUPT_FIX}") from exc
    expected = meta.get("files") if isinstance(meta, dict) else None
    if isinstance(expected, dict):
        actual = file_checksums(folder)
        for rel in sorted(set(expected) | set(actual)):
            if rel not in actual:
                raise CorruptVersion(
                    f"{folder / rel}: missing from published version {folder.name}; {_CORRUPT_FIX}"
                )
            if rel not in expected:
                raise CorruptVersion(
                    f"{folder / rel}: not part of published version {folder.name}; {_CORRUPT_FIX}"
                )
            if actual[rel] != expected[rel]:
                raise CorruptVersion(
                    f"{folder / rel}: checksum {actual[rel][:16]} does not match the published {expected[rel][:16]}"
                    f" (version {folder.name} is corrupted); {_CORRUPT_FIX}"
                )
        return
    digest = hash_tree(folder)
    if not folder.name.split("-")[-1] or not digest.startswith(folder.name.split("-")[-1]):
        raise CorruptVersion(
            f"{folder}: content hash {digest[:16]} does not match the version name (a file was changed);"
            f" {_CORRUPT_FIX}"
        )
