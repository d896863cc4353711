"""Shared fixtures: a tiny model built locally from a config, and an isolated hominem home per test."""

from __future__ import annotations

import json
import os
import shutil
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from hominem_pipeline.models import build_tiny_model, embedded_gguf_path
from hominem_pipeline.settings import REPO_ROOT
from hominem_pipeline_tests.browser_fixtures import driver  # noqa: F401  (the headless Chromium fixture of the browser tests)

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


@pytest.fixture(scope="session")
def smollm2_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real SmolLM2 tokenizer (chat template included), read once from the packaged GGUF."""
    from transformers import AutoTokenizer

    gguf = embedded_gguf_path("smollm2-135m-instruct")
    out = tmp_path_factory.mktemp("smollm2-tokenizer")
    AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(str(out))
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, smollm2_tokenizer_dir: Path) -> Path:
    """A tiny random Llama (hidden 64, 2 layers) with the SmolLM2 tokenizer. Builds in well under a second."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"), str(smollm2_tokenizer_dir))


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _dump_toml(data: dict, prefix: str = "") -> str:
    scalars = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    out = ([f"[{prefix}]"] if prefix and scalars else []) + scalars
    for k, v in data.items():
        if isinstance(v, dict):
            out.append(_dump_toml(v, f"{prefix}.{k}" if prefix else k))
    return "\n".join(out) + "\n"


def write_config(config_dir: Path, *, inference: dict | None = None, pipeline: dict | None = None) -> None:
    """Set dotted keys (e.g. "teacher.sampling.max_new_tokens") in the copied TOML config files."""
    for name, updates in (("inference.toml", inference), ("hominem.toml", pipeline)):
        if not updates:
            continue
        path = config_dir / name
        data = tomllib.loads(path.read_text())
        for key, value in updates.items():
            *parents, leaf = key.split(".")
            node = data
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        path.write_text(_dump_toml(data))


@pytest.fixture
def hominem_home(tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh hominem home: the repository's config, pointed at the tiny model and sized for tests."""
    home = tmp_path / "home"
    shutil.copytree(REPO_ROOT / "config", home / "config")
    write_config(
        home / "config",
        inference={
            "teacher.model": str(tiny_model_dir),
            "student.model": str(tiny_model_dir),
            "teacher.sampling.max_new_tokens": 12,
        },
        pipeline={
            "generation.prompts_limit": 5,
            "generation.candidates_per_prompt": 2,
            "generation.batch_size": 4,
            "labeling.rationale_max_new_tokens": 6,
        },
    )
    monkeypatch.setenv("HOMINEM_HOME", str(home))
    monkeypatch.setenv("HOMINEM_CONFIG_DIR", str(home / "config"))
    return home


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def openai_server_url(tmp_path_factory: pytest.TempPathFactory):
    """A real OpenAI-compatible server (llama-cpp-python) on loopback, serving the packaged SmolLM2 GGUF."""
    import subprocess
    import sys
    import time
    import urllib.request

    port = _free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    gguf = embedded_gguf_path("smollm2-135m-instruct")
    with log.open("w") as fh:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(gguf),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_ctx",
                "2048",
                "--n_threads",
                "2",
                "--seed",
                "7",
            ],
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/models", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"llama_cpp.server did not start:\n{log.read_text()[-2000:]}"
                    ) from None
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(autouse=True)
def _no_dagster_defs_state_between_tests() -> Iterator[None]:
    """Dagster (seen on 1.13) keeps the defs-state storage of the last instance a run or a schedule context used
    in a context variable that outlives the instance (even when the context is entered and left); a later
    test that reaches it fails with "Attempted to resolve undefined DagsterInstance weakref", depending on
    test order and garbage collection. Each test starts without it and leaves none behind."""
    try:
        from dagster._core.storage.defs_state.base import _current_storage
    except ImportError:  # another Dagster layout: nothing to reset
        yield
        return
    token = _current_storage.set(None)
    yield
    _current_storage.reset(token)
