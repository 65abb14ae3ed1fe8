"""Every closed form of lazyrich.theory against an independent reference written from the equations
(tests/theory/reference.py: DOP853 on the weights' gradient-flow ODE, float64, rtol 1e-12; mpmath where
a number is checked to more digits than float64 ODEs give). Families drawn at random with fixed seeds.

Tolerances: 1e-8 normwise relative over the trajectory for the exact solutions (the reference's own
error at rtol 1e-12 is ≲ 1e-11, measured against mpmath); asymptotic theories (AGF: α → 0) get the
tolerance their own correction term sets, stated at the test.
"""
import mpmath as mp
import numpy as np
import pytest
import torch

from lazyrich.theory import (aligned_mode, isotropic, lambda_balanced, linear_agf, mode_strength, one_d,
                             single_neuron, toy_sharpness)
from lazyrich.conventions import LOSS_SCALE
from lazyrich.theory.atanasov import toy_minimum
from lazyrich.theory.balance import conserved_step, conserved_under_decay, decay_rate, one_d_step_factor
from lazyrich.theory.saxe import decoupled_init

from .helpers import agf_task
from .reference import lambda_balanced_init, linear_net_flow, observables, rel_err, whitened_data

TOL = 1e-8

# ---- single neuron f = a wᵀx (Kunin et al.): δ = η_w a² − η_a||w||² ---------------------------------
NEURON = [  # (d, δ, η_a, η_w)
    (1, 0.0, 1.0, 1.0),  # d = h = c = 1, balanced
    (4, 3.0, 1.0, 1.0),  # upstream
    (4, -20.0, 1.0, 1.0),  # strongly downstream (large |δ|)
    (3, 1e-7, 0.3, 3.0),  # tiny |δ|, unequal rates
    (5, -2.0, 2.5, 0.4),  # unequal rates
]


def _kernel_distance(a, w, X, lr_a, lr_w):
    """S(0,t) = 1 − <K₀,K_t>/(||K₀|| ||K_t||) of K = Σ_p η_p ∂f/∂θ_p ∂f/∂θ_pᵀ, ∂f/∂a = wᵀx, ∂f/∂w = a x."""
    K = np.stack([lr_a * np.outer(X @ wt, X @ wt) + lr_w * at**2 * X @ X.T for at, wt in zip(a, w)])
    return 1 - (K * K[0]).sum((1, 2)) / (np.linalg.norm(K, axis=(1, 2)) * np.linalg.norm(K[0]))


@pytest.mark.parametrize("d,delta,lr_a,lr_w", NEURON)
def test_single_neuron_vs_float64_ode(d, delta, lr_a, lr_w):
    rng = np.random.default_rng(int(10 * d + abs(delta)))
    X, Y = whitened_data(d, 1, 2 * d + 3, rng)
    w = rng.normal(size=d)
    w *= np.sqrt((max(0.0, -delta) + 0.3) / lr_a) / np.linalg.norm(w)
    a = np.sqrt((delta + lr_a * w @ w) / lr_w) * rng.choice([-1, 1])
    bstar = X.T @ Y[:, 0] / len(X)
    disc = np.sqrt(delta**2 + 4 * lr_a * lr_w * bstar @ bstar)
    t = np.linspace(0, 100 / min(disc, 0.5 * (disc - delta)), 41)  # 100 × the slowest rate's timescale
    pred = single_neuron(t, a, w, bstar, lr_a, lr_w)
    A, B = linear_net_flow(t, w[None], np.array([[a]]), X, Y, lr1=lr_w, lr2=lr_a, rtol=1e-12)
    assert rel_err(pred["a"], B[:, 0, 0]) <= TOL
    assert rel_err(pred["w"], A[:, 0]) <= TOL
    assert rel_err(pred["beta"], B[:, 0, 0, None] * A[:, 0]) <= TOL
    assert np.abs(pred["kernel_distance"] - _kernel_distance(B[:, 0, 0], A[:, 0], X, lr_a, lr_w)).max() <= TOL


# ---- 1-D data (Xu & Ziyin): f = uᵀW x with x_i = z_i n --------------------------------------------------
@pytest.mark.parametrize("h,scale,rates,seed", [(1, 1.0, (1.0, 1.0), 0), (6, 1e-3, (1.0, 1.0), 1),
                                                (8, 3.0, (0.4, 2.0), 2), (5, 0.5, (3.0, 0.5), 3)])
