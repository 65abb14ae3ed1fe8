"""Escape from the saddle at the origin of a deep ReLU net (Bantzis, Simon & Jacot, arXiv 2505.21722,
"Saddle-to-saddle dynamics in deep ReLU networks: low-rank bias in the first saddle escape").

Net f_θ(x) = W_L relu(W_{L−1} ⋯ relu(W_1 x)) (no biases), loss L(θ) = (1/2n) Σ_i ‖f_θ(x_i) − y_i‖² (the
engine's MSE). f is positively homogeneous of degree L in θ = (W_1, …, W_L), so near θ = 0

    L(θ) = L(0) − G(θ) + O(‖θ‖^{2L}),     G(θ) = (1/n) Σ_i y_iᵀ f_θ(x_i)        (G is L-homogeneous),

and gradient flow from a small init is θ̇ = ∇G(θ) up to a relative O(‖θ‖^L). Escape directions are the
directions θ̂ = θ/‖θ‖ that this flow converges to: critical points of G on the unit sphere
(∇G(θ̂) = L G(θ̂) θ̂, Euler); the *optimal escape direction* θ* maximizes the escape speed s* = G(θ*)
over the sphere (paper §3) — computed here numerically for a given dataset (`optimal_escape_direction`).

Consequences derived here (and checked in tests/theory/test_saddle_escape.py against an explicit
float64 integration of θ̇ = ∇G):
- radial law: d‖θ‖/dt = L G(θ̂) ‖θ‖^{L−1}; along θ*, ‖θ(t)‖^{2−L} = ρ₀^{2−L} − L(L−2) s* t, which blows up at
  t* = ρ₀^{2−L} / (L(L−2) s*) for L ≥ 3 (for L = 2: exponential growth at rate 2s*) — `blowup_time`;
- exact scaling of the G-flow: θ(t; ρθ̂₀) = ρ θ(ρ^{L−2} t; θ̂₀), so from any fixed init direction the
  escape time scales as ρ^{−(L−2)} with the init scale ρ (`escape_exponent`); a fixed loss threshold adds a
  ρ-independent offset, so the log–log slope tends to −(L−2) as ρ → 0;
- every layer is 1-homogeneous, so ⟨W_l, ∇_{W_l}G⟩ = G for each l and ‖W_l‖² − ‖W_k‖² is conserved: from
  a small init the escape direction is balanced, ‖W_l‖² = 1/L (θ* is balanced too: AM–GM on the layer scales).
The paper's theorem (abstract, §4): at θ* the ℓ-th layer has σ₁(W_ℓ) ≥ ℓ^{1/4} σ₂(W_ℓ) — a low-rank bias
growing with depth; `singular_ratio` and `effective_rank` measure it.

Hidden units can be permuted without changing f, so weight overlaps are taken after matching units
layer by layer (Hungarian assignment on the rows, `aligned_overlap`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike

from ..errors import require


def _forward(ws: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """f for stacked weights ws[l]: [R, n_l, n_{l−1}] and x [n, d] → [R, n, c]."""
    h = x.expand(ws[0].shape[0], *x.shape)
    for l, w in enumerate(ws):
        h = h @ w.transpose(-1, -2)
        if l < len(ws) - 1:
            h = torch.relu(h)
    return h


def escape_objective(ws: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """G(θ) = (1/n) Σ_i y_iᵀ f_θ(x_i) per stacked member, [R]."""
    return (_forward(ws, x) * y).sum(-1).mean(-1)


def escape_time_exponent(depth: int) -> float:
    """The predicted log–log slope of escape time against init scale, −(L − 2) (L ≥ 3)."""
    require(int(depth) >= 3, f"depth={depth}: the power law needs L ≥ 3 weight layers (L = 2 escapes in log(1/ρ) time)")
    return -(int(depth) - 2.0)


def blowup_time(rho0: ArrayLike, speed: float, depth: int) -> np.ndarray:
    """Escape (blow-up) time of the G-flow started on θ* with norm ρ₀: ρ₀^{2−L}/(L(L−2)s*), L ≥ 3."""
    L = int(depth)
    require(L >= 3 and speed > 0, "blowup_time needs depth ≥ 3 and a positive escape speed s* (G(θ*) > 0)")
    r = np.asarray(rho0, float)
    require(bool(np.all(r > 0)), "init norms ρ₀ must be positive")
    return r ** (2 - L) / (L * (L - 2) * speed)


def singular_ratio(w: ArrayLike) -> float:
    """σ₁/σ₂ of a matrix (inf if rank 1)."""
    s = np.linalg.svd(np.asarray(w, float), compute_uv=False)
    return float(s[0] / s[1]) if len(s) > 1 and s[1] > 0 else float("inf")


def effective_rank(w: ArrayLike) -> float:
    """Entropy effective rank exp(−Σ p_k ln p_k), p = σ/Σσ (Roy & Vetterli): 1 for rank 1, k for k equal σ's."""
    s = np.linalg.svd(np.asarray(w, float), compute_uv=False)
    p = s / s.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def aligned_overlap(a: list[np.ndarray], b: list[np.ndarray]) -> np.ndarray:
    """Per-layer overlap ⟨W_l^a, P W_l^b P'⟩ / (‖W_l^a‖‖W_l^b‖) after permuting b's hidden units to match a's,
    layer by layer from the input (Hungarian assignment maximizing the rows' inner products), [L]."""
    from scipy.optimize import linear_sum_assignment

    require(len(a) == len(b) and all(np.shape(u) == np.shape(v) for u, v in zip(a, b)),
            "both parameter lists need the same architecture")
    out, perm_in = [], None
    for l, (wa, wb) in enumerate(zip(a, b)):
        wb = np.asarray(wb, float) if perm_in is None else np.asarray(wb, float)[:, perm_in]
        wa = np.asarray(wa, float)
        if l < len(a) - 1:
            rows, cols = linear_sum_assignment(-(wa @ wb.T))
            perm = cols[np.argsort(rows)]
            wb = wb[perm]
            perm_in = perm
        out.append(float((wa * wb).sum() / (np.linalg.norm(wa) * np.linalg.norm(wb))))
    return np.array(out)


