"""Single hidden neuron f(x) = a wᵀx under gradient flow (Kunin et al. 2024, "Get rich quick").

Conventions: loss ½ mean_i (f(x_i) − y_i)² with whitened inputs (1/n)XᵀX = I_d, so the loss is
½||β − β*||² + floor with β = a w and β* = (1/n)Xᵀy. Layer rates η_a (readout), η_w (first layer):
ȧ = η_a(wᵀβ* − a||w||²), ẇ = η_w(aβ* − a²w). Conserved: δ = η_w a² − η_a ||w||² (Kunin's δ;
the records' ``delta_k`` is Q = δ/(η_a η_w)).

Exact solution (projective-linear form, derived for this package): (a, w) = c(t)·(y, x) with
(x, y)' = L (x, y), L = [[−δ I, η_w β*], [η_a β*ᵀ, 0]], c(0) = 1 and c⁻² = 1 + 2η_a ∫₀ᵗ ||x||².
The component of x orthogonal to β* decays as e^{−δt}; the (x∥, y) block has eigenvalues
λ± = ½(−δ ± √(δ² + 4η_aη_w||β*||²)); every integral is closed form, evaluated after dividing by
e^{λ+ t} so nothing overflows. No quadrature, no time warp, any δ (including 0) and any rates.

Verified (tests/theory/test_single_neuron.py) against `lazyrich.flow` (dopri8, rtol 1e-10):
a, w, β, μ, φ and S(0,t) within 1e-6 (observed ≲ 1e-8) for δ ∈ {−5, −1, 0, 1, 5} with
(η_a, η_w) = (1, 1) and (0.5, 2); Fig. 3 table of Kunin et al. (S(0,20), first time φ > 0.99)
reproduced; the authors' kernel-distance bug (a₀² in place of a_t² in ||K_t||) is not copied.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize

from ..errors import require
from .checks import as_array, linear_regression_inputs, positive
from .trajectory import Trajectory, trajectory

PAIR = "W1-W2"


def conserved_delta(a0: float, w0: ArrayLike, lr_a: float = 1.0, lr_w: float = 1.0) -> float:
    """Kunin's δ = η_w a² − η_a ||w||² (conserved under gradient flow)."""
    w = as_array(w0, "w0", 1)
    return float(lr_w * a0**2 - lr_a * w @ w)


def regime(delta: float, tol: float = 1e-12) -> str:
    """``upstream`` (δ > 0: large readout, fast first layer), ``balanced`` (δ = 0) or ``downstream``."""
    if abs(delta) <= tol:
        return "balanced"
    return "upstream" if delta > 0 else "downstream"


def basin(a0: float, w0: ArrayLike, beta_star: ArrayLike, lr_a: float = 1.0, lr_w: float = 1.0) -> int:
    """Sign of a(∞): +1 or −1, 0 on the stable set of the saddle {a = 0, wᵀβ* = 0}.

    a(t) = c·y(t) with c > 0 and y dominated by e^{λ+ t}, so the basin is the sign of the λ+
    coefficient: sgn(η_a wᵀβ* + a₀(δ + √(δ² + 4η_aη_w||β*||²))/2) (Kunin et al. footnote at unit
    rates; for δ ≥ 0 it reduces to sgn(a₀)).
    """
    w, b = as_array(w0, "w0", 1), as_array(beta_star, "beta_star", 1)
    d = conserved_delta(a0, w, lr_a, lr_w)
    s2 = float(b @ b)
    v = lr_a * float(w @ b) + 0.5 * a0 * (d + np.sqrt(d * d + 4 * lr_a * lr_w * s2))
    return int(np.sign(v))


def _decaying_integral(z: float, shift: float, t: np.ndarray) -> np.ndarray:
    """e^{−shift·t} ∫₀ᵗ e^{z s} ds = e^{−shift t}(e^{zt} − 1)/z for z ≤ shift, without overflow."""
    if z == 0.0:
        return np.exp(-shift * t) * t
    zt = z * t
    near = np.abs(zt) < 1.0
    with np.errstate(over="ignore", invalid="ignore"):
        a = np.exp(-shift * t) * np.expm1(zt) / z
        b = (np.exp((z - shift) * t) - np.exp(-shift * t)) / z
    return np.where(near, a, b)


