"""The short report `make run` ends with: counts, key metrics and where every artifact went."""

from __future__ import annotations

from pathlib import Path

from hominem_pipeline.evaluation.report import describe_lora
from hominem_pipeline.reward_model.registry import describe, reward_model_root
from hominem_pipeline.settings import Settings
from hominem_pipeline.store import TrainingDatabase


def _count_lines(path: Path) -> int | None:
    if not path.is_file():
        return None
    with path.open(encoding="utf-8") as fh:
        return sum(1 for line in fh if line.strip())


def build_summary(settings: Settings) -> str:
    lines = ["hominem summary", "==============="]
    db_path = settings.database_path
    if db_path.is_file():
        with TrainingDatabase(db_path, read_only=True) as db:
            tables = [
                r["table_name"]
                for r in db.query(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY table_name"
                )
            ]
            lines.append(f"store: {db_path} (schema v{db.schema_version})")
            for t in tables:
                if t == "schema_migrations":
                    continue
                lines.append(f"  {t:24s} {db.scalar(f'SELECT count(*) FROM {t}')} rows")
    else:
        lines.append(f"store: {db_path} (not created yet)")
    lines.append("exports:")
    for label, path in [
        ("trajectories", settings.trajectories_export),
        ("reward labels", settings.reward_samples_export),
        ("sft pairs", settings.data_dir / "sft" / "sft_training.jsonl"),
        ("preference pairs", settings.data_dir / "preferences" / "preferences.jsonl"),
    ]:
        n = _count_lines(path)
        lines.append(f"  {label:24s} {path}  ({'missing' if n is None else f'{n} rows'})")
    events = settings.data_dir / "events"
    days = sorted(p.stem for p in events.glob("*.jsonl")) if events.is_dir() else []
    lines.append(
        f"  {'event log':24s} {events}  ({len(days)} day files{', ' + days[0] + ' .. ' + days[-1] if days else ''})"
    )
    if reward_model_root(settings.artifacts_dir).is_dir():
        lines.append("reward model:")
        lines.extend(describe(settings.artifacts_dir))
    if (settings.artifacts_dir / "lora").is_dir():
        lines.append("LoRA adapters (artifacts/lora, evaluations in artifacts/lora_eval):")
        lines.extend(describe_lora(settings.artifacts_dir))
    models = settings.models_cache_dir
    if models.is_dir():
        lines.append("models:")
        for d in sorted(p for p in models.iterdir() if p.is_dir() and not p.name.startswith(".")):
            lines.append(f"  {d.name:24s} {d}")
    return "\n".join(lines)