@dataclass(frozen=True)
class EscapeDirection:
    """θ* (unit norm, list of W_l), its escape speed s* = G(θ*), the Riemannian gradient norm left at the
    optimum (convergence), per-layer ‖W_l‖², σ₁/σ₂, effective rank, and the speeds of all restarts."""

    weights: list[np.ndarray]
    speed: float
    residual: float
    layer_norms: np.ndarray
    singular_ratios: np.ndarray
    effective_ranks: np.ndarray
    restart_speeds: np.ndarray


def optimal_escape_direction(widths: tuple[int, ...], x: ArrayLike, y: ArrayLike, restarts: int = 16, iters: int = 3000,
                             seed: int = 0) -> EscapeDirection:
    """Maximize G over the unit sphere of θ for the ReLU net with `widths` (d, n_1, …, c) on data (x, y):
    Riemannian gradient ascent (step on the sphere, renormalize) from `restarts` random starts at once,
    with a decaying step; returns the best. Deterministic given `seed`."""
    widths = tuple(int(w) for w in widths)
    require(len(widths) >= 3, f"widths {widths}: give (d, n_1, ..., c) with at least one hidden layer")
    X, Y = torch.as_tensor(np.asarray(x, float)), torch.as_tensor(np.asarray(y, float))
    Y = Y.reshape(len(Y), -1)
    require(X.shape[1] == widths[0] and Y.shape[1] == widths[-1] and len(X) == len(Y),
            f"data shapes x {tuple(X.shape)}, y {tuple(Y.shape)} do not fit widths {widths}")
    require(bool(Y.abs().sum() > 0), "y is zero: the origin is then a minimum, not a saddle — there is no escape direction")
    g = torch.Generator().manual_seed(int(seed))
    L = len(widths) - 1
    ws = [torch.randn(restarts, widths[l + 1], widths[l], generator=g, dtype=torch.float64) for l in range(L)]

    def unit(ws: list[torch.Tensor]) -> list[torch.Tensor]:
        n = torch.sqrt(sum(w.pow(2).sum((1, 2)) for w in ws)).reshape(-1, 1, 1)
        return [w / n for w in ws]

    ws = unit(ws)
    for k in range(iters):
        leaves = [w.detach().requires_grad_(True) for w in ws]
        G = escape_objective(leaves, X, Y)
        grads = torch.autograd.grad(G.sum(), leaves)
        with torch.no_grad():  # Riemannian gradient ∇G − L·G·θ (Euler: ⟨θ, ∇G⟩ = L G)
            rg = [gr - L * G.reshape(-1, 1, 1) * w for gr, w in zip(grads, leaves)]
            norm = torch.sqrt(sum(r.pow(2).sum((1, 2)) for r in rg)).reshape(-1, 1, 1)
            step = 0.3 if k < iters // 2 else 0.1  # scale-free (θ lives on the unit sphere; the step is ∝ ‖r‖/(L·G))
            ws = unit([w + step * r / torch.clamp(norm, min=1e-30) * torch.clamp(norm / (L * G.abs().reshape(-1, 1, 1) + 1e-30), max=1.0)
                       for w, r in zip(leaves, rg)])
    leaves = [w.detach().requires_grad_(True) for w in ws]
    G = escape_objective(leaves, X, Y)
    grads = torch.autograd.grad(G.sum(), leaves)
    best = int(torch.argmax(G))
    with torch.no_grad():
        res = float(torch.sqrt(sum((gr[best] - L * G[best] * w[best]).pow(2).sum() for gr, w in zip(grads, leaves))) / (L * G[best].abs()))
    W = [w[best].detach().numpy().copy() for w in ws]
    return EscapeDirection(W, float(G[best].detach()), res, np.array([float((w ** 2).sum()) for w in W]),
                           np.array([singular_ratio(w) for w in W]), np.array([effective_rank(w) for w in W]),
                           G.detach().numpy().copy())
