"""Saxe, McClelland & Ganguli (2014): sigmoidal mode dynamics of a two-layer linear net f = W2W1x.

Preconditions: whitened inputs ((1/n)XᵀX = I); a decoupled init in the basis of Σ_yx = U S Vᵀ
(W1 = R diag(a₀) Vᵀ, W2 = U diag(b₀) Rᵀ, R orthogonal) that is balanced (a₀ = b₀, so u₀ = a₀b₀),
equal layer rates 1/τ. Each mode then obeys τu̇ = 2u(s − u):

    u(t) = s e^{2st/τ} / (e^{2st/τ} − 1 + s/u₀),   t(u₀ → u_f) = τ/(2s) ln[u_f(s − u₀) / (u₀(s − u_f))],

and the loss is ½Σ_α (s_α − u_α)² + floor. Time t = Σ_k η_k (lazyrich.conventions), so GD with base
learning rate η approximates this at t = kη. Verified (tests/theory/test_saxe.py): under GD the mode
strengths stay within 5·η·max s of u(t) with error decreasing linearly in η (fitted slope ≈ 1), and
the off-diagonal of UᵀW2W1V stays at round-off.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ..errors import require
from .checks import as_array, positive, regression_moments, whitened
from .trajectory import Trajectory, trajectory


def mode_strength(times: ArrayLike, s: ArrayLike, u0: ArrayLike, tau: float = 1.0) -> np.ndarray:
    """u_α(t) for modes with singular values s_α > 0 and initial strengths 0 < u₀ < s: [T, K]."""
    t = as_array(times, "times").reshape(-1, 1)
    s_, u = as_array(s, "s").reshape(1, -1), np.broadcast_to(as_array(u0, "u0").reshape(1, -1), (1, np.size(s))).copy()
    require(bool((s_ > 0).all()), "singular values s must be positive")
    require(bool((u > 0).all()), "precondition 'u₀ > 0' violated: a mode with u₀ ≤ 0 sits on (or beyond) the saddle")
    tau = positive(tau, "tau")
    e = np.exp(-2 * s_ * t / tau)  # divide numerator and denominator by e^{2st/τ}: no overflow
    return s_ / (1 - e + e * s_ / u)


def learning_time(s: ArrayLike, u0: ArrayLike, uf: ArrayLike, tau: float = 1.0) -> np.ndarray:
    """Time for a mode to go from u₀ to u_f (0 < u₀, u_f < s): τ/(2s) ln[u_f(s − u₀)/(u₀(s − u_f))]."""
    s_, a, b = (np.asarray(v, dtype=float) for v in (s, u0, uf))
    require(bool(np.all((a > 0) & (b > 0) & (a < s_) & (b < s_))), "learning_time needs 0 < u0, uf < s")
    return tau / (2 * s_) * np.log(b * (s_ - a) / (a * (s_ - b)))


def half_time(s: ArrayLike, u0: ArrayLike, tau: float = 1.0) -> np.ndarray:
    """Time at which u = s/2: τ/(2s) ln(s/u₀ − 1); strong modes are learned first (τ/s)."""
    s_, a = np.asarray(s, dtype=float), np.asarray(u0, dtype=float)
    return tau / (2 * s_) * np.log(s_ / a - 1)


def saxe(times: ArrayLike, s: ArrayLike, u0: ArrayLike, tau: float = 1.0, loss_floor: float = 0.0) -> Trajectory:
    """Observables ``mode_strength`` ([T, K], UᵀW2W1V diagonal) and ``loss``."""
    u = mode_strength(times, s, u0, tau)
    s_ = as_array(s, "s").reshape(1, -1)
    return trajectory(times, mode_strength=u, loss=0.5 * ((s_ - u) ** 2).sum(1) + loss_floor)


def decoupled_init(sigma_yx: ArrayLike, h: int, u0: ArrayLike, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Balanced decoupled (W1, W2) with mode strengths u₀ (one per singular value, h ≥ rank):
    W1 = R diag(√u₀) Vᵀ, W2 = U diag(√u₀) Rᵀ with a random orthogonal R."""
    S = as_array(sigma_yx, "sigma_yx", 2)
    U, s, Vt = np.linalg.svd(S, full_matrices=False)
    k = len(s)
    require(h >= k, f"decoupled init needs h ≥ rank(Σ_yx) = {k}; got h={h}")
    a = np.sqrt(np.broadcast_to(as_array(u0, "u0"), (k,)))
    R, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(h, h)))
    return R[:, :k] @ np.diag(a) @ Vt, U @ np.diag(a) @ R[:, :k].T


def saxe_inputs(ens, data, member: int = 0, tol: float = 1e-8) -> dict:  # noqa: ANN001 - Ensemble, Data
    """Keyword arguments of `saxe` (s, u0, tau, loss_floor) for one member of a two-layer linear
    ensemble, after checking whitened inputs, equal rates, a decoupled and balanced init."""
    net = ens.net
    require(net.depth == 2 and net.activation == "linear" and not net.bias,
            f"Saxe dynamics need a two-layer linear net without biases; got {net.widths}, {net.activation}")
    X = whitened(data.x)
    S, half_y2 = regression_moments(X, data.y)
    rates = ens.rates()
    r1, r2 = float(rates["W1"][member]), float(rates["W2"][member])
    require(abs(r1 - r2) <= 1e-12 * max(r1, r2), f"precondition 'equal layer rates' violated: {r1:g} vs {r2:g}")
    W1, W2 = as_array(ens.params["W1"][member], "W1"), as_array(ens.params["W2"][member], "W2")
    U, s, Vt = np.linalg.svd(S, full_matrices=False)
    M = U.T @ W2 @ W1 @ Vt.T
    scale = max(float(np.abs(M).max()), 1e-300)
    off = float(np.abs(M - np.diag(np.diag(M))).max()) / scale
    require(off <= tol, f"precondition 'decoupled init' violated: UᵀW2W1V has off-diagonal {off:.2e} (relative)")
    imb = float(np.abs(W1 @ W1.T - W2.T @ W2).max()) / max(float(np.abs(W1 @ W1.T).max()), 1e-300)
    require(imb <= tol, f"precondition 'balanced init' violated: W1W1ᵀ − W2ᵀW2 is {imb:.2e} (relative)")
    return {"s": s, "u0": np.diag(M), "tau": 1.0 / r1, "loss_floor": half_y2 - 0.5 * float(s @ s)}
