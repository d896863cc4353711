"""The scale-out instance profile (dagster.postgres.yaml) against a real PostgreSQL started here on loopback
in a temporary folder: run, event-log and schedule storage in Postgres, the queued run coordinator, the
`duckdb` pool limit, and the retraining steps (dual_lora -> lora_eval -> adapter_promotion on the tiny
model) recorded there and visible from a second instance.

Skipped, with the reason, where no PostgreSQL server binaries are installed (Debian: `apt-get install
postgresql`), or where the tests run as root and there is no `postgres` user to run the server as
(PostgreSQL refuses to run as root). Not forced under CI=true: the CI image is not known to carry them.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from hominem_pipeline.adapters import AdapterRegistry, model_name_for_spec
from hominem_pipeline.defs.assets.evaluation import EVALUATION_ASSETS, EVALUATION_CHECKS
from hominem_pipeline.defs.assets.training import dual_lora
from hominem_pipeline.defs.health import HEALTH_ASSETS, HEALTH_CHECKS
from hominem_pipeline.defs.resources import HominemResource
from hominem_pipeline.settings import REPO_ROOT
from hominem_pipeline_tests.test_lora_eval_assets import _small_eval_config
from hominem_pipeline_tests.test_training_faces import _seed_data

URL_ENV = "HOMINEM_DAGSTER_PG_URL"


def _pg_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(versions[-1]).parent if versions else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server on 127.0.0.1 (trust auth, no fsync: a throwaway test cluster) and a `dagster`
    database; stopped afterwards."""
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (initdb) on this machine: apt-get install postgresql")
    run_as: list[str] = []
    # Not under pytest's temp root: as root that is private to root, and the server runs as `postgres`.
    root = Path(tempfile.mkdtemp(prefix="hominem-pg-"))
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root)
            pytest.skip("running as root and no `postgres` user to run the server as")
        run_as = ["runuser", "-u", "postgres", "--"]
        os.chown(root, user.pw_uid, user.pw_gid)
    data, port = root / "data", _free_port()
    try:
        _start(run_as, bindir, data, port, root)
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL did not start: {exc.stderr or exc.stdout}") from exc
    try:
        import psycopg2

        con = psycopg2.connect(host="127.0.0.1", port=port, user="hominem", dbname="postgres")
        con.autocommit = True
        con.cursor().execute("CREATE DATABASE dagster")
        con.close()
        yield f"postgresql+psycopg2://hominem@127.0.0.1:{port}/dagster"
    finally:
        subprocess.run(
            [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True
        )
        shutil.rmtree(root, ignore_errors=True)


def _start(run_as: list[str], bindir: Path, data: Path, port: int, root: Path) -> None:
    subprocess.run(
        [
            *run_as,
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-A",
            "trust",
            "-U",
            "hominem",
            "--no-sync",
            "-E",
            "UTF8",
        ],
        check=True,
        capture_output=True,
    )
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off"
    subprocess.run(
        [
            *run_as,
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-w",
            "-l",
            str(root / "server.log"),
            "start",
        ],
        check=True,
        capture_output=True,
    )


@pytest.fixture
def postgres_instance(postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A DAGSTER_HOME holding the repository's dagster.postgres.yaml, unchanged."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.postgres.yaml", home / "dagster.yaml")
    monkeypatch.setenv(URL_ENV, postgres_url)
    return home


def test_the_profile_puts_runs_events_and_schedules_in_postgres(postgres_instance: Path) -> None:
    with dg.DagsterInstance.from_config(str(postgres_instance)) as instance:
        kinds = {
            type(s).__name__
            for s in (instance.run_storage, instance.event_log_storage, instance.schedule_storage)
        }
        assert kinds == {"PostgresRunStorage", "PostgresEventLogStorage", "PostgresScheduleStorage"}
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        config = instance.get_concurrency_config()
        assert config.pool_config.default_pool_limit == 1
        assert config.run_queue_config.max_concurrent_runs == 4
        assert instance.event_log_storage.get_concurrency_info("duckdb").limit == 1


def test_retraining_steps_run_against_the_postgres_instance(
    postgres_instance: Path, hominem_home: Path, tiny_model_dir: Path
) -> None:
    _seed_data(hominem_home, sft_in_store=True)
    _small_eval_config(hominem_home / "config")
    resources = {"hominem": HominemResource(home=str(hominem_home), config_dir=str(hominem_home / "config"))}
    with dg.DagsterInstance.from_config(str(postgres_instance)) as instance:
        result = dg.materialize(
            [dual_lora, *EVALUATION_ASSETS, *EVALUATION_CHECKS, *HEALTH_ASSETS, *HEALTH_CHECKS],
            resources=resources,
            run_config={"ops": {"dual_lora": {"config": {"max_steps": 2}}}},
            instance=instance,
            raise_on_error=False,
        )
        run_id = result.run_id
    registry = AdapterRegistry(hominem_home / "artifacts", model_name_for_spec(str(tiny_model_dir)))
    # A second instance from the same profile reads it all back from Postgres.
    with dg.DagsterInstance.from_config(str(postgres_instance)) as reader:
        run = reader.get_run_by_id(run_id)
        assert run is not None and run.is_finished
        trained = reader.get_latest_materialization_event(dg.AssetKey("dual_lora"))
        evaluated = reader.get_latest_materialization_event(dg.AssetKey("lora_eval"))
        assert trained is not None and trained.run_id == run_id
        assert evaluated is not None and evaluated.run_id == run_id
        version = trained.asset_materialization.metadata["version"].value
        assert evaluated.asset_materialization.metadata["version"].value == version
        [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "lora_no_regression"]
        promoted = reader.get_latest_materialization_event(dg.AssetKey("adapter_promotion"))
        # Whether 2 steps on a random tiny model pass the gate (and the RHI's consolidation threshold) is
        # the model's business; each outcome is handled: a pass promotes (recorded in Postgres), an RHI
        # hold and a failed gate each record `promoted: false` with the reason; `current` stays.
        assert result.success and promoted is not None and promoted.run_id == run_id
        meta = promoted.asset_materialization.metadata
        if meta["promoted"].value:
            assert check.passed and registry.pointer().target == version
        else:
            why = "RHI" if check.passed else "the evaluation failed"
            assert why in meta["reason"].value and registry.pointer().target is None
