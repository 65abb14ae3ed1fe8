"""Optimizers as pure, batched updates on param dicts (every tensor [E, ...]; members never interact).

`step(spec, params, grads, state, lr, wd)` returns (new_params, new_state); `lr` and `wd` are
per-tensor [E] tensors (learning rate already scaled by parametrization and schedule; wd = κ).
"""
from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

Kind = Literal["gd", "sgd", "momentum", "adam", "muon", "spectral"]
# torch.optim.Muon's quintic Newton-Schulz coefficients (Keller Jordan's Muon)
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


class OptimizerSpec(BaseModel):
    """What update to apply. `gd` is full batch; every other kind uses `batch_size` when given.

    momentum: heavy ball (torch.optim.SGD semantics, buffer = μ·buffer + g). adam: torch.optim.Adam.
    muon: torch.optim.Muon semantics (EMA buffer, Nesterov, Newton-Schulz orthogonalization, decoupled
    decay); its shape-dependent lr adjustment is `adjust_lr` (torch's default is "original"; ours is
    None because the parametrization's lr scale already carries sqrt(fan_out/fan_in)). spectral: the
    normalized update ΔW = −η·G/||G||₂ of Yang-Simon-Bernstein eq. 17 (η from the table of the
    "muon" family, which holds the sqrt(fan_out/fan_in) factor).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Kind = "gd"
    batch_size: int | None = Field(default=None, gt=0)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(default=1e-8, gt=0)
    weight_decay_mode: Literal["coupled", "decoupled"] = "coupled"
    ns_steps: int = Field(default=5, ge=1, le=50)
    ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS
    ns_eps: float = 1e-7
    ns_dtype: Literal["float64", "float32", "bfloat16"] | None = None  # None: the parameters' dtype
    adjust_lr: Literal["original", "match_rms_adamw"] | None = None

    @property
    def family(self) -> str:
        """Parametrization family: sgd-like, adam, or normalized (muon) updates."""
        return {"adam": "adam", "muon": "muon", "spectral": "muon"}.get(self.kind, "sgd")


def _col(x: Tensor, like: Tensor) -> Tensor:
    return x if x.dim() == like.dim() else x.reshape(-1, *[1] * (like.dim() - 1))  # callers may pass it shaped


def orthogonalize(g: Tensor, steps: int = 5, coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
                  eps: float = 1e-7, dtype: torch.dtype | None = None) -> Tensor:
    """Batched quintic Newton-Schulz (as torch.optim.Muon): ≈ U S' Vᵀ with S' ∈ (0.5, 1.5); g: [E, m, n]."""
    a, b, c = coefficients
    x = g.to(dtype or g.dtype)
    tall = g.shape[-2] > g.shape[-1]
    if tall:
        x = x.transpose(-1, -2)
    x = x / torch.linalg.matrix_norm(x).clamp(min=eps).reshape(-1, 1, 1).to(x.dtype)
    for _ in range(steps):  # same operation order as torch.optim.Muon (so bf16 rounding matches)
        gram = x @ x.transpose(-1, -2)
        x = torch.baddbmm(x, torch.baddbmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    if tall:
        x = x.transpose(-1, -2)
    return x.to(g.dtype)


def _muon_adjust(mode: str | None, shape: torch.Size) -> float:
    rows, cols = shape[-2], shape[-1]
    if mode == "original":
        return max(1.0, rows / cols) ** 0.5
    if mode == "match_rms_adamw":
        return 0.2 * max(rows, cols) ** 0.5
    return 1.0


def init_state(spec: OptimizerSpec, params: dict[str, Tensor]) -> dict[str, dict[str, Tensor]]:
    if spec.kind in ("momentum", "muon"):
        return {k: {"buf": torch.zeros_like(v)} for k, v in params.items()}
    if spec.kind == "adam":
        return {k: {"m": torch.zeros_like(v), "v": torch.zeros_like(v), "t": torch.zeros((), dtype=v.dtype)} for k, v in params.items()}
    return {}


def step(spec: OptimizerSpec, params: dict[str, Tensor], grads: dict[str, Tensor], state: dict[str, dict[str, Tensor]],
         lr: dict[str, Tensor], wd: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, dict[str, Tensor]]]:
    """One update of every tensor. A tensor missing from `wd` has no weight decay (the same numbers as a
    zero decay for finite weights, one pass less)."""
    new_p, new_s = {}, {}
    for name, p in params.items():
        g, eta = grads[name], _col(lr[name], p)
        st = state.get(name, {})
        if name in wd:
            kappa = _col(wd[name], p)
            if spec.weight_decay_mode == "coupled":
                g = g + kappa * p  # L2 penalty κ/2·||p||² in the loss
            else:
                p = p * (1 - eta * kappa)  # decoupled (AdamW, torch Muon): shrink by the unadjusted lr
        if spec.kind in ("gd", "sgd") or (spec.kind in ("muon", "spectral") and p.dim() < 3):
            new_p[name] = p - eta * g  # biases under normalized updates: plain gradient step
            if spec.kind == "muon":
                new_s[name] = st
        elif spec.kind == "momentum":
            buf = spec.momentum * st["buf"] + g
            upd = g + spec.momentum * buf if spec.nesterov else buf
            new_p[name], new_s[name] = p - eta * upd, {"buf": buf}
        elif spec.kind == "adam":
            b1, b2 = spec.betas
            t = st["t"] + 1
            m = b1 * st["m"] + (1 - b1) * g
            v = b2 * st["v"] + (1 - b2) * g * g
            denom = (v / (1 - b2**t)).sqrt() + spec.eps
            new_p[name] = p - eta / (1 - b1**t) * m / denom
            new_s[name] = {"m": m, "v": v, "t": t}
        elif spec.kind == "muon":
            buf = st["buf"].lerp(g, 1 - spec.momentum)
            upd = g.lerp(buf, spec.momentum) if spec.nesterov else buf
            dtype = getattr(torch, spec.ns_dtype) if spec.ns_dtype else None
            o = orthogonalize(upd, spec.ns_steps, spec.ns_coefficients, spec.ns_eps, dtype)
            new_p[name] = p - eta * _muon_adjust(spec.adjust_lr, p.shape) * o
            new_s[name] = {"buf": buf}
        elif spec.kind == "spectral":
            norm = torch.linalg.matrix_norm(g, ord=2).clamp(min=1e-300)
            new_p[name] = p - eta * g / _col(norm, g)
    return new_p, new_s
