"""`hominem serve` (the chat server) and `hominem use PROFILE` (switch what it serves, no restart)."""

from __future__ import annotations

import logging

import click

from hominem_pipeline.settings import ConfigError, Settings


@click.command()
@click.option("--host", default=None, help="Address to bind (default: server.host in config/serving.toml)")
@click.option("--port", default=None, type=int, help="Port (default: server.port in config/serving.toml)")
def serve(host: str | None, port: int | None) -> None:
    """Serve the chat page, /generate /reward /feedback, the OpenAI-compatible /v1 API and /health."""
    from hominem_pipeline.serving.server import serve as run_server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        run_server(Settings(), host, port)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


@click.command()
@click.argument("profile", required=False)
def use(profile: str | None) -> None:
    """Switch the served profile (config/serving.toml [profiles.*]); without PROFILE, list them."""
    from hominem_pipeline.serving.config import active_profile_name, load_serving_config, use_profile

    settings = Settings()
    try:
        config = load_serving_config(settings)
        if profile is None:
            active = active_profile_name(settings, config)
            for name, p in config.profiles.items():
                mark = "*" if name == active else " "
                click.echo(
                    f"{mark} {name:16s} base={p.base_model} adapter={p.adapter} reward_model={p.reward_model}"
                )
            return
        p = use_profile(settings, profile)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"serving profile {profile}: base={p.base_model} adapter={p.adapter} reward_model={p.reward_model}"
        " (a running server switches within server.watch_interval_s)"
    )


def register(main: click.Group) -> None:
    main.add_command(serve)
    main.add_command(use)
