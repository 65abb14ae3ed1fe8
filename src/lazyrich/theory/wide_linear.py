"""Two-layer linear networks f = W2 W1 x under gradient flow with whitened inputs.

* `lambda_balanced`: Dominé et al. (ICLR 2025) exact solution for λ-balanced inits
  W2ᵀW2/η2 − W1W1ᵀ/η1 = λ I. With Q = [W1ᵀ; W2] (unit rates) balance gives Q̇ = FQ − ½Q(QᵀQ) and
  R = QQᵀ obeys Ṙ = FR + RF − R², F = [[−λ/2 I_d, Σ_yxᵀ], [Σ_yx, λ/2 I_c]], solved in closed form by
  R(t) = e^{Ft} R₀ (I + Φ(t) R₀)⁻¹ e^{Ft}, Φ(t) = ∫₀ᵗ e^{2Fs} ds. By push-through this is
  R(t) = Q(t)Q(t)ᵀ with Q(t) = e^{Ft} Q₀ L⁻ᵀ, LLᵀ = I_h + Q₀ᵀΦ(t)Q₀: the h-column factor is stepped
  (‖F‖Δt ≤ ½, in F's eigenbasis), so the solution is rank ≤ h by construction (stepping the full
  QQᵀ let rounding grow outside the rank-h subspace whenever h < #positive eigenvalues of F).
  Cost: one eigh O((d+c)³), then O((d+c)h² + h³) per step. A perturbed copy measures how much the
  problem amplifies init rounding (near a λ = 0 saddle) and warns (`IllConditionedWarning`).
  Unequal rates map to unit rates exactly by V1 = (η2/η1)^{1/4} W1, V2 = (η1/η2)^{1/4} W2, time
  √(η1η2)·t, λ → √(η1η2)·λ. Verified against a float64 DOP853 solve of the weights' ODE (≤ 5.1e-10
  over 11 hard families, 100 × the slowest timescale) and the closed form in 40+-digit mpmath (≤ 1.3e-15)
  — tests/theory/test_lambda_balanced_reference.py, docs/theory/wide_linear.md.
* `isotropic`: Kunin et al. Theorem 4.2-type self-consistent dynamics. If Δ = η_aη_w Q = δ I_h then
  η_a W1ᵀW1 = ½(−δ + √(δ² + 4η_aη_w PᵀP)) and η_w W2W2ᵀ = ½(δ + √(δ² + 4η_aη_w PPᵀ)) with the
  root on the null space fixed by the rank (0 there when h < c for δ > 0, or h < d for δ < 0), and
  Ṗ = −G·(η_a W1ᵀW1) − (η_w W2W2ᵀ)·G, G = P − Σ_yx, is closed in P; integrated by DOP853.
  Verified against `lazyrich.flow` (same test file).
* `aligned_mode`: Dominé et al. Thm 5.1 scalar dynamics ȧ = √(λ² + 4a²)(s − a) of one task mode.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.integrate import solve_ivp

from ..errors import LazyrichError, require
from .checks import PROBE, as_array, balanced, ill_conditioned, linear_regression_inputs, positive
from .trajectory import Trajectory, trajectory

PAIR = "W1-W2"


def lambda_dims_ok(d: int, h: int, c: int, lam: float) -> None:
    """When can W2ᵀW2/η2 − W1W1ᵀ/η1 = λ I_h hold? λ > 0 makes W2ᵀW2 ≻ 0, so h ≤ c; λ < 0 needs h ≤ d.
    (Dominé et al. also assume min(d,c) ≤ h, a no-bottleneck condition of their derivation; the
    QQᵀ solution here does not need it: verified with h < min(d, c).)"""
    require(lam <= 0 or h <= c, f"precondition 'λ-balanced dimensions' violated: λ={lam:g} > 0 needs h ≤ c; got h={h}, c={c}")
    require(lam >= 0 or h <= d, f"precondition 'λ-balanced dimensions' violated: λ={lam:g} < 0 needs h ≤ d; got h={h}, d={d}")


def _gram_norm(Z: np.ndarray) -> float:
    """||ZZᵀ||_F = ||ZᵀZ||_F in O(n h²)."""
    return float(np.linalg.norm(Z.T @ Z))


def _gap(Z: np.ndarray) -> float:
    """||Z₁Z₁ᵀ − Z₀Z₀ᵀ||_F in O(n h²) without cancellation: with D = Z₁ − Z₀ the difference is ABᵀ,
    A = [D, Z₀], B = [Z₁, D], and ||ABᵀ||² = Σ (AᵀA) ∘ (BᵀB)."""
    D = Z[1] - Z[0]
    A, B = np.hstack([D, Z[0]]), np.hstack([Z[1], D])
    return float(np.sqrt(max(float(((A.T @ A) * (B.T @ B)).sum()), 0.0)))


def _factor_flow(Q0: np.ndarray, F: np.ndarray, times: np.ndarray, probe: float = 0.0,
                 seed: int = 0) -> tuple[np.ndarray, float, int]:
    """Rank-h factor Q(t) (R = QQᵀ) at every t in `times` (ascending, ≥ 0), stepped by
    Q ← e^{FΔ} Q L⁻ᵀ with LLᵀ = I + QᵀΦ(Δ)Q (Cholesky; I + QᵀΦQ ⪰ I since Φ ≻ 0), in F's eigenbasis.

    With ``probe > 0`` a second copy starting at Q0 + probe·||Q0||·N (N a fixed random unit direction)
    is stepped alongside; returns the largest change of R it causes (relative to max_s≤t ||R(s)||) divided
    by the relative change of R0 — the amplification κ of relative init errors. Returns (Q(t), κ, steps).
    """
    lam, O = np.linalg.eigh(F)
    dt_max = 0.5 / max(float(np.abs(lam).max()), 1e-12)
    n, h = Q0.shape
    Z = (O.T @ Q0)[None]
    if probe > 0:
        N = np.random.default_rng(seed).normal(size=Q0.shape)
        Z = np.concatenate([Z, Z + (probe * np.linalg.norm(Q0) / np.linalg.norm(N) * (O.T @ N))[None]])
        rel_in = _gap(Z) / max(_gram_norm(Z[0]), 1e-300)
    kappa, scale = 0.0, _gram_norm(Z[0])

    def step(Z: np.ndarray, dt: float) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            phi = np.where(lam == 0, dt, np.expm1(2 * lam * dt) / (2 * lam))
        M = np.eye(h) + np.swapaxes(Z, 1, 2) @ (phi[:, None] * Z)
        L = np.linalg.cholesky(0.5 * (M + np.swapaxes(M, 1, 2)))
        Zn = np.exp(lam * dt)[:, None] * Z
        # Zn L⁻ᵀ = (L⁻¹ Znᵀ)ᵀ: a triangular solve per copy
        return np.swapaxes(np.linalg.solve(L, np.swapaxes(Zn, 1, 2)), 1, 2)

    out = np.empty((len(times), n, h))
    now, steps = 0.0, 0
    for i, t in enumerate(times):
        span = float(t) - now
        k = int(np.ceil(span / dt_max)) if span > 0 else 0
        steps += k
        for _ in range(k):
            Z = step(Z, span / k)
            if probe > 0:
                scale = max(scale, _gram_norm(Z[0]))  # normwise over the trajectory so far
                kappa = max(kappa, _gap(Z) / max(scale, 1e-300) / max(rel_in, 1e-300))
        now = float(t)
        out[i] = O @ Z[0]
    return out, kappa, steps


def _times(times: ArrayLike) -> np.ndarray:
    t = as_array(times, "times").reshape(-1)
    require(bool((t >= 0).all()) and bool((np.diff(t) >= 0).all()), "times must be non-negative and ascending")
    return t


def linear_ntk(input_gram: np.ndarray, output_gram: np.ndarray, x: ArrayLike, lr1: float = 1.0,
               lr2: float = 1.0) -> np.ndarray:
    """lr-weighted NTK of f = W2W1x from the grams: Θ_ab(x_i, x_j) = η2 δ_ab x_iᵀW1ᵀW1x_j +
    η1 (W2W2ᵀ)_ab x_iᵀx_j; sample-major [n·c, n·c] like `lazyrich.observe.kernel` ([..., n·c, n·c])."""
    X = as_array(x, "x", 2)
    gi, go = np.asarray(input_gram), np.asarray(output_gram)
    n, c = len(X), go.shape[-1]
    a = X @ gi @ X.T  # [..., n, n]
    b = X @ X.T
    K = lr2 * a[..., :, None, :, None] * np.eye(c)[None, :, None, :] + lr1 * b[:, None, :, None] * go[..., None, :, None, :]
    return K.reshape(*gi.shape[:-2], n * c, n * c)


def _readouts(t: np.ndarray, P: np.ndarray, gi: np.ndarray, go: np.ndarray, sigma: np.ndarray, floor: float,
              q: float, x: ArrayLike | None, lr1: float, lr2: float) -> Trajectory:
    loss = 0.5 * ((P - sigma) ** 2).sum((-2, -1)) + floor
    extra = {}
    if x is not None:  # the NTK on the given inputs: kernel distance and magnitude over time
        K = linear_ntk(gi, go, x, lr1, lr2)
        norms = np.linalg.norm(K, axis=(-2, -1))
        extra = {"kernel_distance": 1 - (K * K[0]).sum((-2, -1)) / (norms * norms[0]), "ntk_ratio": norms / norms[0]}
    return trajectory(t, layers={"input_gram": "W1", "output_gram": "W2", "conserved_norm": PAIR},
                      loss=loss, beta=P.reshape(len(t), -1), input_gram=gi.reshape(len(t), -1),
                      output_gram=go.reshape(len(t), -1), conserved_norm=np.full(len(t), q), **extra)


def _setup(times: ArrayLike, W1: ArrayLike, W2: ArrayLike, sigma_yx: ArrayLike, lr1: float, lr2: float):
    """Checked arrays, shapes and the lr-weighted imbalance Q shared by the two-layer solutions."""
    t = _times(times)
    A, B = as_array(W1, "W1", 2), as_array(W2, "W2", 2)
    S = as_array(sigma_yx, "sigma_yx", 2)
    h, d = A.shape
    c = B.shape[0]
    require(B.shape[1] == h and S.shape == (c, d), f"shapes do not chain: W1 {A.shape}, W2 {B.shape}, Σ_yx {S.shape}")
    lr1, lr2 = positive(lr1, "lr1"), positive(lr2, "lr2")
    return t, A, B, S, h, d, c, lr1, lr2, B.T @ B / lr2 - A @ A.T / lr1


def lambda_balanced(times: ArrayLike, W1: ArrayLike, W2: ArrayLike, sigma_yx: ArrayLike, lr1: float = 1.0,
                    lr2: float = 1.0, loss_floor: float = 0.0, x: ArrayLike | None = None,
                    tol: float = 1e-8, check_conditioning: bool = True) -> Trajectory:
    """Exact gradient flow of a λ-balanced two-layer linear net on whitened data (module docstring).

    Observables: ``loss``, ``beta`` (W2W1, c×d row-major), ``input_gram`` (W1ᵀW1, layer W1),
    ``output_gram`` (W2W2ᵀ, layer W2), ``conserved_norm`` (||λI||_F, constant); with inputs `x` also the
    NTK's ``kernel_distance`` S(0,t) and ``ntk_ratio`` ||K_t||/||K_0|| (`linear_ntk` gives K itself). Precondition checked: Q = λ I at init (which
    implies h ≤ c for λ > 0 and h ≤ d for λ < 0, see `lambda_dims_ok`).
    ``check_conditioning`` (default on, doubles the cost) steps a copy from Q₀ perturbed by 1e-12
    (relative) and warns with `IllConditionedWarning` when the amplification κ gives an estimated
    error κ·u·steps > 1e-8 (rounding enters at every step).
    """
    t, A, B, S, h, d, c, lr1, lr2, Q = _setup(times, W1, W2, sigma_yx, lr1, lr2)
    lam = float(np.trace(Q)) / h
    balanced(Q, lam, "λ-balanced init (W2ᵀW2/η2 − W1W1ᵀ/η1 = λI)", tol)
    # λ = 0 up to rounding (trace(Q)/h ~ 1e-17) must not trip the sign-dependent dimension check
    lambda_dims_ok(d, h, c, 0.0 if abs(lam) <= tol * max(1.0, float(np.abs(Q).max())) else lam)
    k = np.sqrt(lr1 * lr2)
    V1, V2 = A * (lr2 / lr1) ** 0.25, B * (lr1 / lr2) ** 0.25
    Qm = np.vstack([V1.T, V2])
    lu = k * lam
    F = np.block([[-lu / 2 * np.eye(d), S.T], [S, lu / 2 * np.eye(c)]])
    Qt, kappa, steps = _factor_flow(Qm, F, k * t, probe=PROBE if check_conditioning else 0.0)
    ill_conditioned(kappa, steps, "lambda_balanced", "λ ≈ 0 and a task mode starting at, or passing through, zero strength: a saddle")
    top, bot = Qt[:, :d], Qt[:, d:]
    gi = top @ top.transpose(0, 2, 1) * np.sqrt(lr1 / lr2)
    go = bot @ bot.transpose(0, 2, 1) * np.sqrt(lr2 / lr1)
    return _readouts(t, bot @ top.transpose(0, 2, 1), gi, go, S, loss_floor, abs(lam) * np.sqrt(h), x, lr1, lr2)


def isotropic(times: ArrayLike, W1: ArrayLike, W2: ArrayLike, sigma_yx: ArrayLike, lr1: float = 1.0,
              lr2: float = 1.0, loss_floor: float = 0.0, x: ArrayLike | None = None, rtol: float = 1e-12,
              atol: float = 1e-13, tol: float = 1e-8) -> Trajectory:
    """Kunin et al. Thm 4.2-type dynamics of P = W2W1 when Δ = η1η2 Q = δ I_h (module docstring).

    Here W1 = W (rate η_w = lr1), W2 = Aᵀ (rate η_a = lr2). Preconditions checked: Q ∝ I at init,
    h ≤ c when δ > 0, h ≤ d when δ < 0. When h < c (δ > 0) or h < d (δ < 0) the grams are functions
    of P only while rank P = h; the solver stops with an error if a mode of P passes through zero.
    Same observables as `lambda_balanced`.
    """
    t, A, B, S, h, d, c, lr1, lr2, Q = _setup(times, W1, W2, sigma_yx, lr1, lr2)
    q = float(np.trace(Q)) / h
    balanced(Q, q, "isotropic imbalance (Δ = δ I)", tol)
    delta = lr1 * lr2 * q
    e = lr1 * lr2
    require(delta <= 0 or h <= c, f"precondition 'isotropic Δ' violated: δ={delta:g} > 0 needs h ≤ c; got h={h}, c={c}")
    require(delta >= 0 or h <= d, f"precondition 'isotropic Δ' violated: δ={delta:g} < 0 needs h ≤ d; got h={h}, d={d}")

    def grams(P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # η_a W1ᵀW1 (d×d): roots ½(−δ ± √(δ²+4σ²)); null directions of P carry 0 unless δ < 0 and h = d
        ev, U = np.linalg.eigh(e * P.T @ P)
        r = np.sqrt(delta**2 + 4 * np.maximum(ev, 0.0))
        xv = 0.5 * (-delta + r)
        if delta < 0:
            xv[: d - h] = 0.0  # eigh ascending: the d − h null directions come first
        X = (U * xv) @ U.T
        ev, U = np.linalg.eigh(e * P @ P.T)
        r = np.sqrt(delta**2 + 4 * np.maximum(ev, 0.0))
        yv = 0.5 * (delta + r)
        if delta > 0:
            yv[: c - h] = 0.0
        Y = (U * yv) @ U.T
        return X, Y

    def rhs(_t: float, p: np.ndarray) -> np.ndarray:
        P = p.reshape(c, d)
        X, Y = grams(P)
        G = P - S
        return (-(G @ X) - Y @ G).reshape(-1)

    P0 = B @ A
    fix = (delta > 0 and h < c) or (delta < 0 and h < d)
    floor = 1e-6 * max(1.0, float(np.abs(S).max())) ** 2

    def crossing(_t: float, p: np.ndarray) -> float:
        # with a null-space fix the grams are functions of P only while rank P = h
        sv = np.linalg.svd(p.reshape(c, d), compute_uv=False)
        return float(sv[h - 1] ** 2 - floor) if fix else 1.0

    crossing.terminal = True  # type: ignore[attr-defined]
    sol = solve_ivp(rhs, (0.0, float(t[-1])), P0.reshape(-1), method="DOP853", t_eval=t, rtol=rtol, atol=atol,
                    events=crossing)
    if sol.status == 1:
        raise LazyrichError(f"precondition 'rank P = h' violated at t={sol.t_events[0][0]:.4g} (h={h} < "
                             f"{'c' if delta > 0 else 'd'}): a mode of P passes through zero and the grams stop being "
                             "functions of P; use lambda_balanced (exact at any rank) or h = min(d, c)")
    require(sol.success, f"isotropic dynamics failed to integrate: {sol.message}")
    P = sol.y.T.reshape(len(t), c, d)
    XY = [grams(p) for p in P]
    gi = np.stack([x for x, _ in XY]) / lr2
    go = np.stack([y for _, y in XY]) / lr1
    return _readouts(t, P, gi, go, S, loss_floor, abs(q) * np.sqrt(h), x, lr1, lr2)


def aligned_mode(times: ArrayLike, s: float, a0: float, lam: float) -> np.ndarray:
    """Strength a(t) of a task-aligned mode (singular value s, initial a₀ > 0) of a λ-balanced linear net
    at unit rates: ȧ = √(λ² + 4a²)(s − a) (Dominé et al. Thm 5.1; Kunin's μ-equation at φ = 1).

    Closed form with u = tanh(θ/2), a = (λ/2) sinh θ: u(t) = (u₊ − E u₋)/(1 − E), E = C₀e^{−sgn(λ)Kt},
    K = √(λ² + 4s²); λ = 0 is Saxe's sigmoid. Verified against an adaptive ODE solve (1e-10)."""
    t = _times(times)
    s, a0 = positive(s, "s"), positive(a0, "a0")
    if lam == 0:
        e = np.exp(-2 * s * t)
        return s / (1 - e + e * s / a0)
    K = np.sqrt(lam**2 + 4 * s * s)
    up, um = (-lam + K) / (2 * s), (-lam - K) / (2 * s)
    u0 = np.sign(lam) * 2 * a0 / (abs(lam) + np.sqrt(lam**2 + 4 * a0 * a0))
    E = (u0 - up) / (u0 - um) * np.exp(-np.sign(lam) * K * t)
    u = (up - E * um) / (1 - E)
    return lam * u / (1 - u * u)


def linear_inputs(ens, data, member: int = 0) -> dict:  # noqa: ANN001 - Ensemble, Data
    """Keyword arguments of `lambda_balanced` / `isotropic` for one member of a two-layer linear
    ensemble (unit multipliers, no biases) on whitened data."""
    net = ens.net
    require(net.depth == 2 and net.activation == "linear" and not net.bias,
            f"needs a two-layer linear net without biases; got widths {net.widths}, {net.activation}")
    X, sigma, half_y2 = linear_regression_inputs(ens, data, member, "linear-network")
    rates = ens.rates()
    return {"W1": as_array(ens.params["W1"][member], "W1"), "W2": as_array(ens.params["W2"][member], "W2"),
            "sigma_yx": sigma, "lr1": float(rates["W1"][member]), "lr2": float(rates["W2"][member]),
            "loss_floor": half_y2 - 0.5 * float((sigma**2).sum())}