def test_one_d_vs_float64_ode(h, scale, rates, seed):
    rng = np.random.default_rng(seed)
    d, n = 3, 9
    nvec = rng.normal(size=d)
    nvec /= np.linalg.norm(nvec)
    z = rng.normal(size=n)
    X, Y = z[:, None] * nvec[None], (1.5 * z + 0.3 * rng.normal(size=n))[:, None]
    W1, u = scale * rng.normal(size=(h, d)), scale * rng.normal(size=h)
    lr_u, lr_w = rates
    gamma, y_star = np.sqrt(np.mean(z * z)), np.mean(z * Y[:, 0]) / np.sqrt(np.mean(z * z))
    w0 = W1 @ nvec
    su, sw = np.sqrt(lr_u), np.sqrt(lr_w)
    g = gamma * su * sw
    P = [np.sum((u / su + s * w0 / sw) ** 2) for s in (1, -1)]
    rate = g * np.sqrt(4 * y_star**2 + g * g * P[0] * P[1])
    esc = np.log(max(abs(y_star) / (g * max(P[0], 1e-300)), 1.0)) / max(g * abs(y_star), 1e-12)
    t = np.linspace(0, 100 * max(1 / rate, esc), 41)
    pred = one_d(t, u, w0, gamma, y_star, lr_u, lr_w)
    A, B = linear_net_flow(t, W1, u[None], X, Y, lr1=lr_w, lr2=lr_u, rtol=1e-12)
    assert rel_err(pred["output"], gamma * (B[:, 0] * (A @ nvec)).sum(1)) <= TOL
    assert rel_err(pred["u_norm"], np.linalg.norm(B[:, 0], axis=1)) <= TOL
    assert rel_err(pred["w_norm"], np.linalg.norm(A @ nvec, axis=1)) <= TOL


# ---- Saxe et al.: decoupled balanced init, equal rates 1/τ ------------------------------------------
@pytest.mark.parametrize("u0,tau,seed", [(1e-6, 1.0, 0), (0.3, 2.0, 1), (1e-3, 0.5, 2)])
def test_saxe_modes_vs_float64_ode(u0, tau, seed):
    rng = np.random.default_rng(seed)
    d, h, c = 4, 5, 3
    X, Y = whitened_data(d, c, 15, rng)
    S = Y.T @ X / len(X)
    U, s, Vt = np.linalg.svd(S, full_matrices=False)
    W1, W2 = decoupled_init(S, h, u0, seed=seed)
    t = np.linspace(0, 100 * tau * max(1 / (2 * s.min()), np.log(s.max() / u0) / (2 * s.min())), 41)
    A, B = linear_net_flow(t, W1, W2, X, Y, 1 / tau, 1 / tau, rtol=1e-12)
    modes = np.einsum("ia,tij,jb->tab", U, B @ A, Vt.T)
    want = mode_strength(t, s, u0, tau)
    assert rel_err(np.diagonal(modes, axis1=1, axis2=2), want) <= TOL
    assert np.abs(modes - np.einsum("tk,kl->tkl", want, np.eye(3))).max() <= TOL * s.max()


def test_aligned_mode_vs_high_precision_ode():
    """Dominé Thm 5.1 scalar mode vs mpmath's Taylor ODE solver at 20 digits (stiff-free, any λ)."""
    for s, a0, lam in [(2.0, 0.05, 0.3), (1.0, 1e-4, -4.0), (0.5, 2.0, 6.0)]:
        with mp.workdps(20):
            f = mp.odefun(lambda _t, a: mp.sqrt(mp.mpf(lam) ** 2 + 4 * a * a) * (s - a), 0, mp.mpf(a0))
            for ti in (0.5, 3.0):
                assert abs(aligned_mode([ti], s, a0, lam)[0] - float(f(ti))) <= 1e-12 * s


# ---- Kunin Thm 4.2-type isotropic dynamics (h = min(d, c) so no mode crosses zero) ------------------
@pytest.mark.parametrize("d,h,c,lam,rates,seed", [(5, 3, 3, 0.5, (0.7, 1.4), 0), (3, 3, 4, -1.5, (1.0, 1.0), 1),
                                                  (2, 2, 2, 8.0, (2.0, 0.5), 2)])