def solve(times: ArrayLike, a0: float, w0: ArrayLike, beta_star: ArrayLike, lr_a: float = 1.0,
          lr_w: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(a(t) [T], w(t) [T, d]) by the projective-linear closed form (module docstring)."""
    t = as_array(times, "times").reshape(-1)
    require(bool((t >= 0).all()), "times must be non-negative")
    w0 = as_array(w0, "w0", 1)
    bstar = as_array(beta_star, "beta_star", 1)
    require(w0.shape == bstar.shape, f"w0 has dimension {w0.shape[0]} but beta_star has {bstar.shape[0]}")
    lr_a, lr_w = positive(lr_a, "lr_a"), positive(lr_w, "lr_w")
    s = float(np.linalg.norm(bstar))
    require(s > 0, "beta_star = (1/n)Xᵀy is zero: the single neuron only decays; give a nonzero target")
    bhat = bstar / s
    delta = conserved_delta(a0, w0, lr_a, lr_w)
    disc = float(np.sqrt(delta**2 + 4 * lr_a * lr_w * s * s))
    lp, lm = 0.5 * (-delta + disc), 0.5 * (-delta - disc)  # lp ≥ max(0, −δ) > lm
    x_par0 = float(w0 @ bhat)
    x_perp0 = w0 - x_par0 * bhat
    # (x∥, y) = p·(λ+, η_a s) e^{λ+ t} + q·(λ−, η_a s) e^{λ− t}
    p = (x_par0 - lm * a0 / (lr_a * s)) / (lp - lm)
    q = a0 / (lr_a * s) - p
    decay = np.exp(-disc * t)  # e^{(λ− − λ+) t}
    x_par = p * lp + q * lm * decay  # all scaled by e^{−λ+ t}
    y = lr_a * s * (p + q * decay)
    perp = np.exp(-(delta + lp) * t)
    shift = 2 * lp
    integral = (p * lp) ** 2 * _decaying_integral(2 * lp, shift, t) \
        + (q * lm) ** 2 * np.exp(-shift * t) * _decaying_integral(2 * lm, 0.0, t) \
        + 2 * p * q * lp * lm * _decaying_integral(-delta, shift, t) \
        + float(x_perp0 @ x_perp0) * _decaying_integral(-2 * delta, shift, t)
    c = 1.0 / np.sqrt(np.exp(-shift * t) + 2 * lr_a * integral)
    a = c * y
    w = c[:, None] * (x_par[:, None] * bhat[None, :] + perp[:, None] * x_perp0[None, :])
    return a, w


def kernel_distance_from_weights(a0: float, w0: np.ndarray, a: np.ndarray, w: np.ndarray, lr_a: float = 1.0,
                                 lr_w: float = 1.0) -> np.ndarray:
    """S(0,t) of the lr-weighted NTK K = X M Xᵀ, M = η_w a² I + η_a w wᵀ (whitened, full-rank X).

    Uses ||M_t||² = d η_w² a_t⁴ + 2η_wη_a a_t²||w_t||² + η_a²||w_t||⁴ with a_t (the authors' notebook
    writes a₀ there, a bug that shifts S by up to 0.19 in their Fig. 3 setup)."""
    d = w0.shape[-1]
    ww = (w * w).sum(-1)
    cross = d * lr_w**2 * a0**2 * a**2 + lr_w * lr_a * (a0**2 * ww + a**2 * float(w0 @ w0)) + lr_a**2 * (w @ w0) ** 2
    n0 = np.sqrt(d * lr_w**2 * a0**4 + 2 * lr_w * lr_a * a0**2 * float(w0 @ w0) + lr_a**2 * float(w0 @ w0) ** 2)
    nt = np.sqrt(d * lr_w**2 * a**4 + 2 * lr_w * lr_a * a**2 * ww + lr_a**2 * ww**2)
    return 1.0 - cross / (n0 * nt)


def single_neuron(times: ArrayLike, a0: float, w0: ArrayLike, beta_star: ArrayLike, lr_a: float = 1.0,
                  lr_w: float = 1.0, loss_floor: float = 0.0) -> Trajectory:
    """Exact gradient-flow trajectory of the single neuron under whitened inputs.

    Observables (records' names): ``loss``, ``beta`` (β = a w), ``a`` (layer W2), ``w`` (layer W1),
    ``mu`` (μ = a||w||), ``phi`` (φ = cos∠(w, β*)), ``kernel_distance`` (S(0,t), lr-weighted NTK),
    ``delta_k`` (layer W1-W2, Q = δ/(η_aη_w), constant). `loss_floor` = ½(mean y² − ||β*||²).
    """
    a, w = solve(times, a0, w0, beta_star, lr_a, lr_w)
    w0 = as_array(w0, "w0", 1)
    bstar = as_array(beta_star, "beta_star", 1)
    beta = a[:, None] * w
    wn = np.linalg.norm(w, axis=1)
    delta = conserved_delta(a0, w0, lr_a, lr_w)
    return trajectory(
        times, layers={"a": "W2", "w": "W1", "delta_k": PAIR},
        loss=0.5 * ((beta - bstar) ** 2).sum(1) + loss_floor, beta=beta, a=a, w=w, mu=a * wn,
        phi=(w @ bstar) / (wn * np.linalg.norm(bstar)),
        kernel_distance=kernel_distance_from_weights(a0, w0, a, w, lr_a, lr_w),
        delta_k=np.full((len(a), 1), delta / (lr_a * lr_w)))


def single_neuron_inputs(ens, data, member: int = 0) -> dict:  # noqa: ANN001 - Ensemble, Data
    """Keyword arguments of `single_neuron` for one member of an ensemble of f = a wᵀx nets
    (widths (d, 1, 1), linear, unit multipliers) on whitened data: a0, w0, β*, rates, loss floor."""
    net = ens.net
    require(net.widths[1:] == (1, 1) and net.activation == "linear" and not net.bias,
            f"single neuron needs widths (d, 1, 1), activation 'linear', no bias; got {net.widths}, {net.activation}")
    X, sigma, half_y2 = linear_regression_inputs(ens, data, member, "single neuron")
    rates = ens.rates()
    bstar = sigma[0]
    return {"a0": float(ens.params["W2"][member, 0, 0]), "w0": as_array(ens.params["W1"][member, 0], "w0"),
            "beta_star": bstar, "lr_a": float(rates["W2"][member]), "lr_w": float(rates["W1"][member]),
            "loss_floor": half_y2 - 0.5 * float(bstar @ bstar)}


# ---------------------------------------------------------------- implicit bias (Theorem 3.1)

def potential(beta: ArrayLike, delta: float, lr_a: float = 1.0, lr_w: float = 1.0) -> float:
    """Ψ_δ(β) = (κ − 2δ)√(κ + δ) / (3√(η_aη_w)), κ = √(δ² + 4η_aη_w||β||²).

    ∇Ψ_δ = √(κ − δ) β̂ and ∇²Ψ_δ ∝ M⁻¹, so gradient flow is a time-warped mirror flow with this
    potential (at unit rates Kunin et al.'s Ψ_δ; the rate factor is derived here and verified against
    simulation with η_aη_w ≠ 1)."""
    b = as_array(beta, "beta", 1)
    e = lr_a * lr_w
    r2 = float(b @ b)
    k = np.sqrt(delta**2 + 4 * e * r2)
    kp = k + delta if delta >= 0 else 4 * e * r2 / (k - delta)  # κ + δ without cancellation
    return float((k - 2 * delta) * np.sqrt(kp) / (3 * np.sqrt(e)))


def potential_grad(beta: np.ndarray, delta: float, lr_a: float = 1.0, lr_w: float = 1.0) -> np.ndarray:
    """∇Ψ_δ(β) = √(κ − δ) β/||β|| (0 at β = 0)."""
    r = float(np.linalg.norm(beta))
    if r == 0:
        return np.zeros_like(beta)
    k = np.sqrt(delta**2 + 4 * lr_a * lr_w * r * r)
    # κ − δ = 4η_aη_w r²/(κ + δ): no cancellation when δ ≫ r
    return np.sqrt(4 * lr_a * lr_w * r * r / (k + delta) if delta > 0 else k - delta) * beta / r


def _potential_hess(beta: np.ndarray, delta: float, e: float) -> np.ndarray:
    r = float(np.linalg.norm(beta))
    k = np.sqrt(delta**2 + 4 * e * r * r)
    g1 = np.sqrt(4 * e * r * r / (k + delta) if delta > 0 else k - delta)  # F'(r)
    g2 = 2 * e * r / (k * g1)  # F''(r)
    bh = beta / r
    return g2 * np.outer(bh, bh) + (g1 / r) * (np.eye(len(beta)) - np.outer(bh, bh))


def interpolating_solution(x: ArrayLike, y: ArrayLike, beta0: ArrayLike, delta: float, lr_a: float = 1.0,
                           lr_w: float = 1.0, tol: float = 1e-13) -> np.ndarray:
    """β_∞ = argmin Ψ_δ(β) − ∇Ψ_δ(β₀)ᵀβ subject to Xβ = y (Kunin et al. Theorem 3.1, any X, e.g. low rank).

    Solved numerically: β = β_min-norm + N z over the null space N of X, Newton's method with the
    exact Hessian (the objective is strictly convex for β ≠ 0). Preconditions: y ∈ range(X) (the
    flow interpolates) and β(t) ≠ 0 along the flow (not checked here). Verified against gradient flow
    of the network and against the closed form of the authors for a 1-D null space.
    """
    X = as_array(x, "x", 2)
    Y = as_array(y, "y").reshape(-1)
    b0 = as_array(beta0, "beta0", 1)
    require(X.shape[1] == b0.shape[0], f"beta0 has dimension {b0.shape[0]} but x has {X.shape[1]} features")
    require(float(np.linalg.norm(b0)) > 0, "precondition β(t) ≠ 0 violated at t = 0: beta0 = 0")
    e = positive(lr_a, "lr_a") * positive(lr_w, "lr_w")
    pinv = np.linalg.pinv(X)
    base = pinv @ Y
    resid = float(np.abs(X @ base - Y).max())
    require(resid <= 1e-9 * max(1.0, float(np.abs(Y).max())),
            f"precondition 'interpolation' violated: y is not in the range of X (residual {resid:.2e})")
    _, sv, vt = np.linalg.svd(X)
    rank = int((sv > 1e-12 * sv.max()).sum())
    null = vt[rank:].T
    if null.shape[1] == 0:
        return base
    g0 = potential_grad(b0, delta, lr_a, lr_w)

    def obj(z: np.ndarray) -> float:
        b = base + null @ z
        return potential(b, delta, lr_a, lr_w) - float(g0 @ b)

    def grad(z: np.ndarray) -> np.ndarray:
        return null.T @ (potential_grad(base + null @ z, delta, lr_a, lr_w) - g0)

    def hess(z: np.ndarray) -> np.ndarray:
        return null.T @ _potential_hess(base + null @ z, delta, e) @ null

    z0 = null.T @ b0  # start from the projection of β₀ (never β = 0 unless β₀ ⊥ null and base = 0)
    res = minimize(obj, z0, jac=grad, hess=hess, method="trust-exact", options={"gtol": tol, "maxiter": 500})
    return base + null @ res.x


def interpolating_limit(x: ArrayLike, y: ArrayLike, beta0: ArrayLike, upstream: bool) -> np.ndarray:
    """δ → +∞ (`upstream`): ℓ2 projection of β₀ onto {Xβ = y}; δ → −∞: β₀'s direction rescaled to
    interpolate (needs a 1-D constraint set direction, e.g. a single data point)."""
    X = as_array(x, "x", 2)
    Y = as_array(y, "y").reshape(-1)
    b0 = as_array(beta0, "beta0", 1)
    pinv = np.linalg.pinv(X)
    if upstream:
        return b0 + pinv @ (Y - X @ b0)
    xb = X @ b0
    scale = float(xb @ Y) / float(xb @ xb)
    require(np.allclose(scale * xb, Y), "the δ → −∞ limit needs y ∝ Xβ₀ (e.g. one data point)")
    return scale * b0
