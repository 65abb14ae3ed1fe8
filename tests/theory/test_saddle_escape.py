"""Saddle escape at the origin (arXiv 2505.21722) against independent references written here: a hand-written
numpy gradient of G(θ) = (1/n)Σ yᵢ f_θ(xᵢ) integrated by scipy solve_ivp (float64) for the radial blow-up law,
and a separate single-neuron-path optimisation (scipy) for the escape speed s*."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp
from scipy.optimize import minimize

from lazyrich.errors import LazyrichError
from lazyrich.theory import saddle_escape as se

torch.set_num_threads(1)


def data(seed: int = 0, n: int = 30, d: int = 4):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = np.maximum(x @ rng.normal(size=(2, d)).T, 0) @ np.array([[1.0], [-0.7]])
    return x, y / np.sqrt((y ** 2).mean())


def grad_G(ws: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """∇G by hand: forward with ReLU masks, backward from dG/df = y/n."""
    hs, zs = [x], []
    for l, w in enumerate(ws):
        z = hs[-1] @ w.T
        zs.append(z)
        hs.append(np.maximum(z, 0) if l < len(ws) - 1 else z)
    g, out = y / len(x), [None] * len(ws)
    for l in range(len(ws) - 1, -1, -1):
        out[l] = g.T @ hs[l]
        if l:
            g = (g @ ws[l]) * (zs[l - 1] > 0)
    return out


def G_of(ws, x, y) -> float:
    h = x
    for l, w in enumerate(ws):
        h = h @ w.T
        h = np.maximum(h, 0) if l < len(ws) - 1 else h
    return float((h * y).sum(1).mean())


@pytest.mark.parametrize("depth", [4])
def test_escape_speed_equals_the_best_single_neuron_path(depth):
    """Measured: θ* is rank one in every layer (one path of neurons), so s* = L^{−L/2} max_{‖w‖=1, u=±1} mean u·y·relu(wᵀx)."""
    x, y = data()
    star = se.optimal_escape_direction((4, 5) + (5,) * (depth - 2) + (1,), x, y, restarts=4, iters=800)
    best = 0.0
    for s in range(4):
        w0 = np.random.default_rng(s).normal(size=4)
        for u in (1.0, -1.0):
            r = minimize(lambda w: -u * (y[:, 0] * np.maximum(x @ (w / np.linalg.norm(w)), 0)).mean(), w0, method="Nelder-Mead",
                         options={"xatol": 1e-10, "fatol": 1e-13, "maxiter": 4000})
            best = max(best, -r.fun)
    assert star.speed == pytest.approx(depth ** (-depth / 2) * best, rel=1e-6)
    assert star.residual < 1e-6 and np.allclose(star.layer_norms, 1 / depth, atol=1e-9)
    assert np.all(star.effective_ranks < 1 + 1e-6)
    assert G_of(star.weights, x, y) == pytest.approx(star.speed, rel=1e-12)


@pytest.mark.parametrize("depth", [3, 4])
def test_radial_blowup_law_along_the_optimal_direction(depth):
    """From ρ₀θ*, the G-flow θ̇ = ∇G keeps its direction and ‖θ(t)‖ = (ρ₀^{2−L} − L(L−2)s*t)^{1/(2−L)}."""
    x, y = data(1)
    widths = (4, 5) + (5,) * (depth - 2) + (1,)
    star = se.optimal_escape_direction(widths, x, y, restarts=4, iters=800)
    shapes = [w.shape for w in star.weights]
    rho0 = 0.3
    t_star = float(se.blowup_time(rho0, star.speed, depth))

    def rhs(_t, v):
        ws, i = [], 0
        for sh in shapes:
            ws.append(v[i:i + sh[0] * sh[1]].reshape(sh))
            i += sh[0] * sh[1]
        return np.concatenate([g.ravel() for g in grad_G(ws, x, y)])

    v0 = rho0 * np.concatenate([w.ravel() for w in star.weights])
    T = 0.9 * t_star
    sol = solve_ivp(rhs, (0, T), v0, t_eval=[0.5 * T, T], rtol=1e-11, atol=1e-14, method="DOP853")
    rho_pred = (rho0 ** (2 - depth) - depth * (depth - 2) * star.speed * sol.t) ** (1 / (2 - depth))
    # θ* is a numerical optimum (s* to ~1e-7): near blow-up ρ ∝ (t* − t)^{1/(2−L)} amplifies that ~10×
    assert np.allclose(np.linalg.norm(sol.y, axis=0), rho_pred, rtol=1e-4)
    cos = sol.y[:, -1] @ v0 / (np.linalg.norm(sol.y[:, -1]) * np.linalg.norm(v0))
    assert cos == pytest.approx(1.0, abs=1e-6)


def test_aligned_overlap_sees_through_hidden_permutations():
    rng = np.random.default_rng(4)
    ws = [rng.normal(size=(6, 4)), rng.normal(size=(6, 6)), rng.normal(size=(1, 6))]
    p1, p2 = rng.permutation(6), rng.permutation(6)
    perm = [ws[0][p1], ws[1][p2][:, p1], ws[2][:, p2]]
    assert np.allclose(se.aligned_overlap(ws, perm), 1.0, atol=1e-12)
    other = [rng.normal(size=w.shape) for w in ws]
    assert np.all(se.aligned_overlap(ws, other)[:2] < 0.9)


def test_rank_measures():
    assert se.effective_rank(np.outer([1.0, 2.0], [3.0, 1.0, 1.0])) == pytest.approx(1.0, abs=1e-6)
    assert se.effective_rank(np.eye(5)) == pytest.approx(5.0, rel=1e-12)
    assert se.singular_ratio(np.diag([3.0, 1.5, 1.0])) == pytest.approx(2.0, rel=1e-12)


def test_bad_input_is_a_clear_error():
    x, y = data()
    with pytest.raises(LazyrichError, match="L ≥ 3"):
        se.escape_time_exponent(2)
    with pytest.raises(LazyrichError, match="not a saddle"):
        se.optimal_escape_direction((4, 3, 3, 1), x, 0 * y, restarts=2, iters=2)
    with pytest.raises(LazyrichError, match="do not fit widths"):
        se.optimal_escape_direction((5, 3, 3, 1), x, y, restarts=2, iters=2)
    with pytest.raises(LazyrichError, match="positive escape speed"):
        se.blowup_time(0.1, -1.0, 3)
