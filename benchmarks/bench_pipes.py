"""What running a step through Dagster Pipes costs: `dual_lora` on the tiny model (2 steps), materialised
in-process (baseline) and with `launcher: pipes` (a subprocess through PipesSubprocessClient), alternately,
each on a fresh copy of the same home, `--repeats` times; the table shows median seconds of the whole
materialisation. The load average is printed before and after.

    PYTHONPATH=. python benchmarks/bench_pipes.py --repeats 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path


def _home(root: Path) -> Path:
    from transformers import AutoTokenizer

    from hominem_pipeline.models import build_tiny_model, embedded_gguf_path
    from hominem_pipeline.settings import REPO_ROOT
    from hominem_pipeline_tests.conftest import write_config

    gguf = embedded_gguf_path("smollm2-135m-instruct")
    tok_dir = root / "tokenizer"
    AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(str(tok_dir))
    model = build_tiny_model(root / "tiny", str(tok_dir))
    home = root / "home"
    shutil.copytree(REPO_ROOT / "config", home / "config")
    write_config(home / "config", inference={"teacher.model": str(model), "student.model": str(model)})
    os.environ["HOMINEM_HOME"], os.environ["HOMINEM_CONFIG_DIR"] = str(home), str(home / "config")
    from hominem_pipeline_tests.test_training_faces import _seed_data

    _seed_data(home, sft_in_store=True)
    return home


def _materialize(home: Path, launcher: str) -> float:
    import dagster as dg

    from hominem_pipeline.defs.assets.training import dual_lora
    from hominem_pipeline.defs.resources import HominemResource

    os.environ["HOMINEM_HOME"], os.environ["HOMINEM_CONFIG_DIR"] = str(home), str(home / "config")
    t0 = time.perf_counter()
    result = dg.materialize(
        [dual_lora],
        resources={"hominem": HominemResource(home=str(home), config_dir=str(home / "config"))},
        run_config={"ops": {"dual_lora": {"config": {"max_steps": 2, "launcher": launcher}}}},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        template = _home(Path(tmp))
        times: dict[str, list[float]] = {"in_process": [], "pipes": []}
        _materialize(_fresh(template, "warmup"), "in_process")  # imports and caches, not measured
        for i in range(args.repeats):
            for launcher in times:
                times[launcher].append(_materialize(_fresh(template, f"{launcher}-{i}"), launcher))
    print(f"{'launcher':12s} {'median s':>9s}  runs")
    for launcher, ts in times.items():
        print(f"{launcher:12s} {statistics.median(ts):9.2f}  {', '.join(f'{t:.2f}' for t in ts)}")
    base, piped = statistics.median(times["in_process"]), statistics.median(times["pipes"])
    print(f"pipes - in_process: {piped - base:+.2f} s per dual_lora step")
    print(f"load average after: {os.getloadavg()}")


def _fresh(template: Path, name: str) -> Path:
    home = template.parent / name
    shutil.copytree(template, home)
    # The resource names this copy; the config's relative paths resolve against it.
    return home


if __name__ == "__main__":
    main()
