"""Heatmaps over the τ×δ grid of final observables (seed-averaged)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

LOG = {"test_loss", "delta_drift"}
BEST = {"test_loss": "min", "kernel_distance": "max"}
PANELS = [("test_loss", "", "log10 final test loss"), ("delta_drift", "W1-W2", "log10 max drift of δ_k (rel.)"),
          ("kernel_distance", "", "kernel distance S(0,T)"), ("hamming", "W1", "activation Hamming distance"),
          ("param_distance", "", "parameter distance")]


def grid(records: pd.DataFrame, observable: str, layer: str = "") -> pd.DataFrame:
    """Seed-averaged final value over (δ rows, τ columns)."""
    r = records[(records.observable == observable) & (records.layer == layer) & (records["index"] == 0)]
    r = r[r.step == r.step.max()]
    return r.groupby(["delta", "tau"])["value"].mean().unstack("tau")


def heatmaps(records: pd.DataFrame, path: Path) -> None:
    panels = [p for p in PANELS if ((records.observable == p[0]) & (records.layer == p[1])).any()]
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 3.7 * rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax, (obs, layer, title) in zip(axes.flat, panels):
        g = grid(records, obs, layer)
        values = g.to_numpy()
        if obs in LOG:
            values = np.log10(np.maximum(values, 1e-300))
        im = ax.imshow(values, origin="lower", aspect="auto", cmap="viridis")
        ax.set_xticks(range(g.shape[1]), [f"{t:.2g}" for t in g.columns], rotation=45)
        ax.set_yticks(range(g.shape[0]), [f"{d:.2g}" for d in g.index])
        ax.set_xlabel("τ (init scale)")
        ax.set_ylabel("δ (upstream > 0)")
        if obs in BEST:  # the seed-averaged best cell (the demo's summary gives its seed interval)
            i, j = np.unravel_index(np.nanargmin(values) if BEST[obs] == "min" else np.nanargmax(values), values.shape)
            ax.plot(j, i, marker="*", color="white", markeredgecolor="black", markersize=13)
            title += f" (★ {BEST[obs]})"
        ax.set_title(title)
        fig.colorbar(im, ax=ax, shrink=0.85)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
