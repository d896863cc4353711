"""What knowledge consolidation buys and costs, on a real cycle of a simulation home (docs/TRAINING.md).

The newest adapter of HOME that ran knowledge consolidation is re-run from its parent with only the
memory-only steps (`training.trainer.consolidate_knowledge`, the cycle's own knowledge rows and
weights), under several settings. Each variant is measured as `lora_eval` measures a candidate
(`evaluation.measure.measure`): the NLL of the facts in held-out phrasings, the general-set NLL and the
regression set's scenario margins (NLL(failure) - NLL(balanced); the gate refuses a fall > 0.10 in any
scenario). Rows: the parent itself (0 steps, the baseline), the published candidate as trained (its
blended steps and its consolidation), then the variants. The question it answers: is there a setting of
this stage that learns the facts (NLL at least 30% below) without costing a scenario margin 0.10?

Usage: PYTHONPATH=. python benchmarks/knowledge_consolidation_tradeoff.py HOME
(HOME: a `hominem simulate` home whose run trained on corrections, e.g. data/simulation/concise).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

# (label, steps, learning-rate factor, equal weights)
VARIANTS = [
    ("16 steps (default)", 16, 1.0, False),
    ("8 steps", 8, 1.0, False),
    ("4 steps", 4, 1.0, False),
    ("16 steps, half lr", 16, 0.5, False),
    ("16 steps, equal weights", 16, 1.0, True),
    ("8 steps, equal weights", 8, 1.0, True),
]


def newest_consolidated(root: Path, version: str | None = None) -> tuple[str, str | None, dict[str, Any]]:
    """The newest adapter under `root` (or `version`) whose cycle ran knowledge consolidation on some rows,
    and the adapter it continued from (None: the cycle started from the base model)."""
    found = []
    for meta_path in root.glob(f"{version or '*'}/METADATA.json"):
        meta = json.loads(meta_path.read_text())
        if (meta.get("knowledge_consolidation") or {}).get("rows"):
            found.append(
                (meta.get("created_at", ""), meta_path.parent.name, meta.get("continued_from"), meta)
            )
    if not found:
        raise SystemExit(f"no adapter under {root} ({version or 'any version'}) ran knowledge consolidation")
    _, version, parent, meta = max(found)
    return version, parent, meta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("home")
    ap.add_argument("--version", help="the cycle to re-run (default: the newest that ran consolidation)")
    args = ap.parse_args()
    os.environ["HOMINEM_HOME"] = args.home
    os.environ["HOMINEM_CONFIG_DIR"] = os.path.join(args.home, "config")

    import torch

    from hominem_pipeline.evaluation.config import load_eval_inputs
    from hominem_pipeline.evaluation.evaluate import rows_by_id
    from hominem_pipeline.evaluation.measure import collect_probes, measure
    from hominem_pipeline.models import resolve_model
    from hominem_pipeline.records import SFTPair
    from hominem_pipeline.reward_model.registry import current_with_note
    from hominem_pipeline.settings import Settings
    from hominem_pipeline.training.data import prepare_examples
    from hominem_pipeline.training.losses import encode
    from hominem_pipeline.training.run import load_config, lora_root, sft_jsonl_path
    from hominem_pipeline.training.trainer import consolidate_knowledge, load_policy
    from hominem_pipeline.validation import read_jsonl

    settings = Settings()
    config = load_config(settings)
    root = lora_root(settings, config)
    version, parent, meta = newest_consolidated(root, args.version)
    eval_cfg, regression_set = load_eval_inputs(settings.config_dir)
    # NLL passes only: the variants are compared on what the gate's margins and the fact probes read.
    eval_cfg = eval_cfg.model_copy(
        update={"generation": eval_cfg.generation.model_copy(update={"prompts_limit": 0})}
    )
    rows = rows_by_id(read_jsonl(sft_jsonl_path(settings)), meta["trained_sft_pair_ids"])
    probes = [p for p in collect_probes(rows) if p.kind == "held_out"]
    reward_model, _ = current_with_note(settings.artifacts_dir)
    data = prepare_examples(config, [], [SFTPair.model_validate(r) for r in rows], True, reward_model)
    sft = [e for e in data.examples if e.channel == "sft"]
    sources = config.knowledge_consolidation.sources
    knowledge = [e for e in sft if e.source in sources]
    base_path = resolve_model(
        config.base_model or settings.inference.student.model, settings.models_cache_dir
    )
    print(
        f"home {args.home}: cycle {version} (parent {parent or 'none: the base model'}); {len(sft)} SFT rows, {len(knowledge)} "
        f"knowledge rows (weights {min(e.weight for e in knowledge):.3f}-{max(e.weight for e in knowledge):.3f}), "
        f"{len(probes)} held-out fact probes; consolidation lr {config.knowledge_consolidation.learning_rate:g}, "
        f"batch {config.knowledge_consolidation.batch_size}"
    )
    names = sorted({s.scenario for s in regression_set.scenarios})
    print(
        f"{'variant':<28} {'fact NLL':>8} {'vs parent':>9} {'general':>8} "
        + " ".join(f"{n[:22]:>22}" for n in names)
        + f" {'gate':>6} {'s':>5}"
    )

    parent_metrics = None

    def row(
        label: str, adapter: Path | None, steps: int = 0, lr_factor: float = 1.0, equal: bool = False
    ) -> None:
        nonlocal parent_metrics
        t0 = time.perf_counter()
        kc = config.knowledge_consolidation.model_copy(
            update={"steps": steps, "learning_rate": config.knowledge_consolidation.learning_rate * lr_factor}
        )
        cfg = config.model_copy(update={"knowledge_consolidation": kc})
        torch.manual_seed(cfg.seed)  # a fresh LoRA (a first cycle's parent) starts as the trainer's does
        model, tok = load_policy(base_path, cfg, adapter)
        examples = [dataclasses.replace(e, weight=1.0) if equal and e.source in sources else e for e in sft]
        if steps:
            encoded = [
                encode(tok, e.prompt, e.chosen, cfg.max_prompt_tokens, cfg.max_length) for e in examples
            ]
            params = [p for p in model.parameters() if p.requires_grad]
            consolidate_knowledge(model, params, cfg, examples, encoded, tok.pad_token_id, 0)
        model.eval()
        with torch.no_grad():
            m = measure(model, tok, regression_set, probes, eval_cfg, None)
        if parent_metrics is None:
            parent_metrics = m
        p = parent_metrics
        fact_change = (m.knowledge_nll - p.knowledge_nll) / p.knowledge_nll
        drops = {n: m.scenario_margin[n] - p.scenario_margin[n] for n in names}
        passes = all(d >= -eval_cfg.tolerances.scenario_margin_drop for d in drops.values())
        print(
            f"{label:<28} {m.knowledge_nll:>8.3f} {fact_change:>+9.1%} {m.general_nll:>8.3f} "
            + " ".join(f"{m.scenario_margin[n]:>+14.3f} ({d:>+5.3f})" for n, d in drops.items())
            + f" {'pass' if passes else 'refuse':>6} {time.perf_counter() - t0:>5.0f}",
            flush=True,
        )

    start = root / parent if parent else None  # None: the base model under a fresh LoRA
    row("parent (baseline)" if parent else "base (baseline)", start)
    row("candidate as trained", root / version)
    for label, steps, lr_factor, equal in VARIANTS:
        row(label, start, steps, lr_factor, equal)
    print(
        "margins: NLL(failure) - NLL(balanced) per scenario, (change vs parent); gate: refuse when any "
        f"falls more than {eval_cfg.tolerances.scenario_margin_drop:g} (lora_eval also compares against base)"
    )


if __name__ == "__main__":
    main()
