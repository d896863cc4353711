"""SFT rows are consumed only by an accepted adapter: a killed or unpromoted cycle leaves its rows for the
next cycle; promotion marks the rows the new `current` trained on; rollback hands them back."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from hominem_pipeline.adapters import AdapterRegistry
from hominem_pipeline.cli import main
from hominem_pipeline.records import SFTPair
from hominem_pipeline.settings import Settings
from hominem_pipeline.store import TrainingDatabase
from hominem_pipeline.store.consumption import trained_by
from hominem_pipeline.training import load_config, run_training
from hominem_pipeline.training.promotion import PromotionRefused, promote


class Killed(RuntimeError):
    pass


def _facts(names: list[tuple[str, str]]) -> list[SFTPair]:
    return [
        SFTPair(instruction=f"Where does {n} live?", response=f"{n} lives in {c}.", source="knowledge_update")
        for n, c in names
    ]


def _cycle(settings: Settings, db: TrainingDatabase, progress=None):  # noqa: ANN001, ANN202
    config = load_config(
        settings,
        overrides={
            "max_steps": 2,
            "sft_batch_size": 4,
            "diversity": {"enabled": False},
            "probe": {"interval": 0},
        },
    )
    return run_training(settings, config, db=db, progress=progress)


def _unused(db: TrainingDatabase) -> set[str]:
    return {p.pair_id for p in db.get_sft_pairs(is_used=False)}


def test_rows_are_used_only_once_an_adapter_that_trained_on_them_is_current(
    hominem_home: Path, tiny_model_dir: Path
) -> None:
    settings = Settings()
    registry = AdapterRegistry(settings.artifacts_dir, tiny_model_dir.name)
    first = _facts([("Ada", "Lisbon"), ("Bo", "Oslo"), ("Cy", "Quito"), ("Di", "Hanoi")])
    first_ids = {f.pair_id for f in first}
    with TrainingDatabase(settings.database_path) as db:
        db.insert_sft_pairs(first)

        # A cycle killed mid-way publishes nothing and consumes nothing.
        def kill(step: int, total: int, row: dict) -> None:
            if step == 1:
                raise Killed("stopped after the first step")

        with pytest.raises(Killed):
            _cycle(settings, db, progress=kill)
        assert registry.version_names() == [] and _unused(db) == first_ids

        # A cycle whose adapter is not promoted (no passing evaluation): its rows stay available ...
        rejected = _cycle(settings, db)
        assert trained_by(db, registry.model_name, rejected.version) == first_ids
        with pytest.raises(PromotionRefused, match="no evaluation report"):
            promote(registry, rejected.version, db=db)
        assert _unused(db) == first_ids and registry.pointer().target is None
        # ... and the next cycle trains on the same rows again.
        again = _cycle(settings, db)
        assert trained_by(db, registry.model_name, again.version) == first_ids

        # Promotion marks what the new `current` trained on; the next cycle no longer sees those rows.
        move = promote(registry, again.version, db=db, force=True)
        assert move.marked_used == 4 and _unused(db) == set()
        assert {p.cycle for p in db.get_sft_pairs(is_used=True)} == {1}
        second = _facts([("Eve", "Accra"), ("Fay", "Lima")])
        db.insert_sft_pairs(second)
        later = _cycle(settings, db)
        assert later.metadata["continued_from"] == again.version and later.metadata["cycle"] == 2
        assert trained_by(db, registry.model_name, later.version) == {f.pair_id for f in second}
        promote(registry, later.version, db=db, force=True)
        assert _unused(db) == set()

    # Rollback (the CLI face) hands back what the rolled-back adapter alone trained on.
    runner = CliRunner()
    out = runner.invoke(main, ["adapters", "rollback", "--model", registry.model_name])
    assert out.exit_code == 0, out.output
    assert f"current -> {again.version}" in out.output and "handed back: 2" in out.output
    with TrainingDatabase(settings.database_path) as db:
        assert _unused(db) == {f.pair_id for f in second}
        # The CLI refuses an unevaluated version unless forced, naming the missing report.
        refused = runner.invoke(main, ["adapters", "promote", later.version, "--model", registry.model_name])
    assert (
        refused.exit_code != 0
        and "no evaluation report" in refused.output
        and later.version in refused.output
    )
    forced = runner.invoke(
        main, ["adapters", "promote", later.version, "--force", "--model", registry.model_name]
    )
    assert forced.exit_code == 0, forced.output
    assert "marked used: 2" in forced.output and "forced:" in forced.output
    with TrainingDatabase(settings.database_path) as db:
        assert _unused(db) == set()
