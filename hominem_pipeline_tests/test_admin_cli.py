"""The admin commands: `hominem note` (a qualitative note beside an adapter version, shown by `adapters
list` / `adapters show`), `hominem sft stats` (used / unused per source) and `hominem sft introspection`
(the seed 002 opt-in, switched in config/conversations.toml with its comments kept)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from click.testing import CliRunner

from hominem_pipeline.adapters import AdapterRegistry, model_name_for_spec
from hominem_pipeline.cli import main
from hominem_pipeline.extraction.config import load_conversations_config
from hominem_pipeline.records import SFTPair
from hominem_pipeline.settings import Settings
from hominem_pipeline.store import TrainingDatabase
from hominem_pipeline_tests.adapter_helpers import lora_model, publish


def test_notes_live_beside_the_version_and_show_in_list_and_show(
    hominem_home: Path, tiny_model_dir: Path
) -> None:
    registry = AdapterRegistry(hominem_home / "artifacts", model_name_for_spec(str(tiny_model_dir)))
    model, _ = lora_model(tiny_model_dir)
    version = publish(registry, model, tiny_model_dir, metrics={"loss": 1.5})
    runner = CliRunner()
    assert runner.invoke(main, ["adapters", "promote", version, "--force"]).exit_code == 0

    first = runner.invoke(main, ["note", version[:8], "warmer, but forgets names"])
    assert first.exit_code == 0, first.output
    assert f"noted on {version}" in first.output
    second = runner.invoke(main, ["note", "current", "better at refusing politely"])
    assert second.exit_code == 0, second.output

    listed = runner.invoke(main, ["adapters", "list"])
    assert "better at refusing politely" in listed.output and "+1 earlier" in listed.output
    [row] = json.loads(runner.invoke(main, ["adapters", "list", "--json"]).output)
    assert [n["text"] for n in row["notes"]] == ["warmer, but forgets names", "better at refusing politely"]
    shown = runner.invoke(main, ["adapters", "show"])
    assert shown.exit_code == 0 and version in shown.output
    assert "warmer, but forgets names" in shown.output and "better at refusing politely" in shown.output

    # The version folder is untouched: it still verifies against the checksums it was published with.
    assert registry.resolve(version).name == version
    assert not list(registry.root.glob("notes/*.tmp"))
    refused = runner.invoke(main, ["note", version, "   "])
    assert refused.exit_code != 0 and "needs some text" in refused.output
    unknown = runner.invoke(main, ["note", "nosuchversion", "hello"])
    assert unknown.exit_code != 0 and "no adapter version or pointer 'nosuchversion'" in unknown.output


def _pair(i: int, source: str) -> SFTPair:
    return SFTPair(
        instruction=f"Question number {i}?",
        response=f"The answer to question {i}.",
        source=source,
        conversation_id=f"c{i}",
        message_id=f"m{i}",
    )


def test_sft_stats_counts_used_and_unused_per_source(hominem_home: Path) -> None:
    runner = CliRunner()
    none = runner.invoke(main, ["sft", "stats"])
    assert none.exit_code != 0 and "no store at" in none.output

    with TrainingDatabase(Settings(home=hominem_home).database_path) as db:
        db.insert_sft_pairs(
            [_pair(i, "conversation") for i in range(5)] + [_pair(i, "correction") for i in range(5, 7)]
        )
        ids = [p.pair_id for p in db.get_sft_pairs(source="conversation")][:3]
        db.update_sft_used(ids, cycle=1)
    res = runner.invoke(main, ["sft", "stats", "--json"])
    assert res.exit_code == 0, res.output
    by_source = {r["source"]: (r["used"], r["unused"], r["total"]) for r in json.loads(res.output)}
    assert by_source == {"conversation": (3, 2, 5), "correction": (0, 2, 2)}
    table = runner.invoke(main, ["sft", "stats"]).output
    assert table.splitlines()[-1].split() == ["all", "3", "4", "0", "7"]


def test_introspection_toggle_edits_the_config_and_keeps_its_comments(hominem_home: Path) -> None:
    settings = Settings(home=hominem_home)
    path = settings.config_dir / "conversations.toml"
    comments = [line for line in path.read_text().splitlines() if line.startswith("#")]
    runner = CliRunner()
    assert "introspection in SFT: off" in runner.invoke(main, ["sft", "introspection"]).output

    on = runner.invoke(main, ["sft", "introspection", "on"])
    assert on.exit_code == 0 and "on (was off" in on.output
    assert tomllib.loads(path.read_text())["extraction"]["include_introspection"] is True
    assert load_conversations_config(settings).extraction.options().include_introspection is True
    assert [line for line in path.read_text().splitlines() if line.startswith("#")] == comments

    assert runner.invoke(main, ["sft", "introspection", "off"]).exit_code == 0
    assert load_conversations_config(settings).extraction.include_introspection is False

    # A file that is already invalid elsewhere is left exactly as it was, and the error names the field.
    broken = path.read_text().replace("dedup_threshold = 0.92", "dedup_threshold = 7")
    path.write_text(broken)
    res = runner.invoke(main, ["sft", "introspection", "on"])
    assert res.exit_code != 0 and "dedup_threshold" in res.output
    assert path.read_text() == broken
