"""The adapter registry: publish real PEFT adapters, list them, promote, roll back, named pointers, and a
crash mid-publish that leaves the previous state; plus the `hominem adapters` CLI over it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from hominem_pipeline.adapters import AdapterRegistry, AdapterRegistryError, model_name_for_spec
from hominem_pipeline.cli import main
from hominem_pipeline_tests.adapter_helpers import lora_model, perturb, publish


@pytest.fixture
def registry_with_two(tmp_path: Path, tiny_model_dir: Path) -> tuple[AdapterRegistry, str, str]:
    registry = AdapterRegistry(tmp_path / "artifacts", "tiny")
    model, _ = lora_model(tiny_model_dir)
    first = publish(registry, model, tiny_model_dir, metrics={"loss": 1.5})
    perturb(model, scale=0.01)
    second = publish(registry, model, tiny_model_dir, parent=first, metrics={"loss": 1.2})
    return registry, first, second


def test_publish_list_promote_rollback(
    registry_with_two: tuple[AdapterRegistry, str, str], tiny_model_dir: Path
) -> None:
    registry, first, second = registry_with_two
    assert first != second
    versions = registry.versions()
    assert [v.version for v in versions] == [first, second]
    assert versions[1].metadata.parent_version == first
    assert versions[1].metadata.metrics == {"loss": 1.2}
    assert versions[0].metadata.content_hash.startswith(first)

    assert registry.promote(first) == first
    assert registry.promote(second) == second
    assert registry.resolve("current").name == second
    assert [v.pointers for v in registry.versions()] == [[], ["current"]]
    assert registry.rollback() == first
    assert registry.resolve("current").name == first
    with pytest.raises(AdapterRegistryError, match="no earlier version"):
        registry.rollback()

    # The published folder is a PEFT adapter: base + adapter loads and carries the perturbed weights.
    model, _tok, adapter = registry.load(second)
    assert adapter.version == second
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and any(torch.count_nonzero(p) > 0 for p in lora_b)


def test_named_pointers_are_independent_of_current(
    registry_with_two: tuple[AdapterRegistry, str, str],
) -> None:
    registry, first, second = registry_with_two
    registry.promote(second)
    assert registry.set_pointer("empathy-heavy", first) == first
    # A pointer can follow another pointer's target, and a unique version prefix works too.
    assert registry.set_pointer("knowledge_focus", "current") == second
    assert registry.set_pointer("knowledge_focus", first[:6]) == first
    assert registry.pointers() == {"current": second, "empathy-heavy": first, "knowledge_focus": first}
    assert registry.rollback("knowledge_focus") == second
    assert registry.resolve("current").name == second  # untouched by the other pointers
    with pytest.raises(AdapterRegistryError, match="invalid pointer name"):
        registry.set_pointer("Bad Name", first)
    with pytest.raises(AdapterRegistryError, match="no adapter version or pointer"):
        registry.promote("nope-not-there")


def test_republishing_same_bytes_is_idempotent(tmp_path: Path, tiny_model_dir: Path) -> None:
    registry = AdapterRegistry(tmp_path / "artifacts", "tiny")
    model, _ = lora_model(tiny_model_dir)
    v1 = publish(registry, model, tiny_model_dir)
    v2 = publish(registry, model, tiny_model_dir)
    assert v1 == v2 and registry.version_names() == [v1]


def test_crash_mid_publish_leaves_previous_state(
    registry_with_two: tuple[AdapterRegistry, str, str], tiny_model_dir: Path
) -> None:
    registry, first, second = registry_with_two
    registry.promote(first)
    model, _ = lora_model(tiny_model_dir, seed=5)

    def crashing_writer(folder: Path) -> None:
        model.save_pretrained(str(folder))
        raise OSError("disk full while writing the adapter")

    with pytest.raises(OSError, match="disk full"):
        registry.publish(
            crashing_writer, {"created_at": "2026-11-21T00:00:00Z", "base_model": str(tiny_model_dir)}
        )
    assert registry.version_names() == sorted([first, second])
    assert not [p for p in registry.root.iterdir() if p.name.startswith(".staging")]
    assert registry.resolve("current").name == first


def test_metadata_is_validated_and_trainer_fields_read(tmp_path: Path, tiny_model_dir: Path) -> None:
    registry = AdapterRegistry(tmp_path / "artifacts", "tiny")
    model, _ = lora_model(tiny_model_dir)
    with pytest.raises(Exception, match="base_model"):
        registry.publish_model(model, {"created_at": "2026-11-21T00:00:00Z"})
    assert registry.version_names() == []
    # The trainer names the adapter it continued from `continued_from`; the registry reads it as the parent.
    first = publish(registry, model, tiny_model_dir)
    perturb(model, scale=0.01)
    second = publish(registry, model, tiny_model_dir, continued_from=first)
    assert registry.get(second).metadata.parent_version == first


def test_model_name_for_spec(tmp_path: Path) -> None:
    assert model_name_for_spec("embedded:smollm2-135m-instruct") == "smollm2-135m-instruct"
    assert model_name_for_spec("Qwen/Qwen2.5-7B-Instruct") == "Qwen2.5-7B-Instruct"
    assert model_name_for_spec(str(tmp_path)) == tmp_path.name


def test_adapters_cli(hominem_home: Path, tiny_model_dir: Path) -> None:
    registry = AdapterRegistry(hominem_home / "artifacts", model_name_for_spec(str(tiny_model_dir)))
    model, _ = lora_model(tiny_model_dir)
    first = publish(registry, model, tiny_model_dir, metrics={"loss": 1.5})
    perturb(model, scale=0.01)
    second = publish(registry, model, tiny_model_dir, parent=first)
    runner = CliRunner()

    empty = runner.invoke(main, ["adapters", "list"])
    assert empty.exit_code == 0, empty.output
    assert first in empty.output and second in empty.output and "current" not in empty.output

    # Neither version has an evaluation report: promotion is refused unless forced.
    res = runner.invoke(main, ["adapters", "promote", first])
    assert res.exit_code != 0 and "no evaluation report" in res.output
    for args in (["promote", first, "--force"], ["promote", second, "--force"]):
        res = runner.invoke(main, ["adapters", *args])
        assert res.exit_code == 0, res.output
    assert registry.resolve("current").name == second
    res = runner.invoke(main, ["adapters", "pointer", "current", first])
    assert res.exit_code != 0 and "hominem adapters promote" in res.output

    res = runner.invoke(main, ["adapters", "pointer", "calm", first])
    assert res.exit_code == 0 and f"calm -> {first}" in res.output
    listed = runner.invoke(main, ["adapters", "list", "--json"])
    rows = {r["version"]: r for r in json.loads(listed.output)}
    assert rows[second]["pointers"] == ["current"] and rows[first]["pointers"] == ["calm"]
    assert rows[first]["metrics"] == {"loss": 1.5}

    res = runner.invoke(main, ["adapters", "rollback"])
    assert res.exit_code == 0 and first in res.output
    assert registry.resolve("current").name == first

    res = runner.invoke(main, ["adapters", "rollback"])
    assert res.exit_code != 0 and "no earlier version" in res.output
    res = runner.invoke(main, ["adapters", "promote", "doesnotexist"])
    assert res.exit_code != 0 and "no adapter version or pointer" in res.output
