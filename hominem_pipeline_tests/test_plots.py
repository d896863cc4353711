"""The plots a person looks at: each is a real PNG with the numbers it shows, the `plots_report` asset
draws what the data allows and says why it skipped the rest."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from hominem_pipeline import plots
from hominem_pipeline.defs.plots import plots_report
from hominem_pipeline.defs.resources import HominemResource
from hominem_pipeline.settings import Settings

PNG = b"\x89PNG\r\n\x1a\n"
DIMS = ["empathy", "curiosity", "harm_avoidance"]


def _rows() -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for category, centre in (("advice", 0.6), ("facts", -0.4), ("safety", 0.1)):
        for _ in range(10):
            rows.append(
                {
                    "category": category,
                    "reward_vector": {d: float(np.clip(centre + 0.1 * rng.normal(), -1, 1)) for d in DIMS},
                }
            )
    return rows


def test_each_plot_is_a_png_with_its_numbers(tmp_path: Path) -> None:
    manifold = plots.plot_reward_manifold(
        [*_rows(), {"category": "x", "reward_vector": {"empathy": 1.0}}], DIMS, tmp_path / "m.png"
    )
    assert (tmp_path / "m.png").read_bytes().startswith(PNG)
    assert manifold["points"] == 30 and manifold["left_out"] == 1 and manifold["categories"] == 3
    assert manifold["pc1_variance"] > 0.9  # the three categories differ along one direction
    umap_view = plots.plot_reward_manifold_umap(_rows(), DIMS, tmp_path / "u.png")
    assert (tmp_path / "u.png").read_bytes().startswith(PNG)
    assert umap_view == {"points": 30, "left_out": 0, "categories": 3, "n_neighbors": 15, "reused": False}
    # The same vectors again: the picture is kept, not recomputed; one changed vector redraws it.
    drawn_at = (tmp_path / "u.png").stat().st_mtime_ns
    assert plots.plot_reward_manifold_umap(_rows(), DIMS, tmp_path / "u.png")["reused"] is True
    assert (tmp_path / "u.png").stat().st_mtime_ns == drawn_at
    changed = _rows()
    changed[0]["reward_vector"]["empathy"] = -1.0
    assert plots.plot_reward_manifold_umap(changed, DIMS, tmp_path / "u.png")["reused"] is False

    log = [{"step": s, "loss": 1.0 / s, "sft_loss": 2.0 / s, "preference_loss": 0.69} for s in range(1, 7)]
    curves = plots.plot_loss_curves(log, tmp_path / "l.png")
    assert curves == {"steps": 6, "loss_points": 6, "sft_loss_points": 6, "preference_loss_points": 6}

    labels = [
        {"event_day": "2026-03-01", "vector": {"empathy": 0.2}},
        {"event_day": "2026-03-01", "vector": {"empathy": 0.4}},
        {"event_day": "2026-03-02", "vector": {"empathy": -0.5, "curiosity": 0.1}},
    ]
    series = plots.daily_means(labels)
    assert series == [
        ("2026-03-01", {"empathy": pytest.approx(0.3)}),
        ("2026-03-02", {"curiosity": 0.1, "empathy": -0.5}),
    ]
    assert plots.plot_reward_over_time(series, tmp_path / "r.png") == {"days": 2, "dimensions": 2}
    assert plots.markdown_image(tmp_path / "r.png", "r").startswith("![r](data:image/png;base64,iVBOR")

    with pytest.raises(ValueError, match="at least 2 rows"):
        plots.plot_reward_manifold(_rows()[:1], DIMS, tmp_path / "none.png")
    with pytest.raises(ValueError, match=f"at least {plots.UMAP_MIN_POINTS} rows"):
        plots.plot_reward_manifold_umap(_rows()[:5], DIMS, tmp_path / "none.png")


def _materialize_plots(hominem_home: Path) -> dict:
    """The 30 labelled rows in the home's export, then `plots_report` materialised: its metadata."""
    settings = Settings(home=hominem_home)
    names = HominemResource(home=str(hominem_home)).manifold().names
    rows = [{**r, "reward_vector": {n: r["reward_vector"].get(n, 0.0) for n in names}} for r in _rows()]
    settings.reward_samples_export.parent.mkdir(parents=True, exist_ok=True)
    settings.reward_samples_export.write_text("".join(json.dumps(r) + "\n" for r in rows))

    result = dg.materialize([plots_report], resources={"hominem": HominemResource(home=str(hominem_home))})
    [event] = result.asset_materializations_for_node("plots_report")
    meta = {k: v.value for k, v in event.metadata.items()}
    return meta


def test_the_asset_draws_what_the_data_allows_and_says_why_not_the_rest(hominem_home: Path) -> None:
    meta = _materialize_plots(hominem_home)
    assert (
        meta["drawn"] == 2
        and meta["reward_manifold.points"] == 30
        and meta["reward_manifold_umap.points"] == 30
    )
    for name in ("reward_manifold", "reward_manifold_umap"):
        assert (hominem_home / "artifacts" / "plots" / f"{name}.png").read_bytes().startswith(PNG)
        assert meta[name].startswith(f"![{name}](data:image/png")
    assert "loss_curves_skipped" in meta and "reward_over_time_skipped" in meta


def test_without_umap_the_asset_draws_pca_and_says_why_not_umap(
    hominem_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A machine without umap-learn (it is optional for the domain) still gets every other plot."""
    import sys

    monkeypatch.setitem(sys.modules, "umap", None)  # `import umap` now raises ImportError(name="umap")
    meta = _materialize_plots(hominem_home)
    assert meta["drawn"] == 1 and meta["reward_manifold.points"] == 30
    assert meta["reward_manifold_umap_skipped"].startswith("umap is not installed")
    assert not (hominem_home / "artifacts" / "plots" / "reward_manifold_umap.png").exists()
