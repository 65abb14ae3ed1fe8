"""Ensemble-native MLPs as pure functions.

Parameters are a dict ``{"W1": [E, n1, n0], "b1": [E, n1], ..., "WL": [E, nL, n_{L-1}]}``; every
tensor carries the member axis E first and members never interact. The forward pass is

    h_0 = x,   z_l = m_l · W_l h_{l-1} + b_l,   h_l = σ(z_l) (l < L),   f = z_L

with per-member multipliers ``m_l`` ([E] tensors or floats) set by the parametrization. A two-layer
net ``f = m_out · A σ(m_in · W x)`` is ``widths=(d, h, c)`` with W = W1, A = W2.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from .._batched import bmm
from ..errors import require
from . import activations

Params = dict[str, Tensor]


@dataclass(frozen=True)
class MLP:
    """Architecture of an ensemble of MLPs: widths (d, n_1, ..., c), activation, biases."""

    widths: tuple[int, ...]
    activation: str = "relu"
    bias: bool = False
    bias_out: bool = False  # a bias on the readout (off by default: it does not enter any Q)
    names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        widths = tuple(int(w) for w in self.widths)
        require(len(widths) >= 2, f"widths {self.widths} need at least (input, output): e.g. widths=(10, 50, 1)")
        require(all(w > 0 for w in widths), f"widths {self.widths} must all be positive integers")
        activations.check(self.activation)
        object.__setattr__(self, "widths", widths)
        object.__setattr__(self, "names", tuple(f"W{l}" for l in range(1, len(widths))))

    @property
    def depth(self) -> int:
        """Number of weight layers L."""
        return len(self.widths) - 1

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-member shape of every parameter tensor, input layer first."""
        out: dict[str, tuple[int, ...]] = {}
        for l in range(1, self.depth + 1):
            out[f"W{l}"] = (self.widths[l], self.widths[l - 1])
            if (self.bias and l < self.depth) or (self.bias_out and l == self.depth):
                out[f"b{l}"] = (self.widths[l],)
        return out

    def forward(self, params: Params, x: Tensor, multipliers: dict[str, Tensor | float] | None = None) -> Tensor:
        return forward(self, params, x, multipliers)

    def preactivations(self, params: Params, x: Tensor, multipliers: dict[str, Tensor | float] | None = None) -> list[Tensor]:
        return preactivations(self, params, x, multipliers)


def _expand(m: Tensor | float, like: Tensor) -> Tensor | float:
    if isinstance(m, Tensor) and m.dim() == 1:
        return m.reshape(-1, *([1] * (like.dim() - 1)))
    return m


def _linear(w: Tensor, h: Tensor) -> Tensor:
    # h: [E, n, in] or shared [n, in]; w: [E, out, in] -> [E, n, out]. A batched matmul (one GEMM
    # per member, never one GEMM across members) keeps member e bitwise equal to its solo run.
    if h.dim() == 2:
        h = h.expand(w.shape[0], *h.shape)
    return bmm(h, w.transpose(-1, -2))


def preactivations(net: MLP, params: Params, x: Tensor, multipliers: dict[str, Tensor | float] | None = None) -> list[Tensor]:
    """All preactivations z_1..z_L, each [E, n, n_l]; x is [n, d] (shared) or [E, n, d]."""
    require(x.shape[-1] == net.widths[0], f"input has {x.shape[-1]} features but the network expects {net.widths[0]}: fix widths[0] or the data")
    mult = multipliers or {}
    h, zs = x, []
    act = activations.activation(net.activation)
    for l in range(1, net.depth + 1):
        w = params[f"W{l}"]
        z = _linear(w, h)
        m = mult.get(f"W{l}", 1.0)
        if not (isinstance(m, float) and m == 1.0):
            z = z * _expand(m, z)
        b = params.get(f"b{l}")
        if b is not None:
            z = z + b.unsqueeze(-2)
        zs.append(z)
        h = act(z)
    return zs


def forward(net: MLP, params: Params, x: Tensor, multipliers: dict[str, Tensor | float] | None = None) -> Tensor:
    """Network outputs f(x): [E, n, c]."""
    return preactivations(net, params, x, multipliers)[-1]


def ensemble_size(params: Params) -> int:
    return next(iter(params.values())).shape[0]


def select(params: Params, index: Tensor | slice | list[int]) -> Params:
    """Members `index` of an ensemble (a view where possible)."""
    return {k: v[index] for k, v in params.items()}


def mse_grads(net: MLP, params: Params, x: Tensor, y: Tensor, multipliers: dict[str, Tensor | float] | None = None,
              scale: float = 0.5, weight: Tensor | None = None, offset: Tensor | None = None) -> tuple[Tensor, Params]:
    """Per-member loss ``scale·mean_i ||f_i − y_i||²`` and its gradients by hand-written backprop.

    Same numbers as autograd (tests: 1e-12) at a fraction of its overhead. `weight` ([E]) multiplies
    each member's gradient (0 freezes a member; `torch.where`, so NaNs never leak); `offset`
    ([E, n, c]) is subtracted from the outputs (centred model)."""
    mult = multipliers or {}
    act, dact = activations.activation(net.activation), activations.derivative(net.activation)
    zs = preactivations(net, params, x, mult)
    f = zs[-1] if offset is None else zs[-1] - offset
    r = f - y
    n = r.shape[-2]
    loss = scale * r.pow(2).sum(-1).mean(-1)
    g = r * (2 * scale / n)
    if weight is not None:
        g = torch.where(weight.reshape(-1, 1, 1) != 0, g * weight.reshape(-1, 1, 1), torch.zeros_like(g))
    grads: Params = {}
    for l in range(net.depth, 0, -1):
        h = (x if x.dim() == 3 else x.expand(g.shape[0], *x.shape)) if l == 1 else act(zs[l - 2])
        m = mult.get(f"W{l}", 1.0)
        gm = g * _expand(m, g) if not (isinstance(m, float) and m == 1.0) else g
        grads[f"W{l}"] = bmm(gm.transpose(-1, -2), h)
        if f"b{l}" in params:
            grads[f"b{l}"] = g.sum(-2)
        if l > 1:
            g = bmm(gm, params[f"W{l}"]) * dact(zs[l - 2])
    return loss, {k: grads[k] for k in params}
