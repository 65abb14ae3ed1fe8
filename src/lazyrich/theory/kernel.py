"""Kernel ridge regression predicted from the eigenstructure: the eigenlearning / omniscient-risk equations,
the optimal ridge (negative included), the cost of overfitting and its benign / tempered / catastrophic class.

Setting (Simon et al. 2021 "eigenlearning", arXiv 2110.03922; Jacot et al. 2020; Canatar et al. 2021; used as
the starting point of arXiv 2311.14646 §3 and 2306.13185 §3). The kernel has Mercer eigenvalues λ_i over the
data distribution, the target f*(x) = Σ_i v_i φ_i(x), labels y = f*(x) + ε with Var ε = σ² (`noise`). KRR on
n samples with ridge δ: f̂ = K(·, X)(K_XX + δ I)⁻¹ y (δ multiplies I, not n·I). Then, up to O(1/n):
* effective regularization κ > 0:  Σ_i λ_i/(λ_i + κ) + δ/κ = n;
* learnability of mode i:          L_i = λ_i/(λ_i + κ);
* overfitting coefficient:         E₀ = n/(n − Σ_i L_i²);
* test MSE (noisy labels):         E_te = E₀ (Σ_i (1 − L_i)² v_i² + σ²);  excess risk E_te − σ²;
* train MSE:                       E_tr = (δ/(nκ))² E_te.
Negative δ is allowed down to the ridge where the physical branch ends (E₀ → ∞, Σ L_i² = n); on that branch
δ(κ) = κ(n − Σ_i λ_i/(λ_i + κ)) is increasing (dδ/dκ = n − Σ L_i² > 0), so optimizing over κ is optimizing
over δ. All functions are float64 numpy; checked against explicit KRR on many draws in tests/theory/test_kernel.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np

from ..errors import require

Regime = Literal["benign", "tempered", "catastrophic"]
_BISECT = 80  # bisection steps in log κ: 80 halvings of a ≤ 1400-wide bracket reach 1e-21 relative


@dataclass(frozen=True)
class KRRPrediction:
    """The eigenframework's numbers for one (spectrum, target, n, ridge, noise)."""

    kappa: float
    learnabilities: np.ndarray
    e0: float
    bias: float  # Σ (1 − L_i)² v_i²: excess risk before the E₀ factor
    test_mse: float  # on noisy labels: E₀ (bias + σ²)
    train_mse: float
    noise: float

    @property
    def excess(self) -> float:
        """Test MSE against the clean target f*: E_te − σ²."""
        return self.test_mse - self.noise


def _check(eigenvalues: np.ndarray, n: float) -> np.ndarray:
    lam = np.asarray(eigenvalues, dtype=np.float64).ravel()
    require(lam.size > 0 and bool(np.all(np.isfinite(lam))) and bool(np.all(lam >= 0)),
            "eigenvalues must be finite and non-negative (a kernel's spectrum); clip round-off negatives to 0")
    require(n >= 1, f"n = {n} samples: give at least 1")
    return lam[lam > 0]


def df1(lam: np.ndarray, kappa: float) -> float:
    """Σ λ_i/(λ_i + κ): the effective number of modes learned."""
    return float(np.sum(lam / (lam + kappa)))


def df2(lam: np.ndarray, kappa: float) -> float:
    """Σ λ_i²/(λ_i + κ)² = Σ L_i²."""
    return float(np.sum((lam / (lam + kappa)) ** 2))


def bisect_log(f: Callable[[float], float], lo: float, hi: float) -> float:
    """The root of f (decreasing, f(lo) > 0 > f(hi)) by bisection in log x."""
    a, b = math.log(lo), math.log(hi)
    for _ in range(_BISECT):
        m = 0.5 * (a + b)
        if f(math.exp(m)) > 0:
            a = m
        else:
            b = m
    return math.exp(0.5 * (a + b))


def critical_kappa(eigenvalues: np.ndarray, n: float) -> float:
    """κ_c with Σ L_i²(κ_c) = n: where the physical branch ends (E₀ = ∞); 0 when the spectrum has ≤ n modes
    worth of Σ L² (then every κ > 0 is physical)."""
    lam = _check(eigenvalues, n)
    if lam.size <= n:
        return 0.0
    return bisect_log(lambda k: df2(lam, k) - n, float(lam.min()) * 1e-12, float(lam.max()) * max(lam.size, 1.0))


