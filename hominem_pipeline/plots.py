"""Plots a person looks at (seed 000 6.3 and 9.3): the reward manifold (PCA of reward vectors, coloured by
prompt category, and UMAP of the same vectors when `umap-learn` is installed), the last cycle's per-channel loss curves, and the per-dimension average reward over
time. Each function writes one PNG (matplotlib, Agg backend: no display needed) atomically and returns
numbers worth reporting beside it. Plain Python; the `plots` asset (defs/plots.py) calls these.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hominem_pipeline.atomic import write_bytes_atomic, write_json_atomic
from hominem_pipeline.records import content_hash


def _figure(width: float = 7.0, height: float = 4.5) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height), dpi=100)


def _save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    write_bytes_atomic(Path(path), buffer.getvalue())


def pca(matrix: np.ndarray, components: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(projected rows, explained variance ratio per component) of the centred matrix, by SVD."""
    centred = matrix - matrix.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    var = s**2
    ratio = var / var.sum() if var.sum() > 0 else np.zeros_like(var)
    k = min(components, vt.shape[0])
    projected = centred @ vt[:k].T
    if k < components:  # fewer dimensions than components: pad so a 2-D plot still draws
        projected = np.hstack([projected, np.zeros((len(projected), components - k))])
        ratio = np.concatenate([ratio, np.zeros(components - k)])
    return projected, ratio[:components]


def _manifold_rows(
    rows: Sequence[Mapping[str, Any]], dimensions: Sequence[str], least: int
) -> tuple[np.ndarray, list[str]]:
    """(reward vectors over `dimensions`, category per vector) of the rows that have every dimension."""
    usable = [r for r in rows if all(d in r.get("reward_vector", {}) for d in dimensions)]
    if len(usable) < least:
        raise ValueError(
            f"the reward manifold plot needs at least {least} rows with every dimension; got {len(usable)}"
        )
    matrix = np.array([[float(r["reward_vector"][d]) for d in dimensions] for r in usable])
    return matrix, [str(r.get("category") or "unknown") for r in usable]


def _scatter_by_category(
    projected: np.ndarray, categories: list[str], labels: tuple[str, str], title: str, path: Path
) -> None:
    fig, ax = _figure()
    for category in sorted(set(categories)):
        mask = np.array([c == category for c in categories])
        ax.scatter(projected[mask, 0], projected[mask, 1], label=category, s=22, alpha=0.8)
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_title(title)
    ax.legend(fontsize=8, loc="best")
    _save(fig, path)


def plot_reward_manifold(
    rows: Sequence[Mapping[str, Any]], dimensions: Sequence[str], path: Path
) -> dict[str, Any]:
    """Scatter of the rows' `reward_vector`s (over `dimensions`) in their first two principal components,
    one colour per `category`. Rows missing a dimension are left out (counted)."""
    matrix, categories = _manifold_rows(rows, dimensions, least=2)
    projected, ratio = pca(matrix)
    _scatter_by_category(
        projected,
        categories,
        (f"PC1 ({ratio[0]:.0%} of variance)", f"PC2 ({ratio[1]:.0%} of variance)"),
        f"Reward manifold: {len(matrix)} reward vectors, {len(dimensions)} dimensions (PCA)",
        path,
    )
    return {
        "points": len(matrix),
        "left_out": len(rows) - len(matrix),
        "categories": len(set(categories)),
        "pc1_variance": round(float(ratio[0]), 4),
        "pc2_variance": round(float(ratio[1]), 4),
    }


# UMAP's neighbour graph needs a few points; below this the PCA view says all there is.
UMAP_MIN_POINTS = 8


