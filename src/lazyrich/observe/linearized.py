"""The linearized baseline: train f_lin(θ) = f(θ⁰) + J(θ⁰)(θ − θ⁰) next to the network and measure the
function-space distance between the two (a direct lazy test: lazy training ⇔ the network stays on its
linearization). Combine with `Ensemble.centered()` (f − f₀, Chizat et al.) to make a large output scale
lazy without an O(scale) offset.

f_lin is linear in Δ = θ − θ⁰, so GD on it is kernel regression with the lr-weighted NTK at init: on
the training set f_{k+1} − y = (I − (2s/n) K₀)(f_k − y) without weight decay (s = loss scale). J(θ⁰)Δ
and J(θ⁰)ᵀr are propagated by hand through the init activations (σ'(z⁰) frozen): each costs about one
forward pass, with no per-sample Jacobian.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from torch import Tensor

from ..conventions import mse
from ..ensemble import Ensemble, predict
from ..errors import require
from ..models.activations import activation, derivative
from ..models.mlp import Params, preactivations
from .base import Observation, State, register
from .shared import member_column


def _apply(w: Tensor, h: Tensor) -> Tensor:  # [E, out, in] on [n, in] (shared) or [E, n, in] → [E, n, out]
    return torch.einsum("ni,eoi->eno", h, w) if h.dim() == 2 else torch.bmm(h, w.transpose(1, 2))


@dataclass(frozen=True)
class Linearization:
    """An ensemble's network linearized at θ⁰ on fixed inputs x: f⁰ = f(θ⁰; x), the layer inputs h⁰,
    the frozen slopes σ'(z⁰) and the effective init weights m_l W_l⁰."""

    f0: Tensor
    inputs: list[Tensor]
    slopes: list[Tensor]
    weights: list[Tensor]
    multipliers: list[Tensor | float]
    biases: tuple[bool, ...]

    def predict(self, delta: Params) -> Tensor:
        """f⁰ + J(θ⁰)Δ, [E, n, c]: the tangent of z_l is m_l(ΔW_l h⁰_{l−1} + W_l⁰ ḣ_{l−1}) + Δb_l."""
        dz = None
        for l, (h, m) in enumerate(zip(self.inputs, self.multipliers), start=1):
            dw = delta[f"W{l}"]
            t = _apply(dw * member_column(m, dw), h)
            if dz is not None:
                t = t + _apply(self.weights[l - 1], self.slopes[l - 2] * dz)
            dz = t + delta[f"b{l}"].unsqueeze(1) if self.biases[l - 1] else t
        return self.f0 + dz

    def gradient(self, r: Tensor) -> Params:
        """J(θ⁰)ᵀ r per member for r = ∂L/∂f [E, n, c]: backprop through the frozen slopes."""
        out: Params = {}
        g = r
        for l in range(len(self.inputs), 0, -1):
            h, m = self.inputs[l - 1], self.multipliers[l - 1]
            gw = torch.einsum("eno,ni->eoi", g, h) if h.dim() == 2 else torch.bmm(g.transpose(1, 2), h)
            out[f"W{l}"] = gw * member_column(m, gw)
            if self.biases[l - 1]:
                out[f"b{l}"] = g.sum(1)
            if l > 1:
                g = torch.bmm(g, self.weights[l - 1]) * self.slopes[l - 2]
        return out


def linearize(ens: Ensemble, params0: Params, x: Tensor) -> Linearization:
    """The linearization of every member at `params0` on inputs x ([n, d] shared or [E, n, d])."""
    net, mult = ens.net, ens.multipliers
    zs = [z.detach() for z in preactivations(net, params0, x, mult)]
    act, slope = activation(net.activation), derivative(net.activation)
    ms = [mult.get(f"W{l}", 1.0) for l in range(1, net.depth + 1)]
    weights = [params0[f"W{l}"] * member_column(m, params0[f"W{l}"]) for l, m in enumerate(ms, start=1)]
    return Linearization(predict(ens, params0, x).detach(), [x] + [act(z) for z in zs[:-1]],
                         [slope(z) for z in zs[:-1]], weights, ms,
                         tuple(f"b{l}" in params0 for l in range(1, net.depth + 1)))


def linear_gd_step(ens: Ensemble, params0: Params, delta: Params, lin: Linearization, y: Tensor,
                   factor: float = 1.0) -> tuple[Params, Tensor]:
    """One full-batch GD step on the linearized loss, Δ ← Δ − η(J⁰ᵀ∂L/∂f + κ(θ⁰ + Δ)); returns the new Δ
    and the linearized prediction it was taken from."""
    f_lin = lin.predict(delta)
    grads = lin.gradient(2 * ens.loss_scale / f_lin.shape[-2] * (f_lin - y))
    out = {}
    for k, d in delta.items():
        eta, kappa = member_column(ens.lr[k] * factor, d), member_column(ens.weight_decay[k], d)
        out[k] = d - eta * (grads[k] + kappa * (params0[k] + d))
    return out, f_lin


def rms_distance(a: Tensor, b: Tensor) -> Tensor:
    """sqrt(mean_i ‖a_i − b_i‖²) over samples, [E]."""
    return (a - b).pow(2).sum(-1).mean(-1).sqrt()


@register("linearized")
@dataclass
class Linearized:
    """Trains the linearization around θ⁰ by full-batch GD with the ensemble's learning rates and weight
    decay (constant schedule), advancing it to each recorded step, and records `linear_loss`,
    `linear_distance` = RMS ‖f − f_lin‖ on the training inputs, and with test data `linear_test_loss`
    and `linear_test_distance`. It follows `train(..., "gd")` with a constant schedule: other runs
    (flow, schedules) are refused; for SGD it still trains full batch. Costs about one training step
    per step (it is a second model, not a measurement)."""

    name: str = "linearized"

    def __call__(self, s: State) -> Iterator[Observation]:
        ens, data = s.ens, s.data
        expected = s.step * ens.base_lr
        require(bool(torch.allclose(s.time, expected, rtol=1e-9, atol=0) or
                     ((s.time <= expected * (1 + 1e-9)).all() and (s.time == expected).any())),
                "the linearized observer follows full-batch GD with a constant schedule (time = step·lr): "
                "drop it for gradient flow or learning-rate schedules")
        mem = s.memory.get("linearized")
        if mem is None:
            mem = {"step": 0, "delta": {k: torch.zeros_like(v) for k, v in s.params0.items()},
                   "train": linearize(ens, s.params0, data.x),
                   "test": linearize(ens, s.params0, data.x_test) if data.x_test is not None else None}
            s.memory["linearized"] = mem
        require(s.step >= mem["step"], "records must come in increasing step order")
        delta = mem["delta"]
        while mem["step"] < s.step:
            delta, _ = linear_gd_step(ens, s.params0, delta, mem["train"], data.y)
            mem["step"] += 1
        mem["delta"] = delta
        f_lin = mem["train"].predict(delta)
        yield Observation("linear_loss", "", mse(f_lin, data.y, ens.loss_scale))
        yield Observation("linear_distance", "", rms_distance(predict(ens, s.params, data.x), f_lin))
        if mem["test"] is not None:
            f_test = mem["test"].predict(delta)
            yield Observation("linear_test_loss", "", mse(f_test, data.y_test, ens.loss_scale))
            yield Observation("linear_test_distance", "", rms_distance(predict(ens, s.params, data.x_test), f_test))
