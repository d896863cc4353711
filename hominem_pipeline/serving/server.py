"""Starting the server: the door's rules (loopback by default; any other address only with an API key),
loading the selected model set, following the pointers, and uvicorn, in the foreground (`hominem serve`)
or in a background thread (tests, benchmarks)."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import uvicorn

from hominem_pipeline.events.log import EventLog
from hominem_pipeline.extraction.config import events_dir
from hominem_pipeline.serving.app import create_app, is_loopback
from hominem_pipeline.serving.config import load_serving_config
from hominem_pipeline.serving.engine import Engine
from hominem_pipeline.serving.service import ChatService
from hominem_pipeline.settings import ConfigError, Settings

log = logging.getLogger(__name__)
# uvicorn closes idle keep-alive connections after 5 s by default; a client that sends its next request
# just then gets a reset (seen under 50 concurrent clients on a loaded box). Local clients idle longer.
KEEP_ALIVE_S = 60


def api_key_for(settings: Settings, host: str) -> tuple[str | None, bool]:
    """(the key or None, whether every endpoint needs it). Refuses a non-loopback host without a key."""
    env = load_serving_config(settings).server.api_key_env
    key = os.environ.get(env) or None
    off_loopback = not is_loopback(host)
    if off_loopback and not key:
        raise ConfigError(
            f"binding to {host} (not loopback) needs an API key: set the environment variable "
            f"{env} (named by server.api_key_env in config/serving.toml)"
        )
    return key, off_loopback


@dataclass
class Built:
    app: Any
    engine: Engine
    service: ChatService


def build(settings: Settings, host: str, watch: bool = True, watch_interval_s: float | None = None) -> Built:
    key, require = api_key_for(settings, host)  # before loading anything: a refused start is quick
    engine = Engine(settings)
    engine.start()
    if watch:
        engine.watch(watch_interval_s)
    service = ChatService(engine, EventLog(events_dir(settings)))
    return Built(create_app(service, key, require), engine, service)


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    cfg = load_serving_config(settings).server
    host, port = host or cfg.host, cfg.port if port is None else port
    built = build(settings, host)
    log.info("serving %s on http://%s:%d", built.engine.serving.versions(), host, port)
    try:
        uvicorn.run(built.app, host=host, port=port, log_level="info", timeout_keep_alive=KEEP_ALIVE_S)
    finally:
        built.engine.stop()


class BackgroundServer:
    """uvicorn in a thread on loopback, for tests and benchmarks: `with BackgroundServer(built) as url:`."""

    def __init__(self, built: Built, host: str = "127.0.0.1", port: int = 0):
        config = uvicorn.Config(
            built.app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            timeout_keep_alive=KEEP_ALIVE_S,
        )
        self.server = uvicorn.Server(config)
        self.built = built
        self.thread = threading.Thread(target=self.server.run, name="hominem-uvicorn", daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        sock = self.server.servers[0].sockets[0]
        host, port = sock.getsockname()[:2]
        return f"http://{host}:{port}"

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.built.engine.stop()
