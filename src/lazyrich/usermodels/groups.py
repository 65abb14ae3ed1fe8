"""Optimizer param groups and the effective per-tensor table of a parametrized model."""
from __future__ import annotations

import math
from typing import Any, Literal

import pandas as pd
import torch
from torch import nn

from ..errors import require
from .parametrize import Plan, plan, plan_of
from .distributed import unwrap

Select = Literal["all", "matrices", "others"]


def _muon_adjust(fn: str | None, shape: tuple[int, ...]) -> float:
    # torch.optim.Muon multiplies every lr by this shape factor; the table's lr already holds
    # sqrt(fan_out/fan_in), so we divide it back out (else the shape factor would count twice)
    rows, cols = shape[0], int(math.prod(shape[1:]))
    if fn is None or fn == "original":
        return max(1.0, rows / cols) ** 0.5
    require(fn == "match_rms_adamw", f"unknown Muon adjust_lr_fn {fn!r}: use None, 'original' or 'match_rms_adamw'")
    return 0.2 * max(rows, cols) ** 0.5


def param_groups(model: nn.Module, lr: float, weight_decay: float = 0.0, *, select: Select = "all",
                 independent_wd: bool = False, muon_adjust_lr_fn: str | None = "original",
                 eps: float | None = None) -> list[dict[str, Any]]:
    """Param groups for any `torch.optim` optimizer: lr·lr_scale and weight_decay·wd_scale per tensor
    (tensors with equal settings share a group; each group lists its tensors under "names").

    `independent_wd=True` divides each weight decay by the tensor's lr scale so the per-step shrink
    lr·wd is the same for every tensor and width (microsoft/mup's MuSGD/MuAdam convention).
    `select="matrices"` keeps 2-D tensors only (for torch.optim.Muon), "others" the rest. For a model
    parametrized for "muon", the lr is divided by torch.optim.Muon's own shape adjustment
    (`muon_adjust_lr_fn`, as you pass it to Muon; None to skip) so the update equals the table's.
    `eps` (Adam's ε) gives each group eps·eps_scale: m_L^(−α) inside residual blocks under a depth
    scheme (CompleteP), 1 elsewhere; None leaves ε to the optimizer.
    """
    require(eps is None or (eps >= 0 and math.isfinite(eps)), f"eps={eps} must be a non-negative finite number")
    require(lr > 0 and math.isfinite(lr), f"lr={lr} must be a positive finite number")
    require(weight_decay >= 0, f"weight_decay={weight_decay} must be non-negative")
    require(select in ("all", "matrices", "others"), f"select={select!r}: choose all, matrices or others")
    p = plan_of(model)
    params = dict(unwrap(model).named_parameters())  # a DDP / torch.compile wrapper prefixes the names
    groups: dict[tuple[float, ...], dict[str, Any]] = {}
    for r in p.rows:
        t = params[r.name]
        if (select == "matrices" and t.dim() != 2) or (select == "others" and t.dim() == 2):
            continue
        g_lr = lr * r.lr_scale
        if p.optimizer == "muon" and t.dim() == 2 and muon_adjust_lr_fn is not None:
            g_lr /= _muon_adjust(muon_adjust_lr_fn, r.shape)
        wd = weight_decay * r.wd_scale / (r.lr_scale if independent_wd and r.lr_scale > 0 else 1.0)
        extra = {} if eps is None else {"eps": eps * r.eps_scale}
        group = groups.setdefault((g_lr, wd, *extra.values()), {"params": [], "names": [], "lr": g_lr, "weight_decay": wd, **extra})
        group["params"].append(t)
        group["names"].append(r.name)
    return list(groups.values())


def table(p: Plan, model: nn.Module | None = None) -> pd.DataFrame:
    """One row per tensor: role, fans, init std, multiplier, lr and wd scales, the abc-invariants
    c_init = m·σ and c_lr = m²·lr (SGD) or m·lr (Adam, Muon), their width exponents (c ∝ width^exp),
    the depth exponents (lr ∝ m_L^lr_depth_exp inside residual blocks; a branch output's multiplier
    ∝ m_L^branch_depth_exp) and the measured std when `model` is given."""
    rows = pd.DataFrame([{**r.__dict__, "shape": "×".join(map(str, r.shape))} for r in p.rows])
    rows["c_init"] = rows["multiplier"] * rows["init_std"]
    power = 2 if p.optimizer == "sgd" else 1
    rows["c_lr"] = rows["multiplier"] ** power * rows["lr_scale"]
    if model is not None:
        params = dict(model.named_parameters())
        with torch.no_grad():
            rows["std_now"] = [float(params[n].detach().double().std()) if params[n].numel() > 1 else float("nan")
                               for n in rows["name"]]
    return rows


def inspect(model: nn.Module, scheme: str | None = None, base: nn.Module | None = None, optimizer: str = "sgd",
            **kwargs: Any) -> pd.DataFrame:
    """The effective per-tensor table of a parametrized model, or — given `scheme` — the table that
    `parametrize(model, scheme, base, optimizer, **kwargs)` would install (the model is not changed)."""
    p = plan(model, scheme, base, optimizer, **kwargs) if scheme is not None else plan_of(model)
    return table(p, model if scheme is not None else unwrap(model))