def effective_ridge(eigenvalues: np.ndarray, n: float, ridge: float = 0.0) -> float:
    """κ solving Σ λ_i/(λ_i + κ) + ridge/κ = n on the physical branch (the largest root).

    Ridgeless (`ridge` = 0) needs more than n nonzero eigenvalues; a negative ridge needs n ≤ max_κ δ-curve."""
    lam = _check(eigenvalues, n)
    require(math.isfinite(ridge), f"ridge = {ridge} must be finite")
    if ridge == 0:
        require(lam.size > n, f"ridgeless KRR with n = {n} samples needs more than n nonzero eigenvalues (got {lam.size}): "
                              "add modes or use a positive ridge")
    hi = (float(lam.sum()) + max(ridge, 0.0)) / n * 2 + 1e-300  # g(κ) ≤ (Σλ + δ)/κ < n there
    if ridge >= 0:
        lo = hi
        while df1(lam, lo) + ridge / lo <= n:
            lo *= 1e-3
            require(lo > 1e-300, "could not bracket κ: the spectrum is degenerate (all eigenvalues ~ 0?)")
        return bisect_log(lambda k: df1(lam, k) + ridge / k - n, lo, hi)
    kc = critical_kappa(lam, n)  # δ(κ) = κ(n − df1) is increasing for κ > κ_c: the root is there
    require(kc > 0 and kc * (n - df1(lam, kc)) < ridge,
            f"ridge = {ridge:.4g} is below the most negative ridge this spectrum allows at n = {n} "
            f"({kc * (n - df1(lam, kc)) if kc > 0 else 0.0:.4g}): use a larger ridge")
    return bisect_log(lambda k: df1(lam, k) + ridge / k - n, kc, hi)


def ridge_for_kappa(eigenvalues: np.ndarray, n: float, kappa: float) -> float:
    """The ridge δ = κ(n − Σ λ_i/(λ_i + κ)) that gives effective regularization κ (inverse of `effective_ridge`)."""
    lam = _check(eigenvalues, n)
    return kappa * (n - df1(lam, kappa))


def _predict(lam: np.ndarray, v2: np.ndarray, n: float, kappa: float, ridge: float, noise: float) -> KRRPrediction:
    L = lam / (lam + kappa)
    e0 = n / (n - float(np.sum(L**2)))
    bias = float(np.sum((1 - L) ** 2 * v2))
    test = e0 * (bias + noise)
    return KRRPrediction(kappa, L, e0, bias, test, (ridge / (n * kappa)) ** 2 * test, noise)


