"""Quadratic word embedding models (QWEM; Karkada, Simon, Bahri & DeWeese 2025, arXiv 2502.09863):
exact gradient-flow dynamics and final embeddings from corpus statistics only.

Model. Embeddings W [V, d] (row w_i per word, word and context vectors tied), β_ij = w_i·w_j. word2vec's
contrastive loss weighs co-occurring pairs (P_ij) against independent pairs (P_i P_j) with hyperparameters
ψ±_ij; its quadratic (Maclaurin) approximation, −log σ(±β) ≈ log 2 ∓ β/2 + β²/8, is the QWEM loss

    L(W) = Σ_ij [ ψ⁺_ij P_ij (β_ij²/8 − β_ij/2) + ψ⁻_ij P_i P_j (β_ij²/8 + β_ij/2) ]   (constants dropped)
         = Σ_ij G_ij (β_ij − M*_ij)²/8 + const,   G = ψ⁺P + ψ⁻PᵢPⱼ,   M* = 2(ψ⁺P − ψ⁻PᵢPⱼ)/G.

Hyperparameter condition (the paper's, under which the dynamics are solvable): constant weighting
G_ij = g for all i, j. Then L = (g/8)||WWᵀ − M*||²_F + const (unweighted symmetric matrix factorization),
and gradient flow dW/dt = −∇L = (g/2)(M* − WWᵀ)W. The reweighting ψ±_ij = g/(P_ij + P_iP_j)
(`constant_weights`) gives M*_ij = 2(P_ij − P_iP_j)/(P_ij + P_iP_j) = 2 tanh(PMI_ij/2) (`qwem_target`).

Solution (derived here; the matrix Riccati equation of Q = WWᵀ, dQ/dt = c(M*Q + QM* − 2Q²), c = g/2, is
linear in Q⁻¹): for any init W₀, with M* = U diag(λ) Uᵀ and A = UᵀW₀,

    Q(t) = e^{cM*t} W₀ (I_d + W₀ᵀ X(t) W₀)⁻¹ W₀ᵀ e^{cM*t},   X(t) = U diag((e^{2cλt} − 1)/λ) Uᵀ,

evaluated without overflow as Q = U Z Zᵀ Uᵀ with Z = diag(ρ) Y, Y the top V rows of the orthonormal QR
factor of [diag(√φ) A; I] (φ = (e^{2cλt} − 1)/λ, ρ = √(λ/(1 − e^{−2cλt})), common factors scaled out).
Small-init picture: each positive eigenmode k ≤ d grows as a sigmoid (exact for an aligned init,
u_k = v_kᵀQv_k), u_k(t) = λ_k / (1 + (λ_k/u_k(0) − 1) e^{−gλ_k t}), reaching λ_k/2 at the step time
t_k = ln(λ_k/u_k(0) − 1)/(gλ_k): strongest modes first, one orthogonal direction at a time, so the
effective rank grows by one per step until it saturates at d. For a random init, u_k(0) is the mode's
*effective* initial strength (`effective_init`, derived here from the closed form): the part of
a_k = v_kᵀW₀ ∈ ℝᵈ orthogonal to a_1..a_(k−1), which the modes learned before occupy. Final embeddings
(t → ∞, eigengap λ_d > λ_{d+1}, λ_d > 0; Eckart–Young): WWᵀ = U_d diag(λ_d) U_dᵀ, W = U_d diag(√λ_d) up
to a rotation.

Verified (tests/theory/test_word_embeddings.py): the closed form against scipy's solve_ivp on the flow of
the loss written pair by pair (float64, random corpus, V = 12, random init; 3e-12 relative), and against
the Riccati equation by central differences (Hypothesis: V = 3..8, init 1e-6..1, t ≤ 20); the target
against mpmath's Taylor coefficients of −log σ; the sigmoid against the closed form for an aligned init;
the sigmoid step times with `effective_init` against the exact step times (`exact_step_times`) for random small
inits (relative error < 1e-3 at σ = 1e-8; 13 % off for the last mode with the raw projections
v_kᵀW₀W₀ᵀv_k instead); the final subspace against scipy's eigenvectors; the preconditions' errors.
"""
from __future__ import annotations

