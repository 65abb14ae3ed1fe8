"""Recorded observations → a tidy long table (member, config columns, step, time, observable, layer, index, value)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import Tensor

COLUMNS = ["member", "step", "time", "observable", "layer", "index", "value"]


@dataclass
class Recorder:
    """Collects [E, K] blocks per record and builds the table once, vectorized, at the end."""

    blocks: list[tuple[int, Tensor, str, str, Tensor]] = field(default_factory=list)

    def add(self, step: int, time: Tensor, observable: str, layer: str, value: Tensor) -> None:
        v = value.detach()
        # own copies: a view would keep its (possibly large) base tensor alive until the table is built
        self.blocks.append((step, time.detach().clone(), observable, layer, v.reshape(v.shape[0], -1).clone()))

    def table(self, members: pd.DataFrame | None = None) -> pd.DataFrame:
        if not self.blocks:
            return pd.DataFrame(columns=COLUMNS)
        sizes = [v.shape[0] * v.shape[1] for _, _, _, _, v in self.blocks]
        cols: dict[str, list[np.ndarray]] = {c: [] for c in COLUMNS}
        for (step, time, obs, layer, v), size in zip(self.blocks, sizes):
            E, K = v.shape
            cols["member"].append(np.repeat(np.arange(E), K))
            cols["step"].append(np.full(size, step, dtype=np.int64))
            cols["time"].append(np.repeat(time.to("cpu", torch.float64).numpy(), K))
            cols["index"].append(np.tile(np.arange(K), E))
            cols["value"].append(v.to("cpu", torch.float64).numpy().reshape(-1))
        names = [(o, l) for _, _, o, l, _ in self.blocks]
        out = pd.DataFrame({c: np.concatenate(cols[c]) for c in ("member", "step", "time", "index", "value")})
        out.insert(3, "observable", pd.Categorical(np.repeat([o for o, _ in names], sizes)))
        out.insert(4, "layer", pd.Categorical(np.repeat([l for _, l in names], sizes)))
        out = out[COLUMNS]
        if members is not None and len(members.columns):
            cfg = members.reset_index(drop=True).copy()
            cfg.insert(0, "member", np.arange(len(cfg)))
            out = out.merge(cfg, on="member", how="left")
            out = out[["member", *[c for c in cfg.columns if c != "member"], *COLUMNS[1:]]]
        return out


def log_steps(steps: int, num: int = 20) -> list[int]:
    """0 and `steps` plus ~num log-spaced steps in between (unique, sorted)."""
    if steps <= 0:
        return [0]
    pts = np.unique(np.round(np.logspace(0, np.log10(steps), num)).astype(int))
    return sorted({0, steps, *pts.tolist()})


def linear_steps(steps: int, every: int) -> list[int]:
    return sorted({*range(0, steps + 1, max(every, 1)), steps})