def _target(eigenvalues: np.ndarray, coefficients: np.ndarray, noise: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lam = np.asarray(eigenvalues, dtype=np.float64).ravel()
    v = np.asarray(coefficients, dtype=np.float64).ravel()
    require(lam.shape == v.shape, f"{lam.size} eigenvalues but {v.size} target coefficients: give one coefficient per mode")
    require(noise >= 0, f"noise = {noise} is a variance σ²: it must be ≥ 0")
    keep = lam > 0  # target power on zero-eigenvalue modes is never learned: it stays in the bias
    return lam, v**2, keep


def eigenlearning(eigenvalues: np.ndarray, coefficients: np.ndarray, n: float, ridge: float = 0.0,
                  noise: float = 0.0) -> KRRPrediction:
    """Predicted KRR test and train MSE from the kernel eigenvalues λ_i and the target's coefficients v_i in
    the eigenbasis (module docstring). `noise` is the label-noise variance σ²."""
    lam, v2, keep = _target(eigenvalues, coefficients, noise)
    kappa = effective_ridge(lam[keep], n, ridge)
    p = _predict(lam[keep], v2[keep], n, kappa, ridge, noise)
    lost = float(v2[~keep].sum())  # modes with λ = 0: L = 0, full bias
    return KRRPrediction(p.kappa, p.learnabilities, p.e0, p.bias + lost, p.e0 * (p.bias + lost + noise),
                         (ridge / (n * kappa)) ** 2 * p.e0 * (p.bias + lost + noise), noise)


def kernel_eigensystem(K_pool: np.ndarray, y_pool: np.ndarray, basis: bool = False
                       ) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Population proxy from a kernel matrix on a pool of N points drawn from the data distribution: the pool's
    empirical distribution stands in for the population, so the operator's eigenvalues are those of K/N and the
    eigenfunctions on the pool are √N u_i (u_i unit eigenvectors of K); the target's coefficients are
    v_i = u_iᵀ y/√N. Exact when the n training points are drawn from the pool and the risk is measured on the
    pool; otherwise an O(1/√N) estimate of the population eigensystem. Returns (λ descending, v), and with
    `basis` also the eigenfunction values on the pool, [N, N] (row p: φ(x_p))."""
    import torch  # LAPACK through torch: numpy's threaded eigh stalls on a shared machine

    K = np.asarray(K_pool, dtype=np.float64)
    y = np.asarray(y_pool, dtype=np.float64).ravel()
    require(K.ndim == 2 and K.shape[0] == K.shape[1] == y.size,
            f"K_pool must be N×N with N = len(y_pool); got {K.shape} and {y.size} labels")
    require(bool(np.allclose(K, K.T, rtol=1e-10, atol=1e-12 * float(np.abs(K).max() or 1.0))),
            "K_pool is not symmetric: pass a kernel (Gram) matrix")
    N = y.size
    w_t, U_t = torch.linalg.eigh(torch.from_numpy((K + K.T) / 2))
    w, U = w_t.numpy()[::-1], U_t.numpy()[:, ::-1]
    lam, v = np.clip(w, 0.0, None) / N, U.T @ y / math.sqrt(N)
    return (lam, v, U * math.sqrt(N)) if basis else (lam, v)


def scan_then_golden(f: Callable[[float], float], xs: np.ndarray, iters: int) -> float:
    """argmin of f: the best point of the scan `xs`, refined by `iters` golden-section steps on its bracket
    (f may have several local minima over the whole range, so the scan picks the basin first)."""
    i = int(np.argmin([f(x) for x in xs]))
    a, b = xs[max(i - 1, 0)], xs[min(i + 1, len(xs) - 1)]
    g = (math.sqrt(5) - 1) / 2
    for _ in range(iters):
        c, d = b - g * (b - a), a + g * (b - a)
        if f(c) < f(d):
            b = d
        else:
            a = c
    return 0.5 * (a + b)


def optimal_ridge(eigenvalues: np.ndarray, coefficients: np.ndarray, n: float, noise: float = 0.0,
                  allow_negative: bool = True, grid: int = 400) -> tuple[float, KRRPrediction]:
    """(δ*, prediction at δ*) minimizing the predicted test MSE over the ridge — over all δ on the physical branch
    when `allow_negative`, else over δ ≥ 0. Minimized over log κ (δ(κ) is increasing there): a `grid`-point scan
    refined by golden-section search, relative accuracy ~1e-10 in κ."""
    lam, v2, keep = _target(eigenvalues, coefficients, noise)
    lam, lost = lam[keep], float(v2[~keep].sum())
    v2 = v2[keep]
    kc = critical_kappa(lam, n)
    k0 = effective_ridge(lam, n, 0.0) if lam.size > n else kc
    lo = kc * (1 + 1e-9) if allow_negative else max(k0, 1e-300)
    lo = max(lo, float(lam.min()) * 1e-12)
    hi = max(float(lam.sum()) / n, float(lam.max())) * 1e4

    def risk(logk: float) -> float:
        return _predict(lam, v2, n, math.exp(logk), 0.0, noise + lost).test_mse

    kappa = math.exp(scan_then_golden(risk, np.linspace(math.log(lo), math.log(hi), grid), 100))
    if not allow_negative and kappa <= k0 * (1 + 1e-9):
        kappa = k0
    delta = kappa * (n - df1(lam, kappa))
    if not allow_negative:
        delta = max(delta, 0.0)
    p = _predict(lam, v2, n, kappa, delta, noise + lost)
    return delta, KRRPrediction(p.kappa, p.learnabilities, p.e0, p.bias + lost, p.test_mse, p.train_mse, noise)


def cost_of_overfitting(eigenvalues: np.ndarray, coefficients: np.ndarray, n: float, noise: float) -> float:
    """Zhou, Simon, Vardi & Srebro (arXiv 2306.13185) cost of overfitting C = E_te(δ = 0)/min_{δ ≥ 0} E_te(δ),
    test MSE on noisy labels (so C ≥ 1; C → 1 benign, C → finite > 1 tempered, C → ∞ catastrophic as n → ∞)."""
    ridgeless = eigenlearning(eigenvalues, coefficients, n, 0.0, noise).test_mse
    _, best = optimal_ridge(eigenvalues, coefficients, n, noise, allow_negative=False)
    return ridgeless / best.test_mse


# ---------------------------------------------------------------- power-law tasks

def power_law_task(alpha: float, beta: float, modes: int) -> tuple[np.ndarray, np.ndarray]:
    """λ_i = i^{−α}, v_i = i^{−β/2} (so v_i² = i^{−β}), i = 1..modes: the power-law eigenstructure of
    arXiv 2311.14646 §5 and 2306.13185 §5 (α > 1 for a trace-class kernel, β > 1 for a finite-norm target)."""
    require(alpha > 1 and beta > 1, f"alpha = {alpha}, beta = {beta}: power-law tasks need α > 1 (finite trace) "
                                    "and β > 1 (finite target power)")
    require(modes >= 2, "modes must be ≥ 2")
    i = np.arange(1, int(modes) + 1, dtype=np.float64)
    return i**-alpha, i ** (-beta / 2)


def _a1(alpha: float) -> float:
    return (math.pi / alpha) / math.sin(math.pi / alpha)  # ∫₀^∞ du/(1 + u^α)


def ridgeless_e0_limit(alpha: float) -> float:
    """n → ∞ limit of E₀ at δ = 0 for λ_i ∝ i^{−α}: Σ L² / Σ L → ∫(1+u^α)⁻² / ∫(1+u^α)⁻¹ = 1 − 1/α, so E₀ → α."""
    require(alpha > 1, "alpha must exceed 1")
    return alpha


def fitting_ratio_limit(alpha: float, beta: float) -> float:
    """n → ∞, noiseless power-law task: E_tr/E_te at the optimal ridge (over all δ, negative included).
    Continuum limit (derived here from the eigenframework, docs/theory/kernel.md): with s = κ^{−1/α} and t = s/n,
    E_te ∝ t^{1−β'}/(1 − t A₂), β' = min(β, 2α + 1), A₂ = (1 − 1/α) A₁, minimized at t* = (β' − 1)/(β' A₂); the
    ridgeless point is t₀ = 1/A₁. Then δ* ≤ 0 iff β' ≥ α, and E_tr/E_te = (δ/(nκ))² = (1 − t A₁)²
    = ((α − β')/(β'(α − 1)))² at t*."""
    require(alpha > 1 and beta > 1, "alpha and beta must exceed 1")
    b = min(beta, 2 * alpha + 1)
    return ((alpha - b) / (b * (alpha - 1))) ** 2


def optimal_ridge_sign(alpha: float, beta: float, noise: float = 0.0) -> int:
    """Sign of the optimal ridge as n → ∞ on a power-law task: −1 (negative ridge optimal: overfitting is
    obligatory) if β' > α, 0 if β' = α, +1 if β' < α or if there is label noise (σ² > 0 dominates the vanishing
    bias at large n)."""
    b = min(beta, 2 * alpha + 1)
    if noise > 0 or b < alpha:
        return 1
    return 0 if b == alpha else -1


def cost_limit(alpha: float, beta: float, noise: float) -> float:
    """n → ∞ cost of overfitting C (δ* over δ ≥ 0) on λ_i = i^{−α}, v_i² = i^{−β} with label-noise variance σ²:
    σ² > 0: the bias vanishes (∝ n^{1−β'}) and the optimal risk → σ², the ridgeless one → E₀σ² = ασ²: C → α;
    σ² = 0: C = (α/β')·((β' − 1)α/(β'(α − 1)))^{β' − 1} if β' < α (continuum minimization, `fitting_ratio_limit`),
    else 1 (δ = 0 is already the best non-negative ridge)."""
    require(alpha > 1 and beta > 1 and noise >= 0, "need alpha > 1, beta > 1 and noise ≥ 0")
    if noise > 0:
        return alpha
    b = min(beta, 2 * alpha + 1)
    if b >= alpha:
        return 1.0
    return (alpha / b) * ((b - 1) * alpha / (b * (alpha - 1))) ** (b - 1)


def overfitting_regime(alpha: float, beta: float, noise: float) -> Regime:
    """Mallinar et al. 2022 / Zhou et al. 2023 taxonomy for power-law spectra from `cost_limit`: benign if C → 1,
    tempered if C → finite > 1, catastrophic if C → ∞ (α = ∞: faster-than-power-law decay, E₀ unbounded)."""
    if math.isinf(alpha):
        return "catastrophic" if noise > 0 else "benign"
    c = cost_limit(alpha, beta, noise)
    return "benign" if c == 1.0 else "tempered"


def eigen_decay_exponent(eigenvalues: np.ndarray, lo: int = 2, hi: int | None = None) -> float:
    """α fitted to λ_i ∝ i^{−α} by least squares on log λ vs log i over ranks lo..hi (1-based; default: up to
    the last eigenvalue above 1e-10 of the largest), the measured eigen-decay of a kernel."""
    lam = np.sort(np.asarray(eigenvalues, dtype=np.float64).ravel())[::-1]
    top = int(np.sum(lam > 1e-10 * lam[0])) if hi is None else int(hi)
    require(top - lo >= 2, f"fit range {lo}..{top} holds fewer than 3 eigenvalues: widen it")
    i = np.arange(lo, top + 1, dtype=np.float64)
    slope = np.polyfit(np.log(i), np.log(lam[lo - 1:top]), 1)[0]
    return float(-slope)


__all__ = ["KRRPrediction", "eigenlearning", "effective_ridge", "ridge_for_kappa", "critical_kappa", "kernel_eigensystem",
           "optimal_ridge", "cost_of_overfitting", "power_law_task", "ridgeless_e0_limit", "fitting_ratio_limit",
           "optimal_ridge_sign", "cost_limit", "overfitting_regime", "eigen_decay_exponent", "df1", "df2"]