import hashlib

import numpy as np
from numpy.typing import ArrayLike

from ..errors import require
from .checks import as_array, positive
from .trajectory import Trajectory, trajectory

SYMMETRY_TOL = 1e-12
WEIGHT_TOL = 1e-9


def _joint(P: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Check that P is a symmetric joint distribution with positive marginals; return (P, P_i)."""
    P = as_array(P, "P", 2)
    require(P.shape[0] == P.shape[1] and P.shape[0] >= 2, f"P must be a square [V, V] matrix (V ≥ 2), got {P.shape}")
    require(bool((P >= 0).all()), "P has negative entries: pass co-occurrence probabilities P_ij ≥ 0")
    require(abs(P.sum() - 1) <= 1e-9, f"P sums to {P.sum():.6g}: normalize the co-occurrence counts (P = C / ΣC)")
    asym = float(np.abs(P - P.T).max())
    require(asym <= SYMMETRY_TOL * max(float(P.max()), 1e-300),
            f"precondition 'symmetric co-occurrence' violated: max |P − Pᵀ| = {asym:.2e}; count pairs in both orders")
    p = P.sum(1)
    require(bool((p > 0).all()), f"word {int(np.argmin(p))} never co-occurs (P_i = 0): drop it from the vocabulary")
    return P, p


def constant_weights(P: ArrayLike, g: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """ψ⁺ = ψ⁻ = g/(P_ij + P_iP_j): the reweighting under which G_ij = ψ⁺P_ij + ψ⁻P_iP_j = g everywhere."""
    P, p = _joint(P)
    psi = positive(g, "g") / (P + np.outer(p, p))
    return psi, psi.copy()


def weighting_constant(P: ArrayLike, psi_plus: ArrayLike, psi_minus: ArrayLike) -> float:
    """The constant g of G_ij = ψ⁺_ij P_ij + ψ⁻_ij P_iP_j; a clear error when G is not constant (the
    dynamics are then a weighted factorization, outside this closed form)."""
    P, p = _joint(P)
    pp, mp = as_array(psi_plus, "psi_plus", 2), as_array(psi_minus, "psi_minus", 2)
    require(pp.shape == mp.shape == P.shape, f"psi_plus and psi_minus must have P's shape {P.shape}; got {pp.shape}, {mp.shape}")
    G = pp * P + mp * np.outer(p, p)
    g, spread = float(G.mean()), float(np.abs(G - G.mean()).max())
    require(g > 0 and spread <= WEIGHT_TOL * g,
            f"precondition 'constant weighting ψ⁺P_ij + ψ⁻P_iP_j = g' violated (relative spread {spread / max(abs(g), 1e-300):.2e});"
            " use constant_weights(P, g)")
    return g


def qwem_target(P: ArrayLike, psi_plus: ArrayLike | None = None, psi_minus: ArrayLike | None = None) -> np.ndarray:
    """M* = 2(ψ⁺P_ij − ψ⁻P_iP_j)/(ψ⁺P_ij + ψ⁻P_iP_j); with the default constant weights
    M*_ij = 2(P_ij − P_iP_j)/(P_ij + P_iP_j) ∈ [−2, 2)."""
    P, p = _joint(P)
    if psi_plus is None and psi_minus is None:
        psi_plus, psi_minus = constant_weights(P)
    require(psi_plus is not None and psi_minus is not None, "give both psi_plus and psi_minus, or neither")
    weighting_constant(P, psi_plus, psi_minus)  # type: ignore[arg-type]
    pos, neg = as_array(psi_plus, "psi_plus") * P, as_array(psi_minus, "psi_minus") * np.outer(p, p)
    return 2 * (pos - neg) / (pos + neg)


_SPECTRA: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}


def target_spectrum(M: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues λ (descending) and eigenvectors U (columns) of the symmetric target M* (read-only arrays,
    cached by content: every function here takes M* and needs its eigendecomposition)."""
    M = as_array(M, "M", 2)
    key = hashlib.sha1(M.tobytes()).digest() + bytes(str(M.shape), "ascii")
    if key not in _SPECTRA:
        require(M.shape[0] == M.shape[1] and float(np.abs(M - M.T).max()) <= 1e-12 * max(float(np.abs(M).max()), 1.0),
                "the target M* must be a symmetric square matrix (build it with qwem_target)")
        lam, U = np.linalg.eigh(M)
        lam, U = lam[::-1].copy(), U[:, ::-1].copy()
        lam.setflags(write=False)
        U.setflags(write=False)
        if len(_SPECTRA) >= 8:
            _SPECTRA.pop(next(iter(_SPECTRA)))
        _SPECTRA[key] = (lam, U)
    return _SPECTRA[key]


def _gap(lam: np.ndarray, d: int) -> None:
    require(isinstance(d, (int, np.integer)) and 1 <= d < len(lam), f"embedding dimension d={d} must be in [1, V − 1 = {len(lam) - 1}]")
    require(lam[d - 1] > 0, f"λ_{d} = {lam[d - 1]:.3g} ≤ 0: only {int((lam > 0).sum())} modes are learned; use d ≤ that")
    require(lam[d - 1] - lam[d] > 1e-9 * abs(lam[0]),
            f"precondition 'eigengap λ_d > λ_(d+1)' violated at d={d} (λ = {lam[d - 1]:.6g}, {lam[d]:.6g}): "
            "the final subspace is not unique; choose another d")


def final_embeddings(M: ArrayLike, d: int) -> np.ndarray:
    """W∞ = U_d diag(√λ_d) [V, d] (up to a right rotation): the top-d eigenmodes at their eigenvalues."""
    lam, U = target_spectrum(M)
    _gap(lam, d)
    return U[:, :d] * np.sqrt(lam[:d])


def _log_phi(lam: np.ndarray, a: np.ndarray, t: float, c: float) -> np.ndarray:
    """log φ, φ = (e^{2a} − 1)/λ = ∫₀ᵗ 2c e^{2cλs} ds with a = cλt, stable for either sign of a."""
    out = np.log(2 * c * t) * np.ones_like(a)
    pos, neg = (a > 0) & (lam != 0), (a < 0) & (lam != 0)
    out[pos] = 2 * a[pos] + np.log(-np.expm1(-2 * a[pos]) / lam[pos])
    out[neg] = np.log(np.expm1(2 * a[neg]) / lam[neg])
    return out


def eigen_embedding(t: float, lam: np.ndarray, A: np.ndarray, g: float = 1.0) -> np.ndarray:
    """Z(t) [V, d] with Q̃(t) = UᵀW(t)W(t)ᵀU = Z Zᵀ: the exact flow in M*'s eigenbasis from A = UᵀW₀."""
    c = g / 2
    if t == 0:
        return A.copy()
    a = c * lam * t
    amax = max(float(a.max()), 0.0)
    stacked = np.vstack([np.exp(0.5 * _log_phi(lam, a, t, c) - amax)[:, None] * A, np.exp(-amax) * np.eye(A.shape[1])])
    Y = np.linalg.qr(stacked)[0][: len(lam)]
    with np.errstate(over="ignore"):
        rho = np.where(lam != 0, np.sqrt(lam / np.where(lam != 0, -np.expm1(-2 * a), 1.0)), 1 / np.sqrt(2 * c * t))
    return rho[:, None] * Y


def qwem_gram(t: float, M: ArrayLike, W0: ArrayLike, g: float = 1.0) -> np.ndarray:
    """Q(t) = W(t)W(t)ᵀ [V, V] under the QWEM gradient flow from W₀ (any init, any sign of eigenvalues)."""
    lam, U = target_spectrum(M)
    W0 = as_array(W0, "W0", 2)
    require(W0.shape[0] == len(lam), f"W0 has {W0.shape[0]} rows, the target has V = {len(lam)}")
    require(float(t) >= 0, f"time t={t} must be ≥ 0")
    Z = U @ eigen_embedding(float(t), lam, U.T @ W0, positive(g, "g"))
    return Z @ Z.T


def principal_angles(A: ArrayLike, B: ArrayLike) -> np.ndarray:
    """Principal angles (radians, ascending) between the column spaces of A [V, p] and B [V, q]."""
    qa, qb = np.linalg.qr(as_array(A, "A", 2))[0], np.linalg.qr(as_array(B, "B", 2))[0]
    s = np.clip(np.linalg.svd(qa.T @ qb, compute_uv=False), 0.0, 1.0)
    return np.sort(np.arccos(s))


def _observables(Z: np.ndarray, lam: np.ndarray, d: int, g: float) -> tuple[np.ndarray, float, float]:
    """(eigenvalues of WᵀW descending, QWEM loss without constant, largest principal angle to U_d)."""
    K = Z.T @ Z
    eig = np.sort(np.linalg.eigvalsh(K))[::-1]
    loss = g / 8 * (float((K**2).sum()) - 2 * float(np.einsum("ik,i,ik->", Z, lam, Z)))
    ang = float(principal_angles(Z, np.eye(len(lam))[:, :d])[-1]) if np.linalg.matrix_rank(Z) == d else np.pi / 2
    return eig, loss, ang


def qwem_flow(times: ArrayLike, M: ArrayLike, W0: ArrayLike, g: float = 1.0) -> Trajectory:
    """Exact observables along the flow from W₀ [V, d]: ``gram_eigenvalues`` [T, d] (eigenvalues of WᵀW,
    descending), ``loss`` (g/8)(||WWᵀ − M*||² − ||M*||²) (the QWEM loss without its constant),
    ``subspace_angle`` (largest principal angle, radians, between span W and the top-d eigenvectors)."""
    lam, U = target_spectrum(M)
    W0 = as_array(W0, "W0", 2)
    require(W0.shape[0] == len(lam), f"W0 has {W0.shape[0]} rows, the target has V = {len(lam)}")
    g = positive(g, "g")
    t = as_array(times, "times").reshape(-1)
    require(bool((t >= 0).all()), "times must be ≥ 0")
    A = U.T @ W0
    out = [_observables(eigen_embedding(float(s), lam, A, g), lam, W0.shape[1], g) for s in t]
    return trajectory(t, gram_eigenvalues=np.array([o[0] for o in out]), loss=np.array([o[1] for o in out]),
                      subspace_angle=np.array([o[2] for o in out]))


def exact_step_times(M: ArrayLike, W0: ArrayLike, t_max: float, g: float = 1.0, grid: int = 200) -> np.ndarray:
    """Exact step times [d] from W₀ [V, d]: the first t ≤ t_max at which the k-th eigenvalue of WᵀW reaches
    λ_k/2 (bracketed on a uniform grid of `grid` points, then Brent's method to 1e-12); NaN if never."""
    from scipy.optimize import brentq

    lam, U = target_spectrum(M)
    W0 = as_array(W0, "W0", 2)
    d, g = W0.shape[1], positive(g, "g")
    require(W0.shape[0] == len(lam) and lam[d - 1] > 0, f"W0 must be [V={len(lam)}, d] with λ_d > 0")
    A = U.T @ W0

    def eigs(t: float) -> np.ndarray:
        Z = eigen_embedding(t, lam, A, g)
        return np.sort(np.linalg.eigvalsh(Z.T @ Z))[::-1] - lam[:d] / 2

    ts = np.linspace(0.0, positive(t_max, "t_max"), grid)
    vals = np.array([eigs(t) for t in ts])
    out = np.full(d, np.nan)
    for k in range(d):
        up = np.flatnonzero((vals[:-1, k] < 0) & (vals[1:, k] >= 0))
        if vals[0, k] >= 0:
            out[k] = 0.0
        elif len(up):
            i = up[0]
            out[k] = brentq(lambda t, k=k: float(eigs(t)[k]), ts[i], ts[i + 1], xtol=1e-12, rtol=1e-12)
    return out


def init_projections(M: ArrayLike, W0: ArrayLike, d: int | None = None) -> np.ndarray:
    """u_k(0) = v_kᵀ W₀W₀ᵀ v_k for the top-d eigenvectors v_k of M* (default d = W₀'s columns)."""
    lam, U = target_spectrum(M)
    W0 = as_array(W0, "W0", 2)
    d = W0.shape[1] if d is None else d
    return ((U[:, :d].T @ W0) ** 2).sum(1)


def effective_init(M: ArrayLike, W0: ArrayLike) -> np.ndarray:
    """Each mode's effective initial strength in the small-init limit [d]: r_k² = ||a_k − P_{a_1..a_(k−1)} a_k||²,
    a_k = v_kᵀW₀ (the Gram–Schmidt residuals, |R_kk|² of the QR factor of [a_1; …; a_d]ᵀ). Once modes 1..k−1
    are learned they occupy their directions of ℝᵈ (K⁻¹ in the closed form projects them out), so mode k grows
    from the rest. For W₀ with iid N(0, σ²) entries, r_k² ~ σ²χ²_(d−k+1): E r_k² = (d − k + 1)σ²."""
    lam, U = target_spectrum(M)
    W0 = as_array(W0, "W0", 2)
    d = W0.shape[1]
    require(W0.shape[0] == len(lam) and d < len(lam), f"W0 must be [V={len(lam)}, d < V]; got {W0.shape}")
    R = np.linalg.qr((U[:, :d].T @ W0).T, mode="r")
    return np.diag(R) ** 2


def sigmoid_modes(times: ArrayLike, lam: ArrayLike, u0: ArrayLike, g: float = 1.0) -> np.ndarray:
    """u_k(t) = λ_k/(1 + (λ_k/u_k(0) − 1)e^{−gλ_k t}) [T, K]: exact for an init aligned with the eigenmodes
    (λ_k > 0, u_k(0) > 0), the small-init approximation otherwise."""
    t = as_array(times, "times").reshape(-1, 1)
    lam_, u = as_array(lam, "lam").reshape(1, -1), as_array(u0, "u0").reshape(1, -1)
    require(bool((lam_ > 0).all()), "sigmoid_modes needs positive eigenvalues λ_k (negative modes decay)")
    require(bool((u > 0).all()), "u_k(0) must be > 0: a mode with no initial component stays at the saddle")
    e = np.exp(-positive(g, "g") * lam_ * t)
    return lam_ / (1 + (lam_ / u - 1) * e)


def sigmoid_step_times(lam: ArrayLike, u0: ArrayLike, g: float = 1.0) -> np.ndarray:
    """t_k = ln(λ_k/u_k(0) − 1)/(gλ_k): when mode k reaches half its final value λ_k (small init:
    0 < u_k(0) < λ_k/2; a mode already past half at t = 0 has no step)."""
    lam_, u = as_array(lam, "lam"), np.broadcast_to(as_array(u0, "u0"), np.shape(lam)).astype(float)
    require(bool((lam_ > 0).all()), "step times exist for positive eigenvalues only")
    require(bool(((u > 0) & (u < lam_ / 2)).all()),
            "precondition 'small init' violated: step times need 0 < u_k(0) < λ_k/2; use a smaller init scale")
    return np.log(lam_ / u - 1) / (positive(g, "g") * lam_)


def learned_rank(eigenvalues: ArrayLike, lam: ArrayLike, threshold: float = 0.5) -> np.ndarray:
    """Learned modes: #{k : u_k ≥ threshold·λ_k} per row of `eigenvalues` [T, d] (descending)."""
    u = np.atleast_2d(as_array(eigenvalues, "eigenvalues"))
    lam_ = as_array(lam, "lam")[: u.shape[1]]
    return (u >= threshold * lam_).sum(1)


def plateau_losses(M: ArrayLike, d: int, g: float = 1.0) -> np.ndarray:
    """QWEM loss (without constant) with the top k modes learned, k = 0..d: −(g/8)Σ_{j≤k} λ_j²."""
    lam, _ = target_spectrum(M)
    _gap(lam, d)
    return -positive(g, "g") / 8 * np.concatenate([[0.0], np.cumsum(lam[:d] ** 2)])
