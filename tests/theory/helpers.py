"""Shared builders for theory tests: ensembles with hand-set weights and per-member rates."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from lazyrich import MLP, build
from lazyrich.ensemble import Ensemble


def ensemble(widths: tuple[int, ...], params: dict[str, np.ndarray], rates: dict[str, list[float]] | None = None,
             activation: str = "linear", columns: dict[str, list] | None = None, base_lr: float = 1.0) -> Ensemble:
    """An ensemble whose members have the given weights ([E, ...] arrays) and per-tensor rates
    (effective lr = base_lr × rate), unit multipliers, float64."""
    E = next(iter(params.values())).shape[0]
    members = pd.DataFrame(columns or {"member_id": list(range(E))})
    ens = build(MLP(widths, activation), members, scheme="sp", lr=base_lr)
    ens = ens.with_params({k: torch.tensor(np.asarray(v), dtype=torch.float64) for k, v in params.items()})
    for name, r in (rates or {}).items():
        ens.lr[name] = base_lr * torch.tensor(r, dtype=torch.float64)
    for name in ens.multipliers:
        ens.multipliers[name] = torch.ones(E, dtype=torch.float64)
    return ens


def series(records: pd.DataFrame, observable: str, member: int, layer: str | None = None) -> np.ndarray:
    """Recorded values of one member as [T, K] (time-ordered)."""
    r = records[(records.observable == observable) & (records.member == member)]
    if layer is not None:
        r = r[r.layer == layer]
    r = r.sort_values(["step", "index"])
    return r.value.to_numpy().reshape(r.step.nunique(), -1)


def agf_task(rng: np.random.Generator, d: int = 5, c: int = 4, n: int = 40,
             s: tuple[float, ...] = (3.0, 1.5, 0.75, 0.375)) -> tuple[np.ndarray, np.ndarray]:
    """Whitened X [n, d] and Y = X βᵀ with β = U diag(s) V[:, :c]ᵀ of random orthogonal U, V: a linear
    task whose modes have strengths `s` (well separated, so AGF's drops are distinct)."""
    U, _ = np.linalg.qr(rng.normal(size=(c, c)))
    V, _ = np.linalg.qr(rng.normal(size=(d, d)))
    X = np.sqrt(n) * np.linalg.qr(rng.normal(size=(n, d)))[0]
    return X, X @ (U @ np.diag(np.asarray(s)) @ V[:, :c].T).T
