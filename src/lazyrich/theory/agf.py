"""Alternating Gradient Flows (Kunin et al. 2025) for two-layer networks from small initialisation.

Network f(x) = Σ_i a_i σ(w_iᵀx) with σ positively homogeneous (linear, ReLU, leaky ReLU), so each
neuron θ_i = (w_i, a_i) enters 2-homogeneously. Loss ½ mean_n ||f(x_n) − y_n||², time t = GF time.

Generic algorithm (`agf`): all neurons start dormant. A dormant neuron at tiny scale only sees the
utility U_i(θ) = mean_n ⟨a_i σ(w_iᵀx_n), r_n⟩ of the current residual r = y − f_active; its direction
u_i follows the projected gradient u̇ = P⊥∇U(u) and its log-norm grows as d ln||θ_i||/dt = 2U(u_i).
A neuron activates when its norm reaches the scale at which a single neuron along u_i fits half of
what it can, ||θ||² = ρ²(u)/2 with ρ² = U(u)/mean||f_i(x; u)||² (this O(1) threshold replaces the
authors' ln(1/||θ₀||) + 0 and makes the jump time the loss-drop midpoint; the difference is
O(1/ln(1/α))). The active neurons then minimise the loss to convergence (instantly in AGF time),
the residual is updated, and the dormant flow resumes. Output: jump times, order, plateau losses.

Linear networks in closed form (`linear_agf`, the authors' Conjecture 4.1 code): modes of
β_OLS = Σ_yxΣ_xx⁻¹ are learned in decreasing order with plateau losses L_k = ½(mean||y||² − Σ_{j≤k}μ_j)
(μ: eigenvalues of Σ_yxΣ_xx⁻¹Σ_yxᵀ) and jump times t_k = τ_k ln(1/α): Δτ₁ = 1/σ_{0,0},
Δτ_k = (1 − Σ_{i≤k−2} σ_{i,k−i−1}Δτ_{i+1})/σ_{k−1,0}, σ_{k,j} = j-th singular value of (I − P_k)Σ_yx;
whitened: τ_k = 1/s_k. α is the per-neuron initial norm ||θ_i(0)||. By default the threshold ln(1/α)
of mode k gets the O(1) term ½ln σ_{k−1,0} (the loss-drop midpoint of an aligned neuron, the same
correction as the generic algorithm's threshold; whitened: t_k = ln(√s_k/α)/s_k).

Quadratic activation (σ = z², `agf(..., "quadratic")`): a neuron is κ = 3-homogeneous in θ, the dormant
flow is d ln‖θ‖/dt = 3‖θ‖U(u), u̇ = ‖θ‖P⊥∇U(u) (finite-time blow-up: the plateau lasts ∝ 1/‖θ(0)‖, and
the direction moves only O(1) before it), activation at ‖θ‖³ = ½U/mean‖f(x; u)‖², adaptive steps.
Checked against the closed form of one neuron and against GD on modular addition (experiments/_agf_modular).

Verified (tests/theory/test_agf.py): loss-drop times of GD from small init within 10% of both
predictions on a whitened linear net with separated singular values (observed ≤ 7.3%), within 20% on
a two-layer ReLU student of the teacher 2·relu(x₁) − relu(x₂) (observed ≤ 2% over four seeds), with
the order of learned features and the plateau levels. Limitation: when two features share a sign,
dormant neurons near the first feature (grown to O(1) but not merged) re-align to the second too early
(a same-sign teacher gave a second drop 36% early for one seed); GD absorbs them into the first.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize

from ..errors import require
from .checks import as_array, positive
from .trajectory import Trajectory, trajectory

_ACT = {"linear": (lambda z: z, lambda z: np.ones_like(z)),
        "relu": (lambda z: np.maximum(z, 0), lambda z: (z > 0).astype(float)),
        "leaky_relu": (lambda z: np.where(z > 0, z, 0.1 * z), lambda z: np.where(z > 0, 1.0, 0.1)),
        "quadratic": (lambda z: z * z, lambda z: 2 * z)}
# κ: the degree of homogeneity of one neuron a·σ(wᵀx) in θ = (w, a) (σ of degree κ − 1)
_KAPPA = {"linear": 2, "relu": 2, "leaky_relu": 2, "quadratic": 3}


@dataclass(frozen=True)
class AGFPrediction:
    """Jump times (GF time), the neuron or mode activated at each jump, the loss on every plateau
    (losses[0] before the first jump) and, for the generic algorithm, the weights after each jump and
    the norm ‖θ_i‖ of each activating neuron at its jump (`jump_norms`, before the cost minimisation)."""

    jump_times: np.ndarray
    order: list[int]
    losses: np.ndarray
    weights: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    jump_norms: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def drops(self) -> np.ndarray:
        """Size of each loss drop."""
        return -np.diff(self.losses)

    def trajectory(self, times: ArrayLike) -> Trajectory:
        """``loss`` as the AGF staircase: losses[k] on [t_k, t_{k+1})."""
        t = as_array(times, "times").reshape(-1)
        k = np.searchsorted(self.jump_times, t, side="right")
        return trajectory(t, loss=self.losses[k])


def linear_agf(sigma_yx: ArrayLike, mean_y2: float, init_norm: float, sigma_xx: ArrayLike | None = None,
               width: int | None = None, rate: float = 1.0, threshold: str = "midpoint") -> AGFPrediction:
    """Closed-form AGF prediction for f = W2W1x (module docstring). `mean_y2` = mean ||y||²;
    `init_norm` = α, the typical ||θ_i(0)|| (√2·α for W1 ~ N(0, α²/d), W2 ~ N(0, α²/c)); `width`
    caps the number of modes at min(c, h, d); `rate` = layer learning rate (equal for both layers);
    `threshold` = "authors" (t_k = τ_k ln(1/α)) or "midpoint" (adds the O(1) term ½ln σ of the mode)."""
    require(threshold in ("midpoint", "authors"), f"threshold must be 'midpoint' or 'authors', got {threshold!r}")
    S = as_array(sigma_yx, "sigma_yx", 2)
    c, d = S.shape
    Sxx = np.eye(d) if sigma_xx is None else as_array(sigma_xx, "sigma_xx", 2)
    require(0 < init_norm < 1, f"init_norm={init_norm} must be in (0, 1): AGF is the small-initialisation limit")
    rate = positive(rate, "rate")
    M = S @ np.linalg.solve(Sxx, S.T)
    mu, U = np.linalg.eigh(M)
    mu, U = mu[::-1], U[:, ::-1]
    K = min(c, d, width or min(c, d), int((mu > 1e-12 * max(mu[0], 1e-300)).sum()))

    def sv(k: int, j: int) -> float:
        Pk = U[:, :k] @ U[:, :k].T
        s = np.linalg.svd((np.eye(c) - Pk) @ S, compute_uv=False)
        return float(s[j]) if j < len(s) else 0.0

    # mode k accumulates utility rate σ_{i,k−i−1} in phase i and activates when the sum reaches its
    # threshold: ln(1/α) (authors), or ln(√σ/α) = log-norm at the loss-drop midpoint of an aligned neuron
    dt: list[float] = []
    for k in range(1, K + 1):
        acc = sum(sv(i, k - i - 1) * dt[i] for i in range(k - 1))
        lead = sv(k - 1, 0)
        c_k = np.log(1 / init_norm) + (0.5 * np.log(lead) if threshold == "midpoint" else 0.0)
        dt.append((c_k - acc) / lead)
    losses = 0.5 * (mean_y2 - np.concatenate([[0.0], np.cumsum(mu[:K])]))
    return AGFPrediction(np.cumsum(dt) / rate, list(range(K)), losses)


def _unit(theta: np.ndarray) -> np.ndarray:
    return theta / np.linalg.norm(theta, axis=-1, keepdims=True)


def _feature(X: np.ndarray, u: np.ndarray, d: int, sig) -> np.ndarray:  # noqa: ANN001
    f = np.outer(sig(X @ u[:d]), u[d:]).reshape(-1)
    nrm = float(np.linalg.norm(f))
    return f / nrm if nrm > 0 else f


def agf(x: ArrayLike, y: ArrayLike, W1: ArrayLike, W2: ArrayLike, activation: str = "relu", rate: float = 1.0,
        t_max: float = 1e3, loss_tol: float = 1e-10, dt: float = 0.01, merge_tol: float = 1e-2,
        step_tol: float = 0.01, fit_gtol: float = 1e-13, fit_maxiter: int = 20000,
        max_jumps: int | None = None) -> AGFPrediction:
    """Run AGF from the initial weights W1 [h, d], W2 [c, h] (small) on data x [n, d], y [n, c].

    Neurons are the units (right for ReLU-type nets; for linear nets, whose hidden layer is rotation
    symmetric, use `linear_agf`). Dormant neurons whose feature matches the activating one (cosine of
    the feature vectors > 1 − merge_tol) activate with it as exact copies of its direction (they share
    the feature along the flat valley and cannot be recruited for another feature by the minimiser).

    `activation="quadratic"` (σ = z², a neuron κ = 3-homogeneous in θ): the dormant flow is
    d ln‖θ‖/dt = κ‖θ‖^{κ−2}U(u), u̇ = ‖θ‖^{κ−2}P⊥∇U(u) (the authors' general κ), activation at
    ‖θ‖^κ = ½U/mean‖f(x; u)‖², and the step is adaptive (largest change of ln‖θ‖ or of u per step =
    `step_tol`; `dt` is used only for κ = 2): the plateau lasts ∝ 1/‖θ(0)‖, not ln(1/‖θ(0)‖).
    `fit_gtol`, `fit_maxiter`: L-BFGS stopping rule of the cost minimisation; `max_jumps`: stop after
    that many activations (None: until every neuron is active, the loss is below `loss_tol` or t_max)."""
    require(activation in _ACT, f"AGF here needs a homogeneous activation ({', '.join(_ACT)}); got {activation!r}")
    kappa = _KAPPA[activation]
    X = as_array(x, "x", 2)
    Y = as_array(y, "y").reshape(len(X), -1)
    A0, B0 = as_array(W1, "W1", 2), as_array(W2, "W2", 2)
    h, d = A0.shape
    c = Y.shape[1]
    require(B0.shape == (c, h) and X.shape[1] == d, f"shapes do not chain: x {X.shape}, W1 {A0.shape}, W2 {B0.shape}, y {Y.shape}")
    rate = positive(rate, "rate")
    sig, dsig = _ACT[activation]
    theta0 = np.hstack([A0, B0.T])  # neuron i: (w_i, a_i)
    norms0 = np.linalg.norm(theta0, axis=1)
    require(bool((norms0 > 0).all()) and float(norms0.max()) < 1, "AGF needs small nonzero neurons (0 < ||θ_i(0)|| < 1)")

    def fit(active: list[int], theta: np.ndarray) -> np.ndarray:
        # cost minimisation over active neurons (exact gradient, L-BFGS to convergence)
        def loss_grad(v: np.ndarray) -> tuple[float, np.ndarray]:
            th = v.reshape(len(active), d + c)
            z = X @ th[:, :d].T
            r = sig(z) @ th[:, d:] - Y
            g_a = sig(z).T @ r / len(X)
            g_w = ((r @ th[:, d:].T) * dsig(z)).T @ X / len(X)
            return 0.5 * float((r * r).sum(1).mean()), np.hstack([g_w, g_a]).reshape(-1)
        res = minimize(loss_grad, theta[active].reshape(-1), jac=True, method="L-BFGS-B",
                       options={"gtol": fit_gtol, "ftol": 1e-16, "maxiter": fit_maxiter, "maxcor": 30})
        out = theta.copy()
        out[active] = res.x.reshape(len(active), d + c)
        return out

    def utility(u: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        z = X @ u[:, :d].T  # [n, m]
        s, ds = sig(z), dsig(z)
        ra = r @ u[:, d:].T  # [n, m]: ⟨a_i, r_n⟩
        U = (s * ra).mean(0)
        g_w = ((ra * ds).T @ X) / len(X)
        g_a = s.T @ r / len(X)
        f2 = (s * s).mean(0) * (u[:, d:] ** 2).sum(1)
        return U, np.hstack([g_w, g_a]), f2

    def gap(uu: np.ndarray, ln: np.ndarray) -> np.ndarray:
        # log-norm minus activation threshold (1/κ)ln(½U/mean||f||²); −inf while U ≤ 0
        U, _, f2 = utility(uu, r)
        ok = (U > 0) & (f2 > 0)
        out = np.full(len(U), -np.inf)
        out[ok] = ln[ok] - np.log(0.5 * U[ok] / f2[ok]) / kappa
        return out

    def velocity(uu: np.ndarray, ln: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        U, g, _ = utility(uu, r)
        if kappa == 2:
            return rate * (g - (g * uu).sum(1, keepdims=True) * uu), rate * 2 * U
        speed = rate * np.exp((kappa - 2) * ln)  # ||θ||^{κ−2}
        return speed[:, None] * (g - (g * uu).sum(1, keepdims=True) * uu), speed * kappa * U

    theta = theta0.copy()
    u, logn = _unit(theta0), np.log(norms0)
    active: list[int] = []
    t, jumps, order, weights, jump_norms = 0.0, [], [], [], []
    r = Y.copy()
    losses = [0.5 * float((Y * Y).sum(1).mean())]
    while len(active) < h and losses[-1] > loss_tol and t < t_max and (max_jumps is None or len(jumps) < max_jumps):
        dormant = np.array([i for i in range(h) if i not in active])
        uu, ln = u[dormant], logn[dormant]
        g_old = gap(uu, ln)
        hit = None
        while t < t_max:
            du1, dl1 = velocity(uu, ln)  # Heun step on the sphere × log-norm
            h_t = dt
            if kappa != 2:  # adaptive: the rates grow like ||θ||^{κ−2} from ~0 at a tiny init
                fastest = max(float(np.abs(dl1).max()), float(np.linalg.norm(du1, axis=1).max()), 1e-300)
                h_t = min(step_tol / fastest, t_max - t + 1e-12)
            du2, dl2 = velocity(_unit(uu + h_t * du1), ln + h_t * dl1)
            uu_new, ln_new = _unit(uu + 0.5 * h_t * (du1 + du2)), ln + 0.5 * h_t * (dl1 + dl2)
            g_new = gap(uu_new, ln_new)
            crossed = np.where((g_new >= 0) & np.isfinite(g_old))[0]
            if len(crossed):
                frac = g_old[crossed] / (g_old[crossed] - g_new[crossed])  # linear interpolation in the step
                k = int(crossed[np.argmin(frac)])
                hit, t = k, t + float(frac.min()) * h_t
                uu, ln = uu_new, ln_new
                break
            uu, ln, g_old, t = uu_new, ln_new, g_new, t + h_t
        u[dormant], logn[dormant] = uu, ln
        if hit is None:
            break  # no dormant neuron activates before t_max
        i = int(dormant[hit])
        theta[i] = u[i] * np.exp(logn[i])
        jump_norms.append(float(np.exp(logn[i])))
        # dormant neurons already carrying the same feature (f_j ∝ f_i) join it: in GF they share the
        # feature along a flat valley instead of re-aligning with their grown norm
        fi = _feature(X, u[i], d, sig)
        same = [int(j) for j in dormant if j != i and float(_feature(X, u[j], d, sig) @ fi) > 1 - merge_tol]
        for j in same:  # snapped onto the same direction: exact copies stay copies under the cost minimisation
            u[j] = u[i]
            theta[j] = u[i] * np.exp(logn[j])
        active.extend([i, *same])
        theta = fit(active, theta)
        z = X @ theta[active, :d].T
        r = Y - sig(z) @ theta[active, d:]
        jumps.append(t)
        order.append(i)
        losses.append(0.5 * float((r * r).sum(1).mean()))
        weights.append((theta[:, :d].copy(), theta[:, d:].T.copy()))
    return AGFPrediction(np.array(jumps), order, np.array(losses), weights, np.array(jump_norms))