def plot_reward_manifold_umap(
    rows: Sequence[Mapping[str, Any]],
    dimensions: Sequence[str],
    path: Path,
    n_neighbors: int = 15,
    seed: int = 0,
) -> dict[str, Any]:
    """The same vectors as `plot_reward_manifold`, laid out by UMAP (umap-learn, euclidean distances
    between the raw vectors; fixed seed, so a re-run draws the same picture). UMAP keeps local
    neighbourhoods where PCA keeps global variance: clusters of similar rewards show, distances between
    clusters mean little. UMAP costs seconds (numba compiles it in each new process), so the picture is
    redrawn only when its inputs changed: `<path>.json` beside the PNG records what it was drawn from, and
    a match returns the recorded numbers with `reused: True`. Raises ImportError when umap-learn is not
    installed."""
    matrix, categories = _manifold_rows(rows, dimensions, least=UMAP_MIN_POINTS)
    neighbours = max(2, min(n_neighbors, len(matrix) - 1))
    inputs = content_hash(
        json.dumps([matrix.round(6).tolist(), categories, list(dimensions), neighbours, seed])
    )
    record = Path(f"{path}.json")
    if path.is_file() and record.is_file():
        try:
            drawn = json.loads(record.read_text())
        except ValueError:  # a torn record is no record: draw again
            drawn = {}
        if drawn.get("inputs") == inputs:
            return {**drawn["numbers"], "reused": True}
    import umap  # optional: numba-compiled on first use

    record.unlink(missing_ok=True)  # from here until the new record, the PNG is not what any record says
    projected = umap.UMAP(n_neighbors=neighbours, min_dist=0.1, random_state=seed, n_jobs=1).fit_transform(
        matrix
    )
    _scatter_by_category(
        np.asarray(projected),
        categories,
        ("UMAP 1", "UMAP 2"),
        f"Reward manifold: {len(matrix)} reward vectors, {len(dimensions)} dimensions (UMAP, "
        f"{neighbours} neighbours)",
        path,
    )
    numbers = {
        "points": len(matrix),
        "left_out": len(rows) - len(matrix),
        "categories": len(set(categories)),
        "n_neighbors": neighbours,
    }
    write_json_atomic(
        record, {"inputs": inputs, "numbers": numbers}
    )  # after the PNG: a crash before it redraws
    return {**numbers, "reused": False}


def plot_loss_curves(log_rows: Sequence[Mapping[str, Any]], path: Path, title: str = "") -> dict[str, Any]:
    """Per-channel loss (`sft_loss`, `preference_loss`) and the blended `loss` by step, from an adapter's
    training_log.jsonl."""
    if not log_rows:
        raise ValueError("the loss-curve plot needs a training log with at least one step")
    fig, ax = _figure()
    drawn = {}
    for key, label in (
        ("loss", "blended loss"),
        ("sft_loss", "memory channel (SFT)"),
        ("preference_loss", "reward channel (preference)"),
    ):
        points = [(r["step"], r[key]) for r in log_rows if key in r and r[key] is not None]
        if points:
            steps, values = zip(*points, strict=True)
            ax.plot(steps, values, marker="o" if len(points) < 30 else None, markersize=3, label=label)
            drawn[key] = len(points)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (per-channel: unweighted mean over the batch)")
    ax.set_title(title or "Loss curves of the last cycle")
    ax.legend(fontsize=8)
    _save(fig, path)
    return {"steps": len(log_rows), **{f"{k}_points": v for k, v in drawn.items()}}


def plot_reward_over_time(series: Sequence[tuple[str, Mapping[str, float]]], path: Path) -> dict[str, Any]:
    """One line per reward dimension: its average on each day (`series` = [(day, {dimension: mean})])."""
    if not series:
        raise ValueError("the reward-over-time plot needs at least one day of rated turns")
    days = [d for d, _ in series]
    dimensions = sorted({k for _, means in series for k in means})
    fig, ax = _figure(8.0, 4.5)
    for dim in dimensions:
        ax.plot(days, [means.get(dim, np.nan) for _, means in series], marker="o", markersize=3, label=dim)
    ax.set_xlabel("day")
    ax.set_ylabel("average reward")
    ax.set_title("Per-dimension average reward of rated assistant turns, by day")
    ax.legend(fontsize=7, ncol=2)
    fig.autofmt_xdate()
    _save(fig, path)
    return {"days": len(days), "dimensions": len(dimensions)}


def markdown_image(path: Path, alt: str) -> str:
    """Markdown with the PNG inlined (Dagster's UI renders it in the asset's metadata)."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"![{alt}](data:image/png;base64,{data})"


def daily_means(labels: Sequence[Mapping[str, Any]]) -> list[tuple[str, dict[str, float]]]:
    """[(day, {dimension: mean})] of conversation labels (`event_day`, `vector`), oldest day first."""
    by_day: dict[str, list[Mapping[str, float]]] = {}
    for row in labels:
        by_day.setdefault(str(row["event_day"]), []).append(row["vector"])
    out = []
    for day in sorted(by_day):
        dims = sorted({k for v in by_day[day] for k in v})
        out.append((day, {d: float(np.mean([v[d] for v in by_day[day] if d in v])) for d in dims}))
    return out
