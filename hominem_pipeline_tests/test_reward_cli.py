"""`hominem reward train / test-inference / probe` through click, on planted labels in a temp home."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from hominem_pipeline.cli import main
from hominem_pipeline.manifold import load_manifold
from hominem_pipeline.settings import Settings
from hominem_pipeline_tests.reward_data import KEYWORD, constant_rows, make_home, planted_rows, write_jsonl


def test_reward_cli_train_test_inference_and_probe(tmp_path: Path, monkeypatch) -> None:
    home = make_home(tmp_path)
    monkeypatch.setenv("HOMINEM_HOME", str(home))
    monkeypatch.setenv("HOMINEM_CONFIG_DIR", str(home / "config"))
    settings = Settings()
    manifold = load_manifold(settings.manifold_path)
    runner = CliRunner()

    missing = runner.invoke(main, ["reward", "probe", "--prompt", "p", "--response", "r"])
    assert missing.exit_code != 0 and "no reward model" in missing.output

    write_jsonl(settings.reward_samples_export, planted_rows(manifold))
    trained = runner.invoke(main, ["reward", "train"])
    assert trained.exit_code == 0, trained.output
    assert "head empathy" in trained.stderr and "alpha=" in trained.stderr  # per-head training loss log
    empathy_row = next(line for line in trained.stdout.splitlines() if line.startswith("empathy "))
    mae, baseline = (float(x) for x in empathy_row.split()[2:4])
    assert mae < baseline
    assert "length bias" in trained.stdout and "(accepted as current)" in trained.stdout

    shown = runner.invoke(main, ["reward", "test-inference", "-n", "2"])
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.count("--- lab-") == 2
    assert "predicted" in shown.stdout and "teacher" in shown.stdout
    assert any(line.strip().startswith("empathy") for line in shown.stdout.splitlines())

    probe = runner.invoke(
        main,
        [
            "reward",
            "probe",
            "--prompt",
            "I failed my driving test again.",
            "--response",
            f"{KEYWORD} It's hard to keep trying.",
            "--response",
            "Book another test.",
        ],
    )
    assert probe.exit_code == 0, probe.output
    assert "[A]" in probe.stdout and "[B]" in probe.stdout and "safety_score=" in probe.stdout
    # The gate's weights for this prompt (no human pairs: the manifold's fixed, equal weights) and P(A > B).
    gate_line = next(line for line in probe.stdout.splitlines() if line.startswith("gate ("))
    assert "empathy=0.14" in gate_line and "harm_avoidance=0.14" in gate_line
    assert "P(A preferred over B) = " in probe.stdout
    diff_lines = probe.stdout.split("differences between candidates")[1].splitlines()[1:]
    # The planted dimension differs most, is highlighted, and the kind reply is highest on it.
    assert diff_lines[0].startswith(" * empathy") and "highest A" in diff_lines[0]

    # A model that cannot beat the baseline is published but not made current; the CLI says so.
    write_jsonl(settings.reward_samples_export, constant_rows(manifold))
    flat = runner.invoke(main, ["reward", "train"])
    assert flat.exit_code == 0 and "NOT accepted" in flat.stdout
