"""Initializations: Gaussian from a parametrization table, and balance-controlled inits.

Every member draws from its own ``torch.Generator(seed)`` so a member of an ensemble equals the same
configuration run alone. Balance-controlled inits check themselves: the conserved quantity they
produce equals the one requested (else `LazyrichError`).
"""
from __future__ import annotations

import math

import numpy as np
from typing import Sequence

import torch
from torch import Tensor

from ..conventions import conserved
from ..errors import LazyrichError, require
from ..models.mlp import MLP, Params
from .schemes import LayerRow

DTYPE = torch.float64
_SELF_CHECK = 1e-9


def _generators(seeds: Sequence[int]) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(int(s)) for s in seeds]


def _randn(gens: list[torch.Generator], shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
    return torch.stack([torch.randn(shape, generator=g, dtype=torch.float64) for g in gens]).to(dtype)


def gaussian(net: MLP, rows: list[LayerRow], seeds: Sequence[int], dtype: torch.dtype = DTYPE,
             std_scale: Tensor | float = 1.0) -> Params:
    """N(0, init_std²) entries per tensor (biases: init_std, usually 0); `std_scale` ([E] or float)
    multiplies every std (an overall init scale τ sweep)."""
    shapes = net.shapes()
    stds = {r.name: r.init_std for r in rows}
    require(set(shapes) <= set(stds), f"parametrization table lacks tensors {sorted(set(shapes) - set(stds))}: build it with the same widths and bias flag")
    gens = _generators(seeds)
    scale = torch.as_tensor(std_scale, dtype=dtype)
    out = {}
    for name, shape in shapes.items():
        x = _randn(gens, shape, dtype) * stds[name]
        out[name] = x * (scale.reshape(-1, *[1] * len(shape)) if scale.dim() == 1 else scale)
    return out


def kunin_scales(tau: Tensor, delta: Tensor, lr_a: Tensor | float = 1.0, lr_w: Tensor | float = 1.0) -> tuple[Tensor, Tensor]:
    """(|a|, ||w||) with |a|·||w|| = τ² and η_w a² − η_a ||w||² = δ (Kunin et al.; at unit lrs the
    authors' `get_alpha`: ||w|| = τ α_code, |a| = τ/α_code)."""
    lr_a = torch.as_tensor(lr_a, dtype=tau.dtype)
    lr_w = torch.as_tensor(lr_w, dtype=tau.dtype)
    disc = torch.sqrt(delta**2 + 4 * lr_a * lr_w * tau**4)
    # (δ + disc)/(2η_w) cancels for δ ≪ −τ²: use the conjugate form there
    a2 = torch.where(delta >= 0, (delta + disc) / (2 * lr_w), 2 * lr_a * tau**4 / (disc - delta))
    a = torch.sqrt(a2)
    return a, tau**2 / a


def kunin(net: MLP, tau: Tensor | Sequence[float], delta: Tensor | Sequence[float], seeds: Sequence[int],
          symmetric: bool = True, lr_a: Tensor | float = 1.0, lr_w: Tensor | float = 1.0,
          dtype: torch.dtype = DTYPE) -> Params:
    """Two-layer init of Kunin et al. with scale τ and per-neuron δ_k = η_w||a_k||² − η_a||w_k||² = δ.

    Directions w_k ~ Unif(S^{d-1}), readouts a_k = ±1 (c = 1) or Unif(S^{c-1}) directions. With
    `symmetric`, half the neurons are copies with flipped readout, so f(x; θ0) ≡ 0 (needs even width).
    """
    require(net.depth == 2, f"kunin init is for two-layer nets; got depth {net.depth}: use widths=(d, h, c)")
    require(not net.bias, "kunin init assumes no biases (δ_k would include them): build the MLP with bias=False")
    d, h, c = net.widths
    require(not symmetric or h % 2 == 0, f"symmetric kunin init needs an even width, got {h}: use an even width or symmetric=False")
    tau_t = torch.tensor(np.array(tau, dtype=float)).reshape(-1)
    delta_t = torch.tensor(np.array(delta, dtype=float)).reshape(-1)
    require(bool((tau_t > 0).all()), "tau must be positive")
    E = len(seeds)
    tau_t, delta_t = tau_t.expand(E).clone(), delta_t.expand(E).clone()
    gens = _generators(seeds)
    k = h // 2 if symmetric else h
    w_dir = _randn(gens, (k, d), torch.float64)
    w_dir = w_dir / w_dir.norm(dim=-1, keepdim=True)
    if c == 1:
        a_dir = torch.sign(_randn(gens, (1, k), torch.float64))
        a_dir[a_dir == 0] = 1
    else:
        a_dir = _randn(gens, (c, k), torch.float64)
        a_dir = a_dir / a_dir.norm(dim=1, keepdim=True)
    if symmetric:
        w_dir, a_dir = torch.cat([w_dir, w_dir], 1), torch.cat([a_dir, -a_dir], 2)
    a_norm, w_norm = kunin_scales(tau_t, delta_t, lr_a, lr_w)
    params = {"W1": (w_dir * w_norm.reshape(-1, 1, 1)).to(dtype), "W2": (a_dir * a_norm.reshape(-1, 1, 1)).to(dtype)}
    lr_a_t = torch.as_tensor(lr_a, dtype=torch.float64)
    lr_w_t = torch.as_tensor(lr_w, dtype=torch.float64)
    q = conserved(params["W2"].double(), params["W1"].double(), lr_a_t, lr_w_t).diagonal(dim1=-2, dim2=-1)
    got = q * (lr_a_t * lr_w_t).reshape(-1, 1) if lr_a_t.dim() else q * lr_a_t * lr_w_t
    _check(got, delta_t.reshape(-1, 1).expand_as(got), "kunin δ_k", tol=1e-12 if dtype == torch.float64 else 1e-5)
    return params


def _check(got: Tensor, want: Tensor, what: str, tol: float = _SELF_CHECK) -> None:
    scale = max(1.0, float(want.abs().max()))
    err = float((got - want).abs().max()) / scale
    if not err <= tol:
        raise LazyrichError(f"{what} at init is off by {err:.2e} (relative) from the request: report this as a bug")


def _orthonormal(gen: torch.Generator, n: int, k: int) -> Tensor:
    q, r = torch.linalg.qr(torch.randn(n, k, generator=gen, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r)).unsqueeze(0)


def lambda_balanced(widths: tuple[int, int, int], lam: float, seeds: Sequence[int], target: Tensor | None = None,
                    scale: float = 1.0, lr: tuple[float, float] = (1.0, 1.0), dtype: torch.dtype = DTYPE) -> Params:
    """Two-layer linear init with W2ᵀW2/η2 − W1W1ᵀ/η1 = λ I (Dominé et al., layerwise-lr form).

    The product W2W1 = √(η1η2)·U S Vᵀ takes its singular vectors from `target` (c × d, e.g. the task
    correlation Σ_yx; default a random Gaussian matrix per member) with singular values `scale`·S/||S||∞.
    Conditions: min(d, c) ≤ h ≤ max(d, c); extra hidden directions need λ ≥ 0 when h > d... see docs.
    """
    d, h, c = widths
    r = min(d, c)
    require(r <= h <= max(d, c), f"λ-balanced init needs min(d,c) ≤ h ≤ max(d,c); got d={d}, h={h}, c={c}")
    k = h - r
    require(k == 0 or lam == 0 or (lam > 0 and c >= h) or (lam < 0 and d >= h),
            f"λ={lam} with h={h} > min(d,c)={r} needs λ > 0 with c ≥ h or λ < 0 with d ≥ h (Dominé et al.)")
    eta1, eta2 = lr
    out1, out2 = [], []
    for gen in _generators(seeds):
        m = target.to(torch.float64) if target is not None else torch.randn(c, d, generator=gen, dtype=torch.float64)
        require(m.shape == (c, d), f"target has shape {tuple(m.shape)}, expected (c, d) = ({c}, {d})")
        u, s, vt = torch.linalg.svd(m, full_matrices=True)
        s = scale * s[:r] / s[:r].max()
        s2 = torch.sqrt((torch.sqrt(lam**2 + 4 * s**2) + lam) / 2)
        s1 = torch.sqrt((torch.sqrt(lam**2 + 4 * s**2) - lam) / 2)
        rot = _orthonormal(gen, h, h)
        w1 = rot[:, :r] @ torch.diag(s1) @ vt[:r]
        w2 = u[:, :r] @ torch.diag(s2) @ rot[:, :r].T
        if k and lam > 0:
            w2 = w2 + math.sqrt(lam) * u[:, r:h] @ rot[:, r:].T
        elif k and lam < 0:
            w1 = w1 + math.sqrt(-lam) * rot[:, r:] @ vt[r:h]
        out1.append(math.sqrt(eta1) * w1)
        out2.append(math.sqrt(eta2) * w2)
    params = {"W1": torch.stack(out1), "W2": torch.stack(out2)}
    q = conserved(params["W2"], params["W1"], eta2, eta1)
    _check(q, lam * torch.eye(h, dtype=torch.float64).expand_as(q), "λ-balance")
    return {k_: v.to(dtype) for k_, v in params.items()}


def balanced_chain(widths: Sequence[int], seeds: Sequence[int], lam: float | Sequence[float] = 0.0,
                   scale: float = 1.0, lr: Sequence[float] | None = None, dtype: torch.dtype = DTYPE) -> Params:
    """Deep linear chain with C_l = W_{l+1}ᵀW_{l+1}/η_{l+1} − W_lW_lᵀ/η_l = λ_l I for every pair.

    W_1 ~ N(0, scale²/n_0); each next layer solves W_{l+1}ᵀW_{l+1} = η_{l+1}(W_lW_lᵀ/η_l + λ_l I) with a
    random orthonormal left factor. Needs that Gram matrix PSD with rank ≤ n_{l+1} (e.g. λ_l ≥ 0, or
    λ_l = 0 when layers narrow).
    """
    widths = [int(w) for w in widths]
    L = len(widths) - 1
    require(L >= 2, f"a chain needs at least two layers; got widths {widths}")
    lams = [float(lam)] * (L - 1) if isinstance(lam, (int, float)) else [float(x) for x in lam]
    require(len(lams) == L - 1, f"lam needs one value per consecutive pair ({L - 1}), got {len(lams)}")
    etas = [1.0] * L if lr is None else [float(x) for x in lr]
    require(len(etas) == L and all(e > 0 for e in etas), f"lr needs {L} positive values, one per layer")
    layers: list[list[Tensor]] = [[] for _ in range(L)]
    for gen in _generators(seeds):
        r = min(widths)  # rank the whole chain can carry when the λ_l are 0
        w = scale * torch.randn(widths[1], widths[0], generator=gen, dtype=torch.float64) / math.sqrt(widths[0])
        if r < min(widths[:2]):
            u, sv, vh = torch.linalg.svd(w, full_matrices=False)
            w = u[:, :r] @ torch.diag(sv[:r]) @ vh[:r]
        layers[0].append(w)
        for l in range(1, L):
            gram = w @ w.T / etas[l - 1] + lams[l - 1] * torch.eye(widths[l], dtype=torch.float64)
            ev, vec = torch.linalg.eigh(gram)
            ev, vec = ev.flip(0), vec.flip(1)
            tol = 1e-10 * max(1.0, float(ev.abs().max()))
            require(float(ev.min()) >= -tol, f"λ_{l}={lams[l - 1]} makes W_{l+1}ᵀW_{l+1} indefinite: use a larger λ or a larger scale")
            n_next = widths[l + 1]
            keep = min(n_next, widths[l])
            require(bool((ev[keep:].abs() <= tol).all()), f"layer {l + 1} (width {n_next}) cannot carry the rank of layer {l}'s Gram matrix under λ={lams[l - 1]}: widen it or use λ=0 there")
            left = _orthonormal(gen, n_next, keep)
            w = math.sqrt(etas[l]) * left @ torch.diag(ev[:keep].clamp(min=0).sqrt()) @ vec[:, :keep].T
            layers[l].append(w)
    params = {f"W{l + 1}": torch.stack(ws) for l, ws in enumerate(layers)}
    for l in range(1, L):
        q = conserved(params[f"W{l + 1}"], params[f"W{l}"], etas[l], etas[l - 1])
        _check(q, lams[l - 1] * torch.eye(widths[l], dtype=torch.float64).expand_as(q), f"chain balance of pair {l}")
    return {k_: v.to(dtype) for k_, v in params.items()}
