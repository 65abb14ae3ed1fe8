"""Stepwise self-supervised learning (Simon, Knutins, Ziyin, Geisz, Fetterman & Albrecht, arXiv 2303.15438,
"On the stepwise nature of self-supervised learning"): the linearized Barlow Twins model from small init.

Model (paper §3). Embedding f(x) = W x, W ∈ R^{d×m}; positive pairs (x, x') are two augmentations of one
image. The symmetrized cross-correlation of the embeddings is C = W Γ Wᵀ with the *contrastive matrix*

    Γ = ½ E[x x'ᵀ + x' xᵀ]                                   (symmetric, m × m; eigenpairs γ_j, v_j),

and the loss is L = ‖C − I‖_F² (Barlow Twins with λ = 1, no batch normalization). Gradient flow
dW/dt = −∇_W L = −4 (C − I) W Γ.

Aligned solution (paper §4, derived here with this time convention). If W(0) = U S₀ Vᵀ with V the top
eigenvectors of Γ, W(t) = U S(t) Vᵀ, and each eigenvalue c_j = γ_j s_j² of C obeys the logistic equation
ċ_j = 8 γ_j c_j (1 − c_j):

    c_j(t) = c_j(0) e^{8γ_j t} / (1 − c_j(0) + c_j(0) e^{8γ_j t}),   t_j(½) = ln(1/c_j(0) − 1) / (8 γ_j),

so from a small init the modes are learned one at a time, in decreasing γ_j (step times ∝ 1/γ_j · ln(1/init)).

Random small init (derived here; the paper states the aligned picture "approximately" holds). In the
early, linear phase W(t) = W(0) e^{4Γt}. Once modes 1..j−1 have saturated, C ≈ Σ_{i<j} u_i u_iᵀ and
d(W v_j)/dt = 4γ_j (I − C) W v_j: the part of W v_j along the learned output directions u_i stops
growing while the orthogonal part grows as e^{4γ_j t}. Hence the effective initial eigenvalue of mode j is

    c_j(0) ≈ γ_j ‖r_j‖²,   r_j = the Gram–Schmidt residual of W(0)v_j against W(0)v_1, …, W(0)v_{j−1},

and the eigenvalues of C follow the logistic curves with these c_j(0) (`effective_init`).

Final representation (paper §4.2, kernel PCA view). At convergence C = I on the top d modes with γ_j > 0:
W(∞) = U diag(γ_j^{−1/2}) V_dᵀ for some orthogonal U fixed by the init, so the rotation-invariant
representation kernel is f(x)ᵀf(x') = Σ_{j≤d} γ_j^{−1} (v_jᵀx)(v_jᵀx'). For a kernel machine
f(x) = W φ(x) with K = ΦΦᵀ over the N training views and the pair matrix P (P_ab = 1/(2·#pairs) for each
pair {a, b}), Γ_φ = Φᵀ P Φ; with K = Q diag(κ) Qᵀ its nonzero eigenpairs are those of
B = diag(√κ) Qᵀ P Q diag(√κ) = Σ γ_j w_j w_jᵀ, and v_jᵀφ(x) = w_jᵀ diag(κ^{−1/2}) Qᵀ k(x),
k(x)_a = K(x_a, x): the final embeddings are the top eigenfunctions of this contrastive kernel, each
scaled by γ_j^{−1/2} (`kernel_modes`, `final_kernel`).

Verified (tests/theory/test_ssl.py): the logistic solution against scipy solve_ivp of the full matrix flow
(float64, aligned init, 1e-8); the Gram–Schmidt prediction against solve_ivp from random small inits
(eigenvalues within 1e-2 / 2e-3 at scales 1e-3 / 1e-4, half-times within 1 %); the kernel form against the
primal eigenvectors of Γ with explicit random features (1e-9); the final representation as the small-init
limit of the integrated flow (error decaying as σ^{1 − γ_{d+1}/γ_d}).
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ..errors import require


def _matrix(a: ArrayLike, name: str) -> np.ndarray:
    m = np.asarray(a, dtype=float)
    require(m.ndim == 2, f"{name} must be a 2-D array (samples × features), got shape {m.shape}")
    require(bool(np.all(np.isfinite(m))), f"{name} has non-finite entries: clean the data first")
    return m


def contrastive_matrix(x: ArrayLike, x_pos: ArrayLike) -> np.ndarray:
    """Γ = ½ E[x x'ᵀ + x' xᵀ] from positive pairs (row i of `x` with row i of `x_pos`), [m, m]."""
    a, b = _matrix(x, "x"), _matrix(x_pos, "x_pos")
    require(a.shape == b.shape, f"x {a.shape} and x_pos {b.shape} must pair row by row (same shape)")
    return (a.T @ b + b.T @ a) / (2 * a.shape[0])


def barlow_loss(w: ArrayLike, gamma: ArrayLike) -> float:
    """L = ‖W Γ Wᵀ − I‖_F² of the linear model."""
    W, G = np.asarray(w, float), np.asarray(gamma, float)
    c = W @ G @ W.T
    return float(((c - np.eye(len(c))) ** 2).sum())


def barlow_gradient(w: ArrayLike, gamma: ArrayLike) -> np.ndarray:
    """∇_W ‖WΓWᵀ − I‖_F² = 4 (WΓWᵀ − I) W Γ (Γ symmetric)."""
    W, G = np.asarray(w, float), np.asarray(gamma, float)
    return 4 * (W @ G @ W.T - np.eye(W.shape[0])) @ W @ G


def modes(gamma: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues γ_j (descending) and eigenvectors v_j (columns) of a symmetric Γ."""
    G = np.asarray(gamma, float)
    require(G.ndim == 2 and G.shape[0] == G.shape[1], f"Γ must be square, got shape {G.shape}")
    require(bool(np.allclose(G, G.T, atol=1e-12 * max(1.0, np.abs(G).max()))), "Γ must be symmetric: use contrastive_matrix")
    g, v = np.linalg.eigh(G)
    return g[::-1].copy(), v[:, ::-1].copy()


