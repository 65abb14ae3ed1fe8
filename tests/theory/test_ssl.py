"""Linearized Barlow Twins (arXiv 2303.15438) against an independent float64 integration of the matrix flow
dW/dt = −4(WΓWᵀ − I)WΓ written here from the loss ‖WΓWᵀ − I‖² (scipy solve_ivp, DOP853), and the kernel-PCA
form against explicit random features."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.integrate import solve_ivp

from lazyrich.errors import LazyrichError
from lazyrich.theory import ssl

M, D = 8, 3
GAMMAS = np.array([1.0, 0.6, 0.35, 0.2, 0.1, -0.05, 0.05, 0.02])


def gamma_matrix(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    V, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(M, M)))
    return (V * GAMMAS) @ V.T, V


def flow(W0: np.ndarray, G: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Reference: W(t) at times T, [T, d, m], from the loss's own gradient (not the module's)."""
    d, m = W0.shape

    def rhs(_t, y):
        W = y.reshape(d, m)
        return (-4 * (W @ G @ W.T - np.eye(d)) @ W @ G).ravel()

    sol = solve_ivp(rhs, (0, T[-1]), W0.ravel(), t_eval=T, rtol=1e-11, atol=1e-15, method="DOP853")
    return sol.y.T.reshape(len(T), d, m)


def eigs_of_c(Ws: np.ndarray, G: np.ndarray) -> np.ndarray:
    return np.array([np.sort(np.linalg.eigvalsh(W @ G @ W.T))[::-1] for W in Ws])


def test_aligned_init_follows_the_logistic_solution():
    G, V = gamma_matrix()
    c0 = np.array([1e-4, 3e-5, 1e-3])
    U, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(D, D)))
    W0 = U @ np.diag(np.sqrt(c0 / GAMMAS[:D])) @ V[:, :D].T
    T = np.linspace(0, 10, 401)
    got = eigs_of_c(flow(W0, G, T), G)
    pred = ssl.eigenvalue_trajectory(T, GAMMAS[:D], c0)
    assert np.abs(np.sort(pred, 1)[:, ::-1] - got).max() < 1e-8
    # half-times: γ-ordered (c0 differ, yet 1/γ dominates here)
    th = ssl.step_times(GAMMAS[:D], c0)
    assert np.allclose(ssl.eigenvalue_trajectory(th[None, :].T.ravel(), GAMMAS[:D], c0).diagonal(), 0.5, atol=1e-12)


@pytest.mark.parametrize("scale,tol", [(1e-3, 1e-2), (1e-4, 2e-3)])
def test_random_small_init_follows_the_gram_schmidt_prediction(scale, tol):
    G, _ = gamma_matrix()
    W0 = scale * np.random.default_rng(2).normal(size=(D, M))
    T = np.linspace(0, 12, 2401)
    got = eigs_of_c(flow(W0, G, T), G)
    pred = ssl.ssl_prediction(T, W0, G)
    assert np.abs(got - pred["eigenvalues"]).max() < tol
    measured = np.array([T[np.argmax(got[:, j] > 0.5)] for j in range(D)])
    assert np.all(np.abs(measured / pred["step_times"] - 1) < 0.01)
    assert np.all(np.diff(measured) > 0)  # stepwise: one mode at a time, in decreasing γ


def test_final_representation_is_the_small_init_limit_of_the_flow():
    """C = I is a manifold of minima; from scale σ the leftover in modes beyond d is ∝ σ^{1 − γ_{d+1}/γ_d}
    (it grows as e^{4γ_{d+1}t} until mode d saturates at t_d ≈ ln(1/σ²)/(8γ_d)), so the closed form is the limit."""
    G, _ = gamma_matrix()
    err = {}
    for scale in (1e-4, 1e-8):
        W0 = scale * np.random.default_rng(3).normal(size=(D, M))
        W = flow(W0, G, np.array([0.0, 80.0]))[-1]
        assert ssl.barlow_loss(W, G) < 1e-12
        err[scale] = np.abs(W.T @ W - ssl.final_representation(G, D)).max()
    slope = np.log10(err[1e-4] / err[1e-8]) / 4
    assert err[1e-8] < 1e-2 and slope == pytest.approx(1 - GAMMAS[D] / GAMMAS[D - 1], abs=0.1)


def test_kernel_pca_form_equals_the_primal_eigenmodes():
    rng = np.random.default_rng(4)
    n, m, feats = 6, 5, 40  # 6 base points, 2 views each -> N = 12 views; 40 random ReLU features
    base = rng.normal(size=(n, m))
    views = np.concatenate([base + 0.3 * rng.normal(size=(n, m)), base + 0.3 * rng.normal(size=(n, m))])
    R = rng.normal(size=(m, feats))
    phi = lambda z: np.maximum(z @ R, 0) / np.sqrt(feats)  # noqa: E731
    pairs = np.stack([np.arange(n), np.arange(n) + n], 1)
    G = ssl.contrastive_matrix(phi(views[:n]), phi(views[n:]))
    g_primal, v = ssl.modes(G)
    K = phi(views) @ phi(views).T
    g_kernel, A = ssl.kernel_modes(K, pairs)
    nonzero = lambda g: np.sort(g[np.abs(g) > 1e-10])  # noqa: E731  (the primal Γ also has m_φ − N zero modes)
    assert np.allclose(nonzero(g_kernel), nonzero(g_primal), atol=1e-10)
    test = rng.normal(size=(4, m))
    k = phi(test) @ phi(views).T
    # eigenfunctions agree up to sign on new points, for the non-degenerate top modes
    e_kernel, e_primal = k @ A[:, :3], phi(test) @ v[:, :3]
    assert np.allclose(np.abs(e_kernel), np.abs(e_primal), atol=1e-9)
    d = 2
    assert np.allclose(ssl.final_kernel(K, pairs, k, d), phi(test) @ ssl.final_representation(G, d) @ phi(test).T, atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(st.floats(0.05, 3.0), st.floats(1e-8, 0.4))
def test_half_time_is_where_the_logistic_crosses_one_half(gamma, c0):
    t = ssl.step_times([gamma], [c0])
    assert ssl.eigenvalue_trajectory(t, [gamma], [c0])[0, 0] == pytest.approx(0.5, abs=1e-12)


def test_bad_input_is_a_clear_error():
    G, _ = gamma_matrix()
    with pytest.raises(LazyrichError, match="small-init"):
        ssl.eigenvalue_trajectory([0, 1], [1.0], [1.5])
    with pytest.raises(LazyrichError, match="symmetric"):
        ssl.modes(np.triu(np.ones((3, 3))))
    with pytest.raises(LazyrichError, match="pair row by row"):
        ssl.contrastive_matrix(np.ones((4, 3)), np.ones((5, 3)))
    with pytest.raises(LazyrichError, match="k=9"):
        ssl.effective_init(np.ones((3, M)), G, k=9)
