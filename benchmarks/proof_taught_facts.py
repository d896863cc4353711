"""Proof that one `make run` cycle teaches the sample conversations' facts, on the real SmolLM2-135M.

Runs what `make run` runs for the memory channel, in process and in a fresh temporary home: import
`examples/conversations/`, ingest, extract SFT rows (knowledge updates by correction cues, each stored with
its held-out probes: the fact in new phrasings), one dual-channel training cycle with
`config/training/lora_dual.yaml` (plus `--set` overrides), then `lora_eval`'s evaluation. Prints the two
figures `hominem summary` prints: the taught facts' NLL in new phrasings vs the base model, and the
general set's drift. The reward channel's data (preference pairs, reward model) and the converted models
are taken from `--from-home` (a home where `make run` or `dagster asset materialize` ran), so the cycle
sees the same preference pairs as `make run`.

    PYTHONPATH=$PWD python benchmarks/proof_taught_facts.py --from-home . [--set max_steps=24 ...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]


def _value(text: str) -> object:
    import yaml

    return yaml.safe_load(text)


def _prepare_home(home: Path, source: Path) -> None:
    shutil.copytree(REPO / "config", home / "config")
    (home / "artifacts").mkdir(parents=True)
    if (source / "artifacts" / "models").is_dir():
        (home / "artifacts" / "models").symlink_to((source / "artifacts" / "models").resolve())
    if (source / "artifacts" / "reward_model").is_dir():
        shutil.copytree(source / "artifacts" / "reward_model", home / "artifacts" / "reward_model")
    prefs = source / "data" / "preferences" / "preferences.jsonl"
    if prefs.is_file():
        (home / "data" / "preferences").mkdir(parents=True)
        shutil.copy(prefs, home / "data" / "preferences" / "preferences.jsonl")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--from-home", type=Path, default=REPO, help="home with preference pairs, reward model, models"
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="training config override, dotted keys (e.g. lora.rank=16)",
    )
    ap.add_argument("--keep", type=Path, help="keep the temporary home here instead of deleting it")
    ap.add_argument(
        "--with-generation",
        action="store_true",
        help="keep lora_eval's greedy outputs (only the reward model reads them; off: 1 token of 1 prompt)",
    )
    ap.add_argument(
        "--stand-in-preferences",
        type=int,
        default=0,
        metavar="N",
        help="when --from-home has no preference pairs: N warm-vs-cold pairs (proof_it_learns.py's)",
    )
    args = ap.parse_args()
    overrides = {k: _value(v) for k, v in (s.split("=", 1) for s in args.set)}

    tmp = tempfile.mkdtemp(prefix="hominem-proof-")
    home = Path(tmp) / "home"
    _prepare_home(home, args.from_home.resolve())
    if not args.with_generation:
        import yaml

        eval_cfg = home / "config" / "eval" / "lora_eval.yaml"
        cfg = yaml.safe_load(eval_cfg.read_text())
        cfg["generation"] = {**cfg.get("generation", {}), "prompts_limit": 1, "max_new_tokens": 1}
        eval_cfg.write_text(yaml.safe_dump(cfg))
    os.environ["HOMINEM_HOME"] = str(home)
    os.environ.pop("HOMINEM_CONFIG_DIR", None)

    from hominem_pipeline.evaluation.evaluate import evaluate_published
    from hominem_pipeline.evaluation.report import summary_line
    from hominem_pipeline.events.importers import import_conversations
    from hominem_pipeline.events.log import EventLog
    from hominem_pipeline.extraction.channels import build_sft_pairs, ingest_days
    from hominem_pipeline.extraction.config import events_dir
    from hominem_pipeline.settings import Settings
    from hominem_pipeline.store import TrainingDatabase
    from hominem_pipeline.training import load_config, run_training

    settings = Settings()
    prefs_path = settings.data_dir / "preferences" / "preferences.jsonl"
    if not prefs_path.is_file() and args.stand_in_preferences:
        from benchmarks.proof_it_learns import SITUATIONS, warm_over_cold
        from hominem_pipeline.atomic import write_jsonl_atomic

        pairs = warm_over_cold(SITUATIONS[: args.stand_in_preferences])
        write_jsonl_atomic(prefs_path, [p.model_dump(mode="json") for p in pairs])
        print(f"preference pairs: {len(pairs)} stand-ins (no preference export under --from-home)")
    log = EventLog(events_dir(settings))
    for name in ("sample_conversations.jsonl", "lmstudio_conversation.json"):
        import_conversations(REPO / "examples" / "conversations" / name, log)
    ingest_days(settings, [datetime.now(UTC).date()])
    t0 = time.perf_counter()
    sft = build_sft_pairs(settings)
    t_sft = time.perf_counter() - t0
    config = load_config(settings, None, overrides)
    t0 = time.perf_counter()
    with TrainingDatabase(settings.database_path) as db:
        result = run_training(settings, config, db=db)
    t_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    report, path = evaluate_published(settings, result.path.parent.name, result.version)
    t_eval = time.perf_counter() - t0

    m = report.flat_metrics()
    base, cand = report.arms["base"], report.arms["candidate"]
    contributions = result.metadata["channel_contributions"]
    print(
        f"overrides: {overrides or 'none'}; steps {result.metadata['steps']}; "
        f"SFT rows {sft.by_source}; trained on {len(result.metadata['trained_sft_pair_ids'])} SFT rows, "
        f"{contributions['preference']['examples_seen']} preference pairs"
    )
    print(f"time: extraction {t_sft:.0f} s, training {t_train:.0f} s, evaluation {t_eval:.0f} s")
    print(f"{'measure':44s} {'base':>8s} {'adapter':>8s} {'change':>8s}")
    for label, b, a in (
        ("taught facts, new phrasings NLL/token", base.knowledge_nll, cand.knowledge_nll),
        ("taught facts, training phrasing NLL/token", base.knowledge_taught_nll, cand.knowledge_taught_nll),
        ("general set NLL/token (drift)", base.general_nll, cand.general_nll),
    ):
        if a is not None and b is not None:
            print(f"{label:44s} {b:8.3f} {a:8.3f} {(a - b) / b:+8.1%}")
    print(
        f"scenario margin change {m['delta.scenario_margin']:+.3f}; gate {'passed' if report.passed else 'FAILED'}"
    )
    print(f"summary line: {summary_line(report)}")
    print(f"report: {path}")
    if args.keep:
        shutil.move(str(home), str(args.keep))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