def test_isotropic_vs_float64_ode(d, h, c, lam, rates, seed):
    rng = np.random.default_rng(seed)
    X, Y = whitened_data(d, c, 3 * d, rng)
    W1, W2 = lambda_balanced_init(d, h, c, lam, rng, 1.0, *rates)
    S = Y.T @ X / len(X)
    k = np.sqrt(rates[0] * rates[1])
    s = np.linalg.svd(S, compute_uv=False)[:h]
    t = np.linspace(0, 100 / (k * np.sqrt((k * lam) ** 2 + 4 * s.min() ** 2)), 41)
    pred = isotropic(t, W1, W2, S, *rates)
    A, B = linear_net_flow(t, W1, W2, X, Y, *rates, rtol=1e-12)
    for key, want in observables(A, B).items():
        assert rel_err(pred[key], want) <= TOL, key
    # and the rank-h factor solution of the same run
    lb = lambda_balanced(t, W1, W2, S, *rates)
    assert rel_err(lb["beta"], pred["beta"]) <= TOL


# ---- AGF (Kunin et al. 2025), linear closed form: an α → 0 limit ------------------------------------
def test_linear_agf_vs_float64_ode_at_small_init():
    """Drop times vs the float64 ODE (not the engine) at α = 1e-12: AGF's error is O(1/ln(1/α)) of a
    drop time (the threshold's O(1) term), so 5% at ln(1/α) ≈ 28 (measured ≤ 2.7%); a plateau's level
    is off by the not-yet-learned modes' strength, exponentially small mid-plateau: 1e-4 (measured 1.3e-6)."""
    rng = np.random.default_rng(0)
    d, h, c, n = 5, 6, 4, 40
    s = np.array([3.0, 1.5, 0.75, 0.375])
    X, Y = agf_task(rng, d, c, n, tuple(s))
    alpha = 1e-12
    W1, W2 = alpha * rng.normal(size=(h, d)) / np.sqrt(d), alpha * rng.normal(size=(c, h)) / np.sqrt(c)
    pred = linear_agf(Y.T @ X / n, float((Y**2).sum(1).mean()), np.sqrt(2) * alpha)
    t = np.linspace(0, 1.3 * pred.jump_times[-1], 1200)
    A, B = linear_net_flow(t, W1, W2, X, Y, rtol=1e-9)
    loss = 0.5 * (((X @ (B @ A).transpose(0, 2, 1)) - Y) ** 2).sum(-1).mean(-1)
    mids = 0.5 * (pred.losses[:-1] + pred.losses[1:])
    drops = np.array([t[np.argmax(loss < m)] for m in mids])
    assert np.abs(drops / pred.jump_times - 1).max() < 0.05
    plateaus = np.interp(0.5 * (pred.jump_times[:-1] + pred.jump_times[1:]), t, loss)
    assert np.abs(plateaus / pred.losses[1:-1] - 1).max() < 1e-4


# ---- Atanasov et al. toy model: sharpness at the balanced minimum -----------------------------------
@pytest.mark.parametrize("depth,gamma,centred", [(2, 10.0, False), (3, 0.05, True), (4, 300.0, False), (1, 2.0, False)])
def test_toy_sharpness_vs_mpmath_hessian(depth, gamma, centred):
    """Top eigenvalue of the Hessian of ½((∏w − c)/γ − y)², by mpmath differentiation at 30 digits."""
    y = 1.5
    w_star = toy_minimum(gamma, depth, y, centred)
    with mp.workdps(30):
        c0 = 1 if centred else 0

        def loss(*w):
            p = mp.fprod(w)
            return (((p - c0) / gamma) - y) ** 2 / 2

        x = [mp.mpf(w_star)] * depth
        grad = [mp.diff(loss, x, tuple(int(i == j) for i in range(depth))) for j in range(depth)]
        H = mp.matrix(depth, depth)
        for i in range(depth):
            for j in range(depth):
                H[i, j] = mp.diff(loss, x, tuple(int(k == i) + int(k == j) for k in range(depth)))
        top = max(mp.eigsy(H)[0])
    assert max(abs(float(g)) for g in grad) <= 1e-12  # it is a stationary point
    assert abs(float(top) / toy_sharpness(gamma, depth, y, centred) - 1) <= 1e-12


