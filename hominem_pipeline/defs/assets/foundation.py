"""Foundation assets: seed prompts, the student base model, teacher trajectories and reward labels.

Each asset is published as DuckDB rows plus a human-readable JSONL export (written aside, renamed into
place); the export's content hash is the asset's data version and what downstream assets read.
"""

import hashlib
from collections import Counter
from pathlib import Path

import dagster as dg

from hominem_pipeline.atomic import file_digest, write_jsonl_atomic
from hominem_pipeline.data.labels import label_rows, label_summary, label_trajectories
from hominem_pipeline.data.prompts import load_seed_prompts, select_prompts
from hominem_pipeline.data.trajectories import generate_trajectories
from hominem_pipeline.defs.resources import STORE_POOL, HominemResource, TeacherResource
from hominem_pipeline.models import resolve_model
from hominem_pipeline.validation import read_jsonl

GROUP = "teacher_data"


class TrajectoriesConfig(dg.Config):
    """Overrides for one run; empty fields come from config/hominem.toml [generation]."""

    force: bool = False  # regenerate even where stored candidates exist
    prompts_limit: int | None = None  # 0 = every seed prompt
    candidates_per_prompt: int | None = None


class LabelsConfig(dg.Config):
    force: bool = False  # re-rate even where a stored label exists


@dg.asset(group_name=GROUP, pool=STORE_POOL, description="Seed prompts from config/prompts/seed_prompts.yaml")
def seed_prompts(context: dg.AssetExecutionContext, hominem: HominemResource) -> dg.MaterializeResult:
    settings = hominem.settings()
    prompts = load_seed_prompts(settings.seed_prompts_path)
    with hominem.open_db() as db:
        db.upsert_seed_prompts(
            {"prompt_id": p.prompt_id, "category": p.category, "text": p.text, "content_hash": p.content_hash}
            for p in prompts
        )
    per_category = Counter(p.category for p in prompts)
    digest = hashlib.sha256("".join(p.content_hash for p in prompts).encode()).hexdigest()[:16]
    return dg.MaterializeResult(
        metadata={
            "count": len(prompts),
            "categories": dg.MetadataValue.json(dict(per_category)),
            "source": dg.MetadataValue.path(str(settings.seed_prompts_path)),
        },
        data_version=dg.DataVersion(digest),
    )


@dg.asset(group_name="models", description="The student model as a local transformers folder")
def base_model(context: dg.AssetExecutionContext, hominem: HominemResource) -> dg.MaterializeResult:
    settings = hominem.settings()
    spec = settings.inference.student.model
    path = resolve_model(spec, settings.models_cache_dir)
    folder = Path(path)
    meta: dict[str, dg.RawMetadataValue] = {"spec": spec, "path": dg.MetadataValue.path(path)}
    if folder.is_dir():
        meta["size_mb"] = round(sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20, 1)
        version = hashlib.sha256(f"{spec}\0{folder.name}".encode()).hexdigest()[:16]
    else:
        version = hashlib.sha256(spec.encode()).hexdigest()[:16]
    return dg.MaterializeResult(metadata=meta, data_version=dg.DataVersion(version))


@dg.asset(
    group_name=GROUP,
    pool=STORE_POOL,
    deps=[seed_prompts],
    description="Teacher candidate responses per seed prompt",
)
def trajectories(
    context: dg.AssetExecutionContext,
    config: TrajectoriesConfig,
    hominem: HominemResource,
    teacher: TeacherResource,
) -> dg.MaterializeResult:
    settings = hominem.settings()
    gen = settings.pipeline.generation
    limit = gen.prompts_limit if config.prompts_limit is None else config.prompts_limit
    n = config.candidates_per_prompt or gen.candidates_per_prompt
    prompts = select_prompts(load_seed_prompts(settings.seed_prompts_path), limit)
    t = teacher.build()
    sampling = settings.inference.teacher.sampling.model_dump()
    with hominem.open_db() as db:
        run = generate_trajectories(
            db,
            t,
            prompts,
            n,
            sampling,
            seed=gen.seed,
            batch_size=gen.batch_size,
            force=config.force,
            progress=lambda d, total: context.log.info(f"trajectories: {d}/{total} prompts"),
        )
        rows = db.get_trajectories(run.trajectory_ids)
    export = settings.trajectories_export
    write_jsonl_atomic(export, rows)
    empty = sum(1 for r in rows if not r["response"].strip())
    return dg.MaterializeResult(
        metadata={
            "count": len(rows),
            "prompts": len(prompts),
            "candidates_per_prompt": n,
            "generated": run.generated,
            "reused": run.reused,
            "empty_responses": empty,
            "teacher": t.identity,
            "export": dg.MetadataValue.path(str(export)),
        },
        data_version=dg.DataVersion(file_digest(export)),
    )


@dg.asset(
    group_name=GROUP,
    pool=STORE_POOL,
    deps=[trajectories],
    description="Teacher reward labels, one per trajectory",
)
def reward_labels(
    context: dg.AssetExecutionContext,
    config: LabelsConfig,
    hominem: HominemResource,
    teacher: TeacherResource,
) -> dg.MaterializeResult:
    settings = hominem.settings()
    manifold = hominem.manifold()
    trajectory_ids = [r["trajectory_id"] for r in read_jsonl(settings.trajectories_export)]
    t = teacher.build()
    with hominem.open_db() as db:
        run = label_trajectories(
            db,
            t,
            manifold,
            trajectory_ids,
            batch_size=settings.pipeline.labeling.batch_size,
            force=config.force,
            progress=lambda d, total: context.log.info(f"reward_labels: {d}/{total} rated"),
        )
        rows = label_rows(db, run.label_ids)
        failures = db.get_label_failures(run.label_ids)
    export = settings.reward_samples_export
    write_jsonl_atomic(export, rows)
    for f in failures[:5]:
        context.log.warning(f"teacher failed to rate {f['trajectory_id']}: {f['reason']}")
    return dg.MaterializeResult(
        metadata={
            "count": len(rows),
            "trajectories": len(trajectory_ids),
            "labelled_now": run.labelled,
            "reused": run.reused,
            "failures": len(failures),
            "failure_reasons": dg.MetadataValue.json(
                dict(Counter(f["reason"].split(":")[0] for f in failures))
            ),
            "rater": t.rater_identity,
            **{k: round(v, 4) for k, v in label_summary(rows, manifold).items()},
            "export": dg.MetadataValue.path(str(export)),
        },
        data_version=dg.DataVersion(file_digest(export)),
    )
