"""An ensemble = one architecture, E members, each with its own init, learning rates, multipliers
and weight decay (per-tensor [E] tensors). Members that share shapes share one batched computation."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd
import torch
from torch import Tensor


from .errors import require
from .models.mlp import MLP, Params, forward
from .param import init as inits
from .param.schemes import layer_table

INITS = ("gaussian", "kunin", "lambda_balanced", "balanced_chain")


@dataclass
class Ensemble:
    """Parameters and per-member hyperparameters. `lr[name]` is the effective learning rate of that
    tensor (base lr × parametrization scale × γ factor), `base_lr` sets the time axis t = Σ η_k."""

    net: MLP
    params: Params
    lr: dict[str, Tensor]
    base_lr: Tensor
    multipliers: dict[str, Tensor]
    weight_decay: dict[str, Tensor]
    members: pd.DataFrame = field(default_factory=pd.DataFrame)
    loss_scale: float = 0.5
    center: Params | None = None  # centred model f(θ) − f(θ_center) (Chizat et al.): lazy without an offset

    @property
    def size(self) -> int:
        return int(self.base_lr.shape[0])

    def with_params(self, params: Params) -> "Ensemble":
        return replace(self, params=params)

    def centered(self) -> "Ensemble":
        """The centred model f − f₀ around the current parameters (a large output scale then gives
        lazy training without an O(scale) offset at init)."""
        return replace(self, center={k: v.detach().clone() for k, v in self.params.items()})

    def select(self, index: Sequence[int]) -> "Ensemble":
        """Members `index` (e.g. one member run alone)."""
        idx = torch.as_tensor(list(index), dtype=torch.long)
        pick = lambda d: {k: v[idx] for k, v in d.items()}  # noqa: E731
        return Ensemble(self.net, pick(self.params), pick(self.lr), self.base_lr[idx], pick(self.multipliers),
                        pick(self.weight_decay), self.members.iloc[list(index)].reset_index(drop=True), self.loss_scale,
                        None if self.center is None else pick(self.center))

    def rates(self) -> dict[str, Tensor]:
        """Gradient-flow rates per tensor: lr / base_lr (GF time is base-lr time)."""
        return {k: v / self.base_lr for k, v in self.lr.items()}


def predict(ens: Ensemble, params: Params, x: Tensor) -> Tensor:
    """Network outputs [E, n, c] of `params` under the ensemble's multipliers (centred if set)."""
    out = forward(ens.net, params, x, ens.multipliers)
    if ens.center is not None:
        out = out - forward(ens.net, ens.center, x, ens.multipliers).detach()
    return out


def _column(members: pd.DataFrame, name: str, default: Any) -> list[Any]:
    return list(members[name]) if name in members else [default] * len(members)


def build(net: MLP, members: pd.DataFrame | Iterable[Mapping[str, Any]], *, scheme: str = "sp", optimizer: str = "sgd",
          lr: float = 0.1, gamma: float = 1.0, gamma_lr: bool | None = None, weight_decay: float = 0.0,
          init: str = "gaussian", std_scale: float = 1.0, overrides: dict[str, dict[str, float]] | None = None,
          loss_scale: float = 0.5, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> Ensemble:
    """Build an ensemble: one row of `members` per configuration.

    Columns may override the keyword defaults per member: `seed`, `scheme`, `lr`, `gamma`,
    `weight_decay`, `std_scale` (gaussian), `tau` and `delta` (kunin: δ = a² − ||w||², lr-free),
    `lam` (lambda_balanced, balanced_chain). Any other column is kept as a config column.
    """
    members = pd.DataFrame(list(members)) if not isinstance(members, pd.DataFrame) else members.reset_index(drop=True)
    require(len(members) > 0, "an ensemble needs at least one member: give one row per configuration")
    require(init in INITS, f"unknown init {init!r}: choose one of {', '.join(INITS)}")
    E = len(members)
    seeds = [int(s) for s in _column(members, "seed", 0)]
    schemes, gammas = _column(members, "scheme", scheme), [float(g) for g in _column(members, "gamma", gamma)]
    base = torch.tensor([float(x) for x in _column(members, "lr", lr)], dtype=dtype)
    kappa = torch.tensor([float(x) for x in _column(members, "weight_decay", weight_decay)], dtype=dtype)
    require(bool((base > 0).all()), "learning rates must be positive: fix the lr column or --lr")
    require(bool((kappa >= 0).all()), "weight decay must be non-negative")
    cache: dict[tuple[str, float], list] = {}
    tables = []
    for s, g in zip(schemes, gammas):
        if (s, g) not in cache:
            cache[(s, g)] = layer_table(net.widths, s, optimizer, g, gamma_lr, net.bias, overrides)
        tables.append(cache[(s, g)])
    names = [r.name for r in tables[0]]
    col = lambda attr: {n: torch.tensor([getattr(t[i], attr) for t in tables], dtype=dtype) for i, n in enumerate(names)}  # noqa: E731
    lrs = {n: base * v for n, v in col("lr_scale").items()}
    wds = {n: kappa * v for n, v in col("wd_scale").items()}
    mults = col("multiplier")
    if init == "gaussian":
        std = torch.tensor([float(x) for x in _column(members, "std_scale", std_scale)], dtype=dtype)
        by_table: dict[int, list[int]] = {}
        for e, t in enumerate(tables):
            by_table.setdefault(id(t), []).append(e)
        params: Params = {n: torch.empty((E, *shape), dtype=dtype) for n, shape in net.shapes().items()}
        for idx in by_table.values():
            part = inits.gaussian(net, tables[idx[0]], [seeds[e] for e in idx], dtype, std[idx])
            for n in params:
                params[n][idx] = part[n]
    elif init == "kunin":
        params = inits.kunin(net, members["tau"].to_numpy(float), members["delta"].to_numpy(float), seeds, dtype=dtype)
    elif init == "lambda_balanced":
        require(net.depth == 2, "lambda_balanced init needs a two-layer net: widths=(d, h, c)")
        lam = _column(members, "lam", 0.0)
        parts = [inits.lambda_balanced(net.widths, float(lam[e]), [seeds[e]], scale=std_scale,
                                          lr=(float(lrs["W1"][e]), float(lrs["W2"][e])), dtype=dtype) for e in range(E)]
        params = {n: torch.cat([p[n] for p in parts]) for n in parts[0]}
    else:
        lam = _column(members, "lam", 0.0)
        parts = [inits.balanced_chain(net.widths, [seeds[e]], float(lam[e]), scale=std_scale,
                                         lr=[float(lrs[n][e]) for n in net.names], dtype=dtype) for e in range(E)]
        params = {n: torch.cat([p[n] for p in parts]) for n in parts[0]}
    to = lambda d: {k: v.to(device) for k, v in d.items()}  # noqa: E731
    return Ensemble(net, to(params), to(lrs), base.to(device), to(mults), to(wds), members, loss_scale)