# ---- balance: Q under weight decay, the exact one-step drift, the 1-D warmup factor -----------------
def test_conserved_under_decay_vs_float64_ode():
    """Q(t) = Q(0)e^{−2ρt} when η₁κ₁ = η₂κ₂ = ρ, against the weights' ODE with coupled L2 decay."""
    rng = np.random.default_rng(5)
    X, Y = whitened_data(4, 3, 12, rng)
    W1, W2 = rng.normal(size=(6, 4)), rng.normal(size=(3, 6))
    lr1, lr2, k1, k2 = 1.5, 0.3, 0.05, 0.25  # η₁κ₁ = η₂κ₂ = 0.075
    t = np.linspace(0, 40, 9)
    A, B = linear_net_flow(t, W1, W2, X, Y, lr1, lr2, rtol=1e-12, decay=(k1, k2))
    Q = B.transpose(0, 2, 1) @ B / lr2 - A @ A.transpose(0, 2, 1) / lr1
    rho = decay_rate(lr1, lr2, k1, k2)
    assert np.abs(Q - conserved_under_decay(t, Q[0], rho)).max() <= TOL * np.abs(Q[0]).max()


def _relu_grads(W1, W2, X, Y):
    """∂loss/∂W1, ∂loss/∂W2 of f = W2 relu(W1 x), loss = LOSS_SCALE·mean||f − y||², in numpy."""
    H = X @ W1.T
    E = np.maximum(H, 0) @ W2.T - Y
    g2 = 2 * LOSS_SCALE * E.T @ np.maximum(H, 0) / len(X)
    g1 = 2 * LOSS_SCALE * ((E @ W2) * (H > 0)).T @ X / len(X)
    return g1, g2


@pytest.mark.parametrize("relu", [False, True])
def test_conserved_step_vs_numpy_gradient_descent(relu):
    """One GD step W ← W − fη(g + κW) written here in numpy; Q after it vs `conserved_step` (linear:
    the full matrix; ReLU: its diagonal, the δ_k). Round-off only: 1e-13 relative."""
    rng = np.random.default_rng(int(relu))
    X, Y = whitened_data(5, 3, 15, rng)
    W1, W2 = 0.5 * rng.normal(size=(7, 5)), 0.5 * rng.normal(size=(3, 7))
    lr1, lr2, k1, k2, f = 0.05, 0.02, 0.1, 0.3, 0.4
    for _ in range(5):
        g1, g2 = _relu_grads(W1, W2, X, Y) if relu else (None, None)
        if not relu:
            E = X @ W1.T @ W2.T - Y
            g2, g1 = 2 * LOSS_SCALE * E.T @ X @ W1.T / len(X), 2 * LOSS_SCALE * W2.T @ E.T @ X / len(X)
        tt = [torch.tensor(v[None]) for v in (W1, W2, g1, g2)]
        pred = conserved_step(*tt, lr1, lr2, k1, k2, factor=f)[0].numpy()
        W1, W2 = W1 - f * lr1 * (g1 + k1 * W1), W2 - f * lr2 * (g2 + k2 * W2)
        got = W2.T @ W2 / lr2 - W1 @ W1.T / lr1
        if relu:
            got, pred = np.diag(got), np.diag(pred)
        assert np.abs(got - pred).max() <= 1e-13 * max(1.0, np.abs(got).max())


def test_one_d_step_factor_vs_numpy_gradient_descent():
    """C_{k+1}/C_k of the 1-D model under one GD step with decay ρ = η_uκ_u = η_wκ_w, in numpy."""
    rng = np.random.default_rng(7)
    h, gamma, lr_u, lr_w, rho, f = 5, 1.3, 0.2, 0.5, 0.01, 0.7
    u, w, z = rng.normal(size=h), rng.normal(size=h), rng.normal(size=11)
    y = 2.0 * z
    m2 = float(np.mean(z * z))
    for _ in range(5):
        out = gamma * (u @ w) * z  # f(x_i) = γ uᵀw z_i
        res = float(np.mean((out - y) * z)) / m2  # residual at the effective point, scaled back by m₂
        gu = 2 * LOSS_SCALE * np.mean((out - y) * z) * gamma * w  # ∂loss/∂u
        gw = 2 * LOSS_SCALE * np.mean((out - y) * z) * gamma * u
        C0 = u @ u / lr_u - w @ w / lr_w
        want = one_d_step_factor(f, lr_u, lr_w, gamma, m2, res, rho)
        u, w = u - f * lr_u * (gu + rho / lr_u * u), w - f * lr_w * (gw + rho / lr_w * w)
        assert abs((u @ u / lr_u - w @ w / lr_w) / C0 - want) <= 1e-12
