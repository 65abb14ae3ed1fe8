"""Sharpness: the top eigenvalue of the Hessian of the training loss, per member, from batched
Hessian-vector products (Lanczos with full reorthogonalisation, or power iteration).

Members never interact, so the Hessian of Σ_e L_e is block diagonal and one HVP of the summed loss
with a stacked vector [E, P] gives every member's HVP at once. Under GD with one learning rate η the
edge of stability sits at sharpness 2/η; with per-tensor rates compare the `preconditioned` sharpness
λ_max(D^{1/2} H D^{1/2}), D = diag(η_p), with 2.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Literal

import torch
from torch import Tensor

from ..conventions import mse
from ..ensemble import Ensemble, predict
from ..errors import require
from ..models.mlp import Params
from .base import Observation, State, register

HVP = Callable[[Tensor], Tensor]


def _pack(tensors: dict[str, Tensor] | list[Tensor]) -> Tensor:
    vals = tensors.values() if isinstance(tensors, dict) else tensors
    return torch.cat([v.reshape(v.shape[0], -1) for v in vals], 1)


def hessian_vector_product(ens: Ensemble, params: Params, x: Tensor, y: Tensor, preconditioned: bool = False) -> HVP:
    """v [E, P] ↦ H v [E, P] for each member's training loss (packed in `params` order).
    `preconditioned=True` gives D^{1/2} H D^{1/2} v with D the per-tensor effective learning rates."""
    names = list(params)
    leaves = [params[k].detach().requires_grad_(True) for k in names]
    sizes = [v[0].numel() for v in leaves]
    with torch.enable_grad():
        loss = mse(predict(ens, dict(zip(names, leaves)), x), y, ens.loss_scale).sum()
        grads = torch.autograd.grad(loss, leaves, create_graph=True)
    root = _pack([ens.lr[k].reshape(-1, 1).sqrt().expand(-1, m) for k, m in zip(names, sizes)]) if preconditioned else None

    def hvp(v: Tensor) -> Tensor:
        if root is not None:
            v = v * root
        parts = torch.split(v, sizes, dim=1)
        with torch.enable_grad():
            dot = sum((g * p.reshape(g.shape)).sum() for g, p in zip(grads, parts))
            hv = torch.autograd.grad(dot, leaves, retain_graph=True)
        out = _pack(list(hv)).detach()
        return out * root if root is not None else out
    return hvp


def _unit(v: Tensor) -> Tensor:
    return v / v.norm(dim=1, keepdim=True)


def lanczos_top(hvp: HVP, v0: Tensor, iters: int, generator: torch.Generator | None = None) -> Tensor:
    """Largest algebraic eigenvalue per member from `iters` Lanczos steps (full reorthogonalisation;
    a member whose Krylov space closes early restarts from a fresh orthogonal vector, so the
    tridiagonal matrix splits and its eigenvalues stay exact). iters ≥ P gives the exact value."""
    E, P = v0.shape
    iters = min(iters, P)
    basis = torch.zeros(E, iters, P, dtype=v0.dtype, device=v0.device)
    alpha = torch.zeros(E, iters, dtype=v0.dtype, device=v0.device)
    beta = torch.zeros(E, iters, dtype=v0.dtype, device=v0.device)
    q = _unit(v0)
    for j in range(iters):
        basis[:, j] = q
        w = hvp(q)
        alpha[:, j] = (w * q).sum(1)
        for _ in range(2):  # full reorthogonalisation against the whole basis, twice for stability
            w = w - torch.einsum("ej,ejp->ep", torch.einsum("ejp,ep->ej", basis[:, : j + 1], w), basis[:, : j + 1])
        if j == iters - 1:
            break
        b = w.norm(dim=1)
        scale = alpha[:, : j + 1].abs().amax(1).clamp(min=1e-300)
        closed = b <= 1e-12 * scale
        if bool(closed.any()):  # invariant subspace found: continue from a new orthogonal direction
            r = torch.randn(P, dtype=v0.dtype, generator=generator).to(v0.device).expand(E, P)
            for _ in range(2):
                r = r - torch.einsum("ej,ejp->ep", torch.einsum("ejp,ep->ej", basis[:, : j + 1], r), basis[:, : j + 1])
            w = torch.where(closed.unsqueeze(1), r, w)
            b = torch.where(closed, torch.zeros_like(b), b)
        beta[:, j] = b
        q = _unit(w)
    T = torch.diag_embed(alpha) + torch.diag_embed(beta[:, :-1], 1) + torch.diag_embed(beta[:, :-1], -1)
    return torch.linalg.eigvalsh(T)[:, -1]


def power_top(hvp: HVP, v0: Tensor, iters: int) -> Tensor:
    """Rayleigh quotient after `iters` power steps: the eigenvalue of largest |λ| (the top one whenever
    the spectrum's positive end dominates, as for sharpness near a minimum)."""
    v = _unit(v0)
    for _ in range(iters):
        v = _unit(hvp(v))
    return (hvp(v) * v).sum(1)


def sharpness(ens: Ensemble, params: Params, x: Tensor, y: Tensor, iters: int = 20,
              method: Literal["lanczos", "power"] = "lanczos", preconditioned: bool = False, seed: int = 0) -> Tensor:
    """Top Hessian eigenvalue of each member's training loss (`ens.loss_scale`, no weight decay), [E]."""
    require(method in ("lanczos", "power"), f"method={method!r}: choose 'lanczos' or 'power'")
    require(iters >= 1, f"iters={iters} must be at least 1")
    hvp = hessian_vector_product(ens, params, x, y, preconditioned)
    gen = torch.Generator().manual_seed(int(seed))
    P = sum(v[0].numel() for v in params.values())
    # one start vector shared by all members: a member's value does not depend on its ensemble
    v0 = torch.randn(P, generator=gen, dtype=torch.float64).to(next(iter(params.values()))).expand(ens.size, P)
    return lanczos_top(hvp, v0, iters, gen) if method == "lanczos" else power_top(hvp, v0, iters)


@register("sharpness")
@dataclass
class Sharpness:
    """`sharpness` λ_max(H) of the training loss (or `preconditioned_sharpness` λ_max(D^{1/2}HD^{1/2}),
    edge of stability at 2) by `iters` batched HVPs."""

    name: str = "sharpness"
    iters: int = 20
    method: Literal["lanczos", "power"] = "lanczos"
    preconditioned: bool = False

    def __call__(self, s: State) -> Iterator[Observation]:
        top = sharpness(s.ens, s.params, s.data.x, s.data.y, self.iters, self.method, self.preconditioned, s.step)
        yield Observation("preconditioned_sharpness" if self.preconditioned else "sharpness", "", top)
