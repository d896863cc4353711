"""The RHI-over-time plot: the index and its five components across measurements (matplotlib, Agg
backend, PNG). Written beside the history (`artifacts/rhi/<model>/rhi_over_time.png`) and into
`artifacts/plots/`, and embedded in the asset's metadata."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from hominem_pipeline.atomic import write_bytes_atomic
from hominem_pipeline.health.config import COMPONENTS


def plot_history(
    rows: list[dict[str, Any]], path: Path, title: str = "Reward Health Index over time"
) -> Path:
    """Draw RHI (thick) and each component (thin) per measurement, marking the consolidation threshold."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4), dpi=90)
    x = list(range(1, len(rows) + 1))
    for name in COMPONENTS:
        ys = [r.get(name) for r in rows]
        if any(y is not None for y in ys):
            ax.plot(
                x,
                [float("nan") if y is None else y for y in ys],
                marker=".",
                linewidth=1,
                alpha=0.7,
                label=name.upper(),
            )
    ax.plot(
        x,
        [float("nan") if r.get("rhi") is None else r["rhi"] for r in rows],
        marker="o",
        linewidth=2.5,
        color="black",
        label="RHI",
    )
    ax.axhline(0.70, color="grey", linestyle="--", linewidth=1, label="consolidation 0.70")
    kinds = sorted({str(r.get("kind")) for r in rows})
    ax.set(
        ylim=(-0.02, 1.02),
        xlabel=f"measurement ({', '.join(kinds)})",
        ylabel="score (higher = healthier)",
        title=title,
    )
    if rows:
        ax.set_xticks(x, [str(r.get("version", ""))[:6] for r in rows], rotation=45, fontsize=7)
    ax.legend(fontsize=7, loc="lower left", ncol=4)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())
    return path


def markdown_image(path: Path, alt: str = "RHI over time") -> str:
    """The PNG inline (the Dagster UI renders it in the asset's metadata)."""
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f"![{alt}](data:image/png;base64,{data})"
