"""Independent references for the closed forms, written here from the equations (never from lazyrich's
own `flow`/`train` engine): scipy DOP853 on the weights' gradient-flow ODE in float64, and mpmath at
high precision where float64 is itself ill-conditioned.

Convention (lazyrich/conventions.py): loss = LOSS_SCALE · mean_i ||f(x_i) − y_i||², time t = Σ η_k, and
per-tensor rates: dW/dt = −η_W ∂loss/∂W.
"""
from __future__ import annotations

import mpmath as mp
import numpy as np
from scipy.integrate import solve_ivp

from lazyrich.conventions import LOSS_SCALE

RTOL, ATOL = 1e-10, 1e-16  # the reference tolerance; weights can be ~1e-6, so atol is tiny


def whitened_data(d: int, c: int, n: int, rng: np.random.Generator, target: np.ndarray | None = None):
    """(X [n, d] with (1/n)XᵀX = I, Y [n, c]) drawn at random; Y = X Mᵀ + noise, M random unless given."""
    Z, _ = np.linalg.qr(rng.normal(size=(n, d)))
    X = Z * np.sqrt(n)
    M = rng.normal(size=(c, d)) if target is None else target
    return X, X @ M.T + 0.3 * rng.normal(size=(n, c))


def linear_net_flow(times, W1, W2, X, Y, lr1=1.0, lr2=1.0, rtol=RTOL, atol=ATOL,
                    decay=(0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """(W1(t), W2(t)) of f = W2 W1 x under dW_l/dt = −η_l (∂loss/∂W_l + κ_l W_l) (κ = `decay`, coupled
    L2), integrated by DOP853: [T, ...]."""
    h, d = W1.shape
    c = W2.shape[0]
    n = len(X)

    def rhs(_t, w):
        A, B = w[: h * d].reshape(h, d), w[h * d:].reshape(c, h)
        E = X @ A.T @ B.T - Y  # residuals [n, c]
        gB = 2 * LOSS_SCALE * E.T @ (X @ A.T) / n  # ∂loss/∂W2
        gA = 2 * LOSS_SCALE * B.T @ E.T @ X / n  # ∂loss/∂W1
        return np.concatenate([-lr1 * (gA + decay[0] * A).ravel(), -lr2 * (gB + decay[1] * B).ravel()])

    t = np.asarray(times, float)
    sol = solve_ivp(rhs, (0.0, t[-1]), np.concatenate([W1.ravel(), W2.ravel()]), method="DOP853", t_eval=t,
                    rtol=rtol, atol=atol)
    assert sol.success, sol.message
    y = sol.y.T
    return y[:, : h * d].reshape(-1, h, d), y[:, h * d:].reshape(-1, c, h)


def lambda_balanced_init(d: int, h: int, c: int, lam: float, rng: np.random.Generator, scale: float = 1.0,
                         lr1: float = 1.0, lr2: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Random (W1, W2) with W2ᵀW2/η2 − W1W1ᵀ/η1 = λI_h exactly up to rounding, for any admissible
    (d, h, c) (λ > 0 needs h ≤ c, λ < 0 needs h ≤ d, λ = 0 needs min(h, d) ≤ c)."""
    if lam >= 0:
        W1 = scale * rng.normal(size=(h, d)) / np.sqrt(d)
        G = lr2 * (W1 @ W1.T / lr1 + lam * np.eye(h))  # = W2ᵀW2
        g, E = np.linalg.eigh(G)
        keep = g > 1e-14 * max(g.max(), 1e-300)
        U, _ = np.linalg.qr(rng.normal(size=(c, int(keep.sum()))))
        return W1, U @ (np.sqrt(g[keep])[:, None] * E[:, keep].T)
    W2 = scale * rng.normal(size=(c, h)) / np.sqrt(h)
    G = lr1 * (W2.T @ W2 / lr2 - lam * np.eye(h))  # = W1W1ᵀ
    g, E = np.linalg.eigh(G)
    V, _ = np.linalg.qr(rng.normal(size=(d, h)))
    return (E * np.sqrt(g)) @ V.T, W2


def observables(W1: np.ndarray, W2: np.ndarray) -> dict[str, np.ndarray]:
    """beta = W2W1, input_gram = W1ᵀW1, output_gram = W2W2ᵀ, flattened per time like the Trajectory."""
    T = len(W1)
    return {"beta": (W2 @ W1).reshape(T, -1), "input_gram": (W1.transpose(0, 2, 1) @ W1).reshape(T, -1),
            "output_gram": (W2 @ W2.transpose(0, 2, 1)).reshape(T, -1)}


def rel_err(got: np.ndarray, want: np.ndarray) -> float:
    """Normwise relative error over the whole trajectory: max_t ||got − want|| / max_t ||want||."""
    g, w = np.asarray(got).reshape(len(got), -1), np.asarray(want).reshape(len(want), -1)
    return float(np.linalg.norm(g - w, axis=1).max() / max(np.linalg.norm(w, axis=1).max(), 1e-300))


def riccati_mp(t: float, W1: np.ndarray, W2: np.ndarray, sigma_yx: np.ndarray, lam: float, digits: int = 40):
    """R(t) = e^{Ft} R₀ (I + Φ(t) R₀)⁻¹ e^{Ft} at unit rates (Dominé et al.'s closed form), evaluated in
    one shot (no stepping) in high precision from the exact float64 inputs, in its push-through form
    e^{Ft} Q₀ (I_h + Q₀ᵀΦQ₀)⁻¹ Q₀ᵀ e^{Ft} (the n×n form is singular to working precision once e^{2Ft}
    swamps I). Precision: `digits` plus the digits e^{2||F||t} eats. Returns R as float64 [d+c, d+c]."""
    d, c = W1.shape[1], W2.shape[0]
    n = d + c
    Fn = np.block([[-lam / 2 * np.eye(d), sigma_yx.T], [sigma_yx, lam / 2 * np.eye(c)]])
    grow = 2 * float(np.abs(np.linalg.eigvalsh(Fn)).max()) * t / np.log(10)
    with mp.workdps(digits + int(grow) + 10):
        Q = mp.matrix(np.vstack([W1.T, W2]).tolist())
        F = mp.matrix(Fn.tolist())  # entries are exact float64 values (λ/2 is exact)
        ev, O = mp.eigsy(F)
        tt = mp.mpf(t)
        E = O * mp.diag([mp.exp(e * tt) for e in ev]) * O.T
        Phi = O * mp.diag([tt if e == 0 else mp.expm1(2 * e * tt) / (2 * e) for e in ev]) * O.T
        EQ = E * Q
        R = EQ * mp.inverse(mp.eye(Q.cols) + Q.T * Phi * Q) * EQ.T
        return np.array(R.tolist(), dtype=float)