def eigenvalue_trajectory(times: ArrayLike, gammas: ArrayLike, c0: ArrayLike) -> np.ndarray:
    """c_j(t) = c₀e^{8γt}/(1 − c₀ + c₀e^{8γt}) for modes with γ_j > 0 and 0 < c_j(0) < 1: [T, K]."""
    t = np.asarray(times, float).reshape(-1, 1)
    g, c = np.asarray(gammas, float).reshape(1, -1), np.asarray(c0, float).reshape(1, -1)
    require(bool(np.all(g > 0)), "the logistic steps need γ_j > 0 (modes with γ ≤ 0 are never learned)")
    require(bool(np.all((c > 0) & (c < 1))), "initial eigenvalues c_j(0) must lie in (0, 1): the small-init regime")
    e = np.exp(-8 * g * t)  # divide by e^{8γt}: no overflow
    return c / (c + (1 - c) * e)


def step_times(gammas: ArrayLike, c0: ArrayLike, level: float = 0.5) -> np.ndarray:
    """Time at which c_j reaches `level` (default ½): ln[level(1 − c₀)/(c₀(1 − level))]/(8γ_j)."""
    g, c = np.asarray(gammas, float), np.asarray(c0, float)
    require(0 < level < 1, f"level={level} must lie in (0, 1)")
    require(bool(np.all(g > 0)) and bool(np.all((c > 0) & (c < level))), "step_times needs γ > 0 and 0 < c₀ < level")
    return np.log(level * (1 - c) / (c * (1 - level))) / (8 * g)


