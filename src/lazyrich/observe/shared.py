"""Quantities several observers need at one record, computed once: init preactivations (kept for the
run in `state.memory`), the full-batch gradient and the one-step GD update (kept for the record in
`state.cache`), and effective weights m_l·W_l."""
from __future__ import annotations

import torch
from torch import Tensor

from ..models.mlp import Params, preactivations
from .base import State


def member_column(v: Tensor | float, like: Tensor) -> Tensor | float:
    """An [E] per-member value shaped to broadcast against `like` ([E, ...])."""
    if isinstance(v, Tensor) and v.dim() == 1:
        return v.reshape(-1, *[1] * (like.dim() - 1))
    return v


def effective_weight(s: State, l: int, params: Params | None = None) -> Tensor:
    """m_l · W_l: the matrix that acts on h_{l−1} in the forward pass, [E, n_l, n_{l−1}]."""
    w = (params if params is not None else s.params)[f"W{l}"]
    return w * member_column(s.ens.multipliers.get(f"W{l}", 1.0), w)


def init_preactivations(s: State) -> list[Tensor]:
    """z_l at init on the training inputs ([E, n, n_l] each), computed once per run."""
    if "z0" not in s.memory:
        s.memory["z0"] = [z.detach() for z in preactivations(s.ens.net, s.params0, s.data.x, s.ens.multipliers)]
    return s.memory["z0"]


def current_preactivations(s: State) -> list[Tensor]:
    if "z" not in s.cache:
        s.cache["z"] = [z.detach() for z in preactivations(s.ens.net, s.params, s.data.x, s.ens.multipliers)]
    return s.cache["z"]


def layer_inputs(s: State) -> list[Tensor]:
    """h_{l−1} for l = 1..L at the current params: x, σ(z_1), ..., σ(z_{L−1})."""
    from ..models.activations import activation
    act = activation(s.ens.net.activation)
    return [s.data.x] + [act(z) for z in current_preactivations(s)[:-1]]


def gradients(s: State) -> dict[str, Tensor]:
    """Full-batch gradient of the training loss (no weight decay) at the current params."""
    if "grads" not in s.cache:
        from ..dynamics.train import loss_and_grads  # lazy: dynamics imports observe
        active = torch.ones(s.ens.size, dtype=torch.bool, device=s.ens.base_lr.device)
        loss, grads = loss_and_grads(s.ens, s.params, s.data.x, s.data.y, active)
        s.cache.setdefault("loss", loss)
        s.cache["grads"] = grads
    return s.cache["grads"]


def gd_update(s: State, name: str) -> Tensor:
    """The next full-batch GD step of a tensor, −η(∇L + κθ) (schedule factor 1): exact for `gd`."""
    p, g = s.params[name], gradients(s)[name]
    eta, kappa = member_column(s.ens.lr[name], p), member_column(s.ens.weight_decay[name], p)
    return -eta * (g + kappa * p)
