"""The `plots` asset: the reward manifold, the last cycle's loss curves and the per-dimension reward over
time, as PNGs under artifacts/plots/ and inlined in the asset's metadata. Thin: the drawing
is `hominem_pipeline.plots`."""

from pathlib import Path

import dagster as dg

from hominem_pipeline import plots
from hominem_pipeline.defs.resources import STORE_POOL, HominemResource
from hominem_pipeline.validation import read_jsonl


@dg.asset(
    group_name="reports",
    pool=STORE_POOL,  # reads the conversation labels from the store
    deps=["reward_labels", "dual_lora", "conversation_labels"],
    description="PNG plots: reward manifold (PCA and UMAP by prompt category), last cycle's per-channel loss curves, "
    "per-dimension average reward by day (artifacts/plots/)",
)
def plots_report(context: dg.AssetExecutionContext, hominem: HominemResource) -> dg.MaterializeResult:
    settings = hominem.settings()
    out = settings.artifacts_dir / "plots"
    metadata: dict[str, dg.RawMetadataValue] = {"folder": dg.MetadataValue.path(str(out))}
    drawn: dict[str, Path] = {}

    def draw(name: str, make) -> None:  # noqa: ANN001 - a plot function bound to its inputs
        path = out / f"{name}.png"
        try:
            numbers = make(path)
        except (ValueError, FileNotFoundError) as exc:  # not enough data yet: say so, draw the others
            metadata[f"{name}_skipped"] = str(exc)
            return
        except ImportError as exc:  # an optional plotting package (umap-learn) is missing
            metadata[f"{name}_skipped"] = (
                f"{exc.name or exc} is not installed (it comes with the `train` extra)"
            )
            return
        drawn[name] = path
        metadata.update({f"{name}.{k}": v for k, v in numbers.items()})
        metadata[name] = dg.MetadataValue.md(plots.markdown_image(path, name))

    samples = settings.reward_samples_export
    reward_rows = read_jsonl(samples) if samples.is_file() else []
    draw("reward_manifold", lambda p: plots.plot_reward_manifold(reward_rows, hominem.manifold().names, p))
    draw(
        "reward_manifold_umap",
        lambda p: plots.plot_reward_manifold_umap(reward_rows, hominem.manifold().names, p),
    )
    event = context.instance.get_latest_materialization_event(dg.AssetKey("dual_lora"))
    adapter = (
        event.asset_materialization.metadata.get("path") if event and event.asset_materialization else None
    )
    log_file = Path(str(adapter.value)) / "training_log.jsonl" if adapter else Path("no adapter published")
    draw(
        "loss_curves",
        lambda p: plots.plot_loss_curves(
            read_jsonl(log_file), p, f"Loss curves of the last cycle ({log_file.parent.name})"
        ),
    )
    with hominem.open_db() as db:
        labels = db.get_conversation_labels(kind="reward")
    draw("reward_over_time", lambda p: plots.plot_reward_over_time(plots.daily_means(labels), p))
    context.log.info(f"plots: drew {sorted(drawn)} under {out}")
    return dg.MaterializeResult(metadata={"drawn": len(drawn), **metadata})


PLOT_ASSETS = [plots_report]
