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
        self.blocks.append((step, time.detach(), observable, layer, v.reshape(v.shape[0], -1)))

    def table(self, members: pd.DataFrame | None = None) -> pd.DataFrame:
        if not self.blocks:
            return pd.DataFrame(columns=COLUMNS)
        parts = []
        for step, time, obs, layer, v in self.blocks:
            E, K = v.shape
            vals = v.to("cpu", torch.float64).numpy().reshape(-1)
            parts.append(pd.DataFrame({
                "member": np.repeat(np.arange(E), K),
                "step": np.full(E * K, step, dtype=np.int64),
                "time": np.repeat(time.to("cpu", torch.float64).numpy(), K),
                "observable": obs, "layer": layer,
                "index": np.tile(np.arange(K), E),
                "value": vals,
            }))
        out = pd.concat(parts, ignore_index=True)
        out["observable"] = out["observable"].astype("category")
        out["layer"] = out["layer"].astype("category")
        if members is not None and len(members.columns):
            cfg = members.reset_index(drop=True).copy()
            cfg.insert(0, "member", np.arange(len(cfg)))
            out = out.merge(cfg, on="member", how="left")
            cols = ["member", *[c for c in cfg.columns if c != "member"], *COLUMNS[1:]]
            out = out[cols]
        return out


def log_steps(steps: int, num: int = 20) -> list[int]:
    """0 and `steps` plus ~num log-spaced steps in between (unique, sorted)."""
    if steps <= 0:
        return [0]
    pts = np.unique(np.round(np.logspace(0, np.log10(steps), num)).astype(int))
    return sorted({0, steps, *pts.tolist()})


def linear_steps(steps: int, every: int) -> list[int]:
    return sorted({*range(0, steps + 1, max(every, 1)), steps})