def effective_init(w0: ArrayLike, gamma: ArrayLike, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(γ_j, c_j(0)) for the top k modes from a random init W(0): c_j(0) = γ_j ‖r_j‖², r_j the Gram–Schmidt
    residual of W(0)v_j against W(0)v_1..W(0)v_{j−1} (module docstring). k ≤ min(d, #positive γ)."""
    W = np.asarray(w0, float)
    g, v = modes(gamma)
    d = W.shape[0]
    k = min(d, int((g > 0).sum())) if k is None else int(k)
    require(1 <= k <= min(d, int((g > 0).sum())), f"k={k} must be between 1 and min(d={d}, #positive γ={int((g > 0).sum())})")
    q, r = np.linalg.qr(W @ v[:, :k])  # columns in order: |R_jj| = norm of the residual of column j
    return g[:k], g[:k] * np.diag(r) ** 2


def ssl_prediction(times: ArrayLike, w0: ArrayLike, gamma: ArrayLike, k: int | None = None) -> dict[str, np.ndarray]:
    """Predicted eigenvalues of C (descending, [T, k]), half-times and loss ‖C − I‖² from a small init W(0)."""
    g, c0 = effective_init(w0, gamma, k)
    c = eigenvalue_trajectory(times, g, c0)
    d = np.asarray(w0).shape[0]
    loss = ((1 - c) ** 2).sum(1) + (d - c.shape[1])
    return {"eigenvalues": c, "step_times": step_times(g, c0), "gammas": g, "c0": c0, "loss": loss}


def final_representation(gamma: ArrayLike, d: int) -> np.ndarray:
    """Rotation-invariant final representation W(∞)ᵀW(∞) = Σ_{j≤d} γ_j^{−1} v_j v_jᵀ, [m, m]."""
    g, v = modes(gamma)
    require(int((g > 0).sum()) >= d, f"only {int((g > 0).sum())} modes have γ > 0: the loss cannot reach C = I with d={d}")
    return (v[:, :d] / g[:d]) @ v[:, :d].T


def pair_matrix(n_points: int, pairs: ArrayLike) -> np.ndarray:
    """P with P_ab = P_ba = 1/(2·#pairs) for each positive pair (a, b), so Γ_φ = Φᵀ P Φ; [N, N]."""
    p = np.asarray(pairs, int)
    require(p.ndim == 2 and p.shape[1] == 2 and len(p) > 0, "pairs must be a non-empty [#pairs, 2] index array")
    require(bool(np.all((p >= 0) & (p < n_points))), f"pair indices must lie in [0, {n_points})")
    P = np.zeros((n_points, n_points))
    np.add.at(P, (p[:, 0], p[:, 1]), 1.0)
    np.add.at(P, (p[:, 1], p[:, 0]), 1.0)
    return P / (2 * len(p))


def kernel_modes(K: ArrayLike, pairs: ArrayLike, tol: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """Contrastive-kernel eigenmodes from the kernel K over the N views and the positive pairs: γ_j
    (descending) and coefficients A [N, r] with v_jᵀφ(x) = (k(x)ᵀ A)_j (module docstring)."""
    K = _matrix(K, "K")
    require(K.shape[0] == K.shape[1], f"K must be square, got {K.shape}")
    kap, Q = np.linalg.eigh((K + K.T) / 2)
    keep = kap > tol * max(kap.max(), 1e-300)
    kap, Q = kap[keep], Q[:, keep]
    P = pair_matrix(len(K), pairs)
    B = (np.sqrt(kap)[:, None] * (Q.T @ P @ Q)) * np.sqrt(kap)[None, :]
    g, w = np.linalg.eigh((B + B.T) / 2)
    g, w = g[::-1], w[:, ::-1]
    return g, Q @ (w / np.sqrt(kap)[:, None])


def final_kernel(K_train: ArrayLike, pairs: ArrayLike, K_cross: ArrayLike, d: int) -> np.ndarray:
    """Kernel of the final learned representation f(x)ᵀf(x') = Σ_{j≤d} γ_j^{−1} e_j(x) e_j(x') between the
    points whose kernel values against the N training views are the rows of `K_cross` [M, N]."""
    g, A = kernel_modes(K_train, pairs)
    require(int((g > 0).sum()) >= d, f"only {int((g > 0).sum())} contrastive modes have γ > 0; choose d ≤ that")
    e = np.asarray(K_cross, float) @ A[:, :d]
    return (e / g[:d]) @ e.T
