"""Corrupted state on disk: a truncated DuckDB file, a store another process holds, a damaged
`heads.safetensors`, a damaged `adapter_model.safetensors`, a `current` pointer full of garbage. Each is
either a one-line domain error that names the file and says what to do, or a fallback to the previous
good version that is logged; never a traceback from deep inside a library, never a silent load."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from hominem_pipeline.adapters import AdapterRegistry, AdapterRegistryError
from hominem_pipeline.atomic import CorruptPointer, CorruptVersion, Pointer
from hominem_pipeline.events.ingest import ingest_day
from hominem_pipeline.events.log import EventLog
from hominem_pipeline.reward_model.registry import load_current, publish, reward_model_root
from hominem_pipeline.settings import Settings
from hominem_pipeline.store import TrainingDatabase
from hominem_pipeline.store.connection import StoreBusy, StoreCorrupt
from hominem_pipeline_tests.adapter_helpers import lora_model, perturb
from hominem_pipeline_tests.adapter_helpers import publish as publish_adapter
from hominem_pipeline_tests.fault_driver import _reward_model_result
from hominem_pipeline_tests.faults import store_held_by_another_process
from hominem_pipeline_tests.test_event_log import DAY, _conversation

pytestmark = pytest.mark.faults


def _one_line(message: str, *must_name: str) -> None:
    assert "\n" not in message and "Traceback" not in message
    for part in must_name:
        assert part in message, (part, message)


def test_a_truncated_store_is_refused_naming_the_file_and_the_event_log_rebuilds_it(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events")
    log.append(_conversation("c1") + _conversation("c2"), day=DAY)
    path = tmp_path / "hominem.duckdb"
    with TrainingDatabase(path) as db:
        stored = ingest_day(db, log, DAY).new_messages
    data = path.read_bytes()
    for cut in (0, 100, len(data) // 2):
        path.write_bytes(data[:cut])
        with pytest.raises(StoreCorrupt) as err:
            TrainingDatabase(path)
        _one_line(str(err.value), str(path), "move it aside")
    # What the message says to do works: the conversations come back from the event log.
    path.rename(tmp_path / "hominem.duckdb.damaged")
    with TrainingDatabase(path) as db:
        assert ingest_day(db, log, DAY).new_messages == stored
        assert db.scalar("SELECT count(*) FROM conversation_messages") == stored


def test_a_second_process_on_the_store_gets_busy_retry_then_succeeds(tmp_path: Path) -> None:
    path = tmp_path / "hominem.duckdb"
    TrainingDatabase(path).close()
    with store_held_by_another_process(path) as holder:
        with pytest.raises(StoreBusy) as err:
            TrainingDatabase(path)
        _one_line(str(err.value), str(path), "busy", f"PID {holder.pid}", "retry")
    with TrainingDatabase(path) as db:  # the retry the message asked for
        assert db.schema_version > 0


def _publish_rm(artifacts: Path, seed: int) -> str:
    return publish(_reward_model_result(Settings(), seed), artifacts).version


def test_a_damaged_reward_model_falls_back_to_the_previous_good_version_with_a_log_line(
    hominem_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    artifacts = Settings().artifacts_dir
    first, second = _publish_rm(artifacts, 1), _publish_rm(artifacts, 2)
    root = reward_model_root(artifacts)
    assert Pointer(root, "current").target == second
    heads = root / second / "heads.safetensors"
    heads.write_bytes(heads.read_bytes()[: heads.stat().st_size // 2])  # a torn copy
    with caplog.at_level(logging.WARNING):
        model = load_current(artifacts)
    assert model is not None and model.version == first
    [line] = [r.getMessage() for r in caplog.records if "previous good one" in r.getMessage()]
    _one_line(line, str(heads), first)
    # With no intact version left, the error names the damaged file and what to do.
    (root / first / "heads.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CorruptVersion) as err:
        load_current(artifacts)
    _one_line(str(err.value), str(heads), "publish a new one")


def test_a_damaged_adapter_is_refused_naming_the_file_and_rollback_recovers(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    registry = AdapterRegistry(tmp_path / "artifacts", tiny_model_dir.name)
    versions = []
    for seed in (1, 2):
        model, _ = lora_model(tiny_model_dir, seed=seed)
        perturb(model, scale=3.0, seed=seed)
        versions.append(publish_adapter(registry, model, tiny_model_dir))
        registry.promote(versions[-1])
    weights = registry.root / versions[1] / "adapter_model.safetensors"
    with weights.open("r+b") as fh:  # one flipped byte in the middle: a disk error
        fh.seek(weights.stat().st_size // 2)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(AdapterRegistryError) as err:
        registry.resolve("current")
    _one_line(str(err.value), str(weights), "rollback")
    assert registry.rollback() == versions[0]
    assert registry.resolve("current").name == versions[0]


@pytest.mark.parametrize(
    "garbage", [b"", b'{"version": "abc', b"\x00\xff garbage", b'["not", "a", "pointer"]']
)
def test_a_garbage_current_pointer_is_a_clear_error_and_promote_repairs_it(
    tmp_path: Path, tiny_model_dir: Path, garbage: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    registry = AdapterRegistry(tmp_path / "artifacts", tiny_model_dir.name)

    def write(folder: Path) -> None:  # the pointer is under attack here, not the weights: a stand-in adapter
        (folder / "adapter_config.json").write_text("{}")
        (folder / "adapter_model.safetensors").write_bytes(b"weights")

    version = registry.publish(
        write, {"created_at": "2026-11-22T00:00:00Z", "base_model": str(tiny_model_dir)}
    )
    registry.promote(version)
    registry.pointer("current").path.write_bytes(garbage)
    with pytest.raises(CorruptPointer) as err:
        registry.resolve("current")
    _one_line(str(err.value), str(registry.pointer("current").path), "hominem adapters promote")
    with caplog.at_level(logging.WARNING):
        assert registry.promote(version) == version  # what the message says to do
    assert any("replacing it" in r.getMessage() for r in caplog.records)
    assert registry.resolve("current").name == version
