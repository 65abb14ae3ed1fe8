"""Helpers shared by reproductions: seed-averaged grids from the records table, log-log fits, figure style."""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

if TYPE_CHECKING:
    from ..observe.base import Data

plt.rcParams.update({"figure.dpi": 110, "axes.spines.top": False, "axes.spines.right": False, "font.size": 9})


def values(records: pd.DataFrame, observable: str, layer: str = "", step: int | None = None, index: int = 0) -> pd.DataFrame:
    """Rows of one observable (one layer, one index) at `step` (default: the last recorded step)."""
    r = records[(records.observable == observable) & (records.layer == layer) & (records["index"] == index)]
    return r[r.step == (r.step.max() if step is None else step)]


def grid(records: pd.DataFrame, observable: str, rows: str, cols: str, layer: str = "", step: int | None = None) -> pd.DataFrame:
    """Seed-averaged values over a 2-D grid of config columns (`rows` × `cols`)."""
    return values(records, observable, layer, step).groupby([rows, cols])["value"].mean().unstack(cols)


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of log y against log x (a quantity ∝ x^slope); NaN if any y ≤ 0 or is not finite."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if not (np.all(np.isfinite(y)) and np.all(y > 0)):
        return float("nan")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def heatmap(ax: plt.Axes, g: pd.DataFrame, title: str, xlabel: str, ylabel: str, log: bool = False,
            cmap: str = "viridis") -> None:
    """One heatmap panel of a grid (rows bottom to top), ticks labelled with the grid values."""
    v = g.to_numpy(float)
    if log:
        v = np.log10(np.maximum(v, 1e-300))
    im = ax.imshow(v, origin="lower", aspect="auto", cmap=cmap)
    ax.set_xticks(range(g.shape[1]), [f"{c:.2g}" for c in g.columns], rotation=45)
    ax.set_yticks(range(g.shape[0]), [f"{r:.2g}" for r in g.index])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(("log10 " if log else "") + title)
    ax.figure.colorbar(im, ax=ax, shrink=0.85)


def on_device(data: "Data", device: str) -> "Data":
    """The same data on `device` (members' tensors are built there by `build(..., device=)`)."""
    from ..observe.base import Data

    move = lambda t: None if t is None else t.to(device)  # noqa: E731
    return Data(move(data.x), move(data.y), move(data.x_test), move(data.y_test))
