"""`hominem simulate`: a persona (examples/personas/*.yaml) talks to the real chat server over HTTP for
simulated weeks while the schedules and the retraining sensor run on the simulated clock against a real
Dagster instance; each week the persona's own rule measures the served adapter against the base model
(docs/SIMULATION.md). The face only wires the parts: the loop is `simulation.run`, the daemon's part is
`defs.daemon`."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import click

from hominem_pipeline.settings import ConfigError, Settings

DEFAULT_PERSONA = "examples/personas/concise.yaml"


def _echo(line: str) -> None:
    """A week's row as soon as it is measured, also when stdout is a file or a pipe."""
    click.echo(line)
    sys.stdout.flush()


@click.command()
@click.option(
    "--persona",
    "persona_path",
    default=DEFAULT_PERSONA,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The simulated user (a persona YAML file)",
)
@click.option(
    "--weeks",
    type=click.IntRange(1, 52),
    default=None,
    help="Simulated weeks (default: weeks in config/simulation.toml)",
)
@click.option(
    "--home",
    type=click.Path(file_okay=False),
    default=None,
    help="The simulation's own hominem home (default: data/simulation/<persona>)",
)
@click.option(
    "--from-home",
    "from_home",
    type=click.Path(file_okay=False, exists=True),
    default=None,
    help="Start from this home's data and artifacts (default: the project's, as `make run` left it)",
)
@click.option("--fresh", is_flag=True, help="Delete the simulation home first and start over")
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write the plot here (it is always written under the home's artifacts/plots/)",
)
def simulate(
    persona_path: str,
    weeks: int | None,
    home: str | None,
    from_home: str | None,
    fresh: bool,
    plot_path: str | None,
) -> None:
    """Play a simulated user against the real server, with retraining, gates and swaps on their own."""
    from hominem_pipeline import clock as clock_mod
    from hominem_pipeline.records import content_hash
    from hominem_pipeline.simulation.home import load_simulation_config, prepare_home
    from hominem_pipeline.simulation.persona import load_persona

    project = Settings()
    start = Settings(home=from_home, config_dir=Path(from_home) / "config") if from_home else project
    try:
        persona = load_persona(persona_path)
        cfg = load_simulation_config(project.config_dir)
        sim_home = Path(home) if home else project.data_dir / "simulation" / persona.name
        persona_hash = content_hash("persona", Path(persona_path).read_text())
        settings = prepare_home(sim_home, project, start, persona_hash, fresh)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    weeks = weeks or cfg.weeks
    # Everything below reads the simulation home: the definitions read HOMINEM_HOME / HOMINEM_CONFIG_DIR
    # when they load (schedule times) and when a step runs, so they are imported only after this.
    os.environ["HOMINEM_HOME"] = str(settings.home)
    os.environ["HOMINEM_CONFIG_DIR"] = str(settings.config_dir)
    os.environ["DAGSTER_HOME"] = str(settings.home / "dagster")
    (settings.home / "dagster").mkdir(exist_ok=True)
    instance_yaml = settings.home / "dagster" / "dagster.yaml"
    if not instance_yaml.exists():  # a local instance (SQLite under DAGSTER_HOME), said explicitly. Runs
        # execute in this process, beside the server's threads: capturing their stdout per step (the
        # default compute log manager) gains nothing here and its clean-up waits out a 60 s timeout.
        instance_yaml.write_text(
            "telemetry:\n  enabled: false\ncompute_logs:\n  module: dagster._core.storage.noop_compute_log_manager\n"
            "  class: NoOpComputeLogManager\n"
        )

    import dagster as dg

    from hominem_pipeline.adapters import model_name_for_spec
    from hominem_pipeline.definitions import defs
    from hominem_pipeline.defs.daemon import InProcessDaemon
    from hominem_pipeline.defs.resources import HominemResource
    from hominem_pipeline.health.gate import read_decisions
    from hominem_pipeline.health.report import read_history
    from hominem_pipeline.serving.server import BackgroundServer, build
    from hominem_pipeline.simulation import report as rep
    from hominem_pipeline.simulation.measure import Meter
    from hominem_pipeline.simulation.run import simulate as run_simulation
    from hominem_pipeline.simulation.run import start_of_simulation

    model_name = model_name_for_spec(settings.inference.student.model)

    def read_health() -> tuple[list[dict], list[dict]]:
        return read_history(settings.artifacts_dir, model_name), read_decisions(
            settings.artifacts_dir, model_name
        )

    t0 = time.perf_counter()
    instance = dg.DagsterInstance.get()
    resources = {"hominem": HominemResource(home=str(settings.home), config_dir=str(settings.config_dir))}
    daemon = InProcessDaemon(defs, instance, resources)
    click.echo(
        f"simulation home {settings.home} (Dagster instance: DAGSTER_HOME={settings.home / 'dagster'})"
    )
    click.echo(rep.header())
    sim_clock = clock_mod.SimulatedClock(start_of_simulation(weeks))
    try:
        with clock_mod.installed(sim_clock), BackgroundServer(build(settings, "127.0.0.1")) as url:
            meter = Meter(settings, persona, cfg.measure_max_new_tokens)
            result = run_simulation(
                persona,
                url,
                daemon,
                meter,
                sim_clock,
                weeks,
                read_health,
                meter.current_version,
                on_week=lambda row: _echo(rep.row_line(row)),
            )
    finally:
        daemon.close()
    wall = time.perf_counter() - t0
    text = rep.render(result)
    out_json = settings.home / "simulation_report.json"
    out_json.write_text(json.dumps({**asdict(result), "wall_s": round(wall, 1)}, indent=2, default=str))
    plot = rep.plot(result, settings.artifacts_dir / "plots" / f"simulation_{persona.name}.png")
    if plot_path:
        rep.plot(result, Path(plot_path))
    last = result.weeks[-1]
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key="simulation_report",
            description=f"hominem simulate: persona {persona.name}, {weeks} simulated weeks",
            metadata={
                "persona": persona.name,
                "weeks": weeks,
                "wall_s": round(wall, 1),
                "win_rate": last.measure.get("win_rate"),
                "fact_nll_change": last.measure.get("fact_nll_change"),
                "general_nll_change": last.measure.get("general_nll_change"),
                "failed_requests": result.failed_requests,
                "swaps": sum(w.swaps for w in result.weeks),
                "report": dg.MetadataValue.md(f"```\n{text}\n```"),
                "plot": dg.MetadataValue.path(str(plot)),
                "json": dg.MetadataValue.path(str(out_json)),
            },
        )
    )
    click.echo(text.split("\n", 2 + len(result.weeks))[-1])  # decisions, failures and goals after the rows
    click.echo(f"report: {out_json}\nplot: {plot}\nwall time: {wall:.0f} s for {weeks} simulated weeks")
