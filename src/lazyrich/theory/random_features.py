"""Random-feature ridge regression predicted from the kernel's eigenstructure: test risk as a function of the
number of features k, samples n and ridge δ, and the optimal ridge (arXiv 2311.14646, Simon, Karkada, Ghosh &
Belkin, "More is better", §4: test risk of optimally-ridged RF regression decreases in k and in n).

Model. Features ξ(x) = W Λ^{1/2} φ(x) ∈ R^k with W_{ji} ~ N(0, 1/k), so E_W ξ(x)·ξ(x') = K(x, x') (the kernel is the
k → ∞ limit); f̂ = aᵀξ with a = argmin Σ_j (aᵀξ(x_j) − y_j)² + δ‖a‖², i.e. KRR with the random kernel ξ(x)·ξ(x').

Risk (derived here, docs/theory/kernel.md; same structure as the paper's RF eigenframework). Given W this is KRR with
the feature covariance WΛWᵀ and a target whose part outside the features' span acts as extra noise; averaging over W
uses the sketching equivalent κ(T + κ)⁻¹ ≍ γ(Λ + γ)⁻¹ for T = Λ^{1/2}WᵀWΛ^{1/2}, and its κ-derivative for the
second-order terms. With df₁(γ) = Σ λ_i/(λ_i + γ), df₂(γ) = Σ λ_i²/(λ_i + γ)²:
* γ, κ > 0 solve   n = df₁(γ) + δ/κ,   k = df₁(γ) + kκ/γ   (κ = γ(1 − df₁/k));
* ρ = κ/(1 − df₂/k) (= κ dγ/dκ);
* bias  B = Σ_i v_i² [γ/(λ_i + γ) − ρ λ_i/(λ_i + γ)²];
* Σ L²  Q = df₁(γ) − ρ Σ_i λ_i/(λ_i + γ)²;  E₀ = n/(n − Q);
* test MSE E_te = E₀ (B + σ²), train MSE E_tr = (δ/(nκ))² E_te.
k → ∞ gives κ = γ = ρ and the KRR eigenframework (`theory.kernel`); ridgeless with k < n gives γ: df₁(γ) = k,
κ = 0, E₀ = n/(n − k) (least squares on k features). Checked against explicit RF regressions in
tests/theory/test_kernel_rf.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import require
from .kernel import bisect_log, df1, df2, scan_then_golden



@dataclass(frozen=True)
class RFPrediction:
    """The RF eigenframework's numbers for one (spectrum, target, n, k, ridge, noise)."""

    gamma: float
    kappa: float
    e0: float
    bias: float
    test_mse: float
    train_mse: float
    noise: float

    @property
    def excess(self) -> float:
        return self.test_mse - self.noise


def _solve_gamma(lam: np.ndarray, n: float, k: float, ridge: float) -> tuple[float, float]:
    """(γ, κ): bisection in log γ on h(γ) = df₁(γ) + δ/(γ(1 − df₁(γ)/k)) − n, decreasing on the physical branch
    df₁(γ) < min(n, k) (infeasible points count as h = +∞)."""
    cap = min(n, k)
    if ridge == 0:
        require(lam.size > cap, f"ridgeless RF regression with min(n, k) = {cap:g} needs more than that many nonzero "
                                f"kernel eigenvalues (got {lam.size}): add modes or use a positive ridge")
        target = cap  # δ/κ → n − k when k < n (κ → 0); df₁ = n when n < k
        g = _bisect(lambda x: df1(lam, x) - target, lam)
        return g, g * (1 - df1(lam, g) / k) if n < k else 0.0

    def h(g: float) -> float:
        d = df1(lam, g)
        if d >= k:
            return math.inf
        return d + ridge / (g * (1 - d / k)) - n
    return (g := _bisect(h, lam)), g * (1 - df1(lam, g) / k)


def _bisect(f, lam: np.ndarray) -> float:  # noqa: ANN001 - f decreasing in γ
    return bisect_log(f, float(lam.min()) * 1e-14, max(float(lam.sum()), float(lam.max())) * 1e14)


def rf_risk(eigenvalues: np.ndarray, coefficients: np.ndarray, n: float, k: float, ridge: float = 0.0,
            noise: float = 0.0) -> RFPrediction:
    """Predicted test / train MSE of RF ridge regression with k features on n samples (module docstring).
    `k = math.inf` gives KRR. `ridge` ≥ 0 (negative ridges are treated for KRR only, `theory.kernel`)."""
    lam = np.asarray(eigenvalues, dtype=np.float64).ravel()
    v2 = np.asarray(coefficients, dtype=np.float64).ravel() ** 2
    require(lam.shape == v2.shape, f"{lam.size} eigenvalues but {v2.size} target coefficients: give one per mode")
    require(bool(np.all(lam >= 0)) and bool(np.all(np.isfinite(lam))), "eigenvalues must be finite and non-negative")
    require(n >= 1 and k >= 1, f"n = {n}, k = {k}: need at least one sample and one feature")
    require(ridge >= 0 and math.isfinite(ridge), f"ridge = {ridge}: RF regression here takes a finite ridge ≥ 0")
    require(noise >= 0, f"noise = {noise} is a variance σ²: it must be ≥ 0")
    require(ridge > 0 or k != n, "ridgeless RF regression at k = n is the interpolation threshold (infinite risk): "
                                 "use k ≠ n or a positive ridge")
    keep = lam > 0
    lost = float(v2[~keep].sum())
    lam, v2 = lam[keep], v2[keep]
    gamma, kappa = _solve_gamma(lam, n, k, ridge)
    rho = kappa / (1 - df2(lam, gamma) / k) if math.isfinite(k) else gamma
    s = lam + gamma
    bias = float(np.sum(v2 * (gamma / s - rho * lam / s**2))) + lost
    q = df1(lam, gamma) - rho * float(np.sum(lam / s**2))
    e0 = n / (n - q)
    test = e0 * (bias + noise)
    train = (ridge / (n * kappa)) ** 2 * test if ridge > 0 else (0.0 if k >= n else _ls_train(n, k, test, e0))
    return RFPrediction(gamma, kappa, e0, bias, test, train, noise)


def _ls_train(n: float, k: float, test: float, e0: float) -> float:
    # ridgeless, k < n: least squares leaves residual (1 − k/n)·(B + σ²) on the training set = E_te (1 − k/n)/E₀
    return test * (1 - k / n) / e0


def rf_optimal_ridge(eigenvalues: np.ndarray, coefficients: np.ndarray, n: float, k: float, noise: float = 0.0,
                     grid: int = 120, lo: float = 1e-8, hi: float = 1e4) -> tuple[float, RFPrediction]:
    """(δ*, prediction) minimizing the predicted test MSE over δ ∈ {0} ∪ [lo, hi]·Σλ/n (log grid, then golden
    section on the best bracket). δ = 0 is included when k ≠ n."""
    scale = max(float(np.sum(eigenvalues)), 1e-300) / n
    xs = np.linspace(math.log(lo * scale), math.log(hi * scale), grid)

    def risk(x: float) -> float:
        return rf_risk(eigenvalues, coefficients, n, k, math.exp(x), noise).test_mse
    best = math.exp(scan_then_golden(risk, xs, 60))
    p = rf_risk(eigenvalues, coefficients, n, k, best, noise)
    if k != n:
        p0 = rf_risk(eigenvalues, coefficients, n, k, 0.0, noise)
        if p0.test_mse <= p.test_mse:
            return 0.0, p0
    return best, p


__all__ = ["RFPrediction", "rf_risk", "rf_optimal_ridge"]
