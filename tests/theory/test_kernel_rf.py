"""RF eigenframework (lazyrich.theory.random_features) against explicit random-feature ridge regressions.

Simulation (written here, float64): φ(x) ~ N(0, I_M) (Gaussian universality), features ξ = W Λ^{1/2} φ with
W_{ji} ~ N(0, 1/k) drawn anew per draw, a = ξ-ridge solution (dual form Ξᵀ(ΞΞᵀ + δI)⁻¹y, which is the min-norm
interpolant at δ = 0 when k > n); population test MSE = ‖Λ^{1/2}Wᵀa − v‖² + σ². Tolerance as in test_kernel.py:
3 standard errors over draws + 2/n relative (the framework's O(1/n) error; measured ≤ 1.7/n, largest near k ≈ n).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lazyrich.errors import LazyrichError
from lazyrich.theory import kernel as kt
from lazyrich.theory.random_features import rf_optimal_ridge, rf_risk

from .test_kernel import agrees


def simulate_rf(lam: np.ndarray, v: np.ndarray, n: int, k: int, ridge: float, noise: float, draws: int = 200,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    g = torch.Generator().manual_seed(seed)
    L, V = torch.tensor(lam), torch.tensor(v)
    phi = torch.randn(draws, n, lam.size, generator=g, dtype=torch.float64)
    y = phi @ V + math.sqrt(noise) * torch.randn(draws, n, generator=g, dtype=torch.float64)
    P = torch.randn(draws, k, lam.size, generator=g, dtype=torch.float64) / math.sqrt(k) * L.sqrt()
    X = phi @ P.transpose(1, 2)  # [draws, n, k]
    G = X @ X.transpose(1, 2)
    a = X.transpose(1, 2) @ torch.linalg.solve(G + ridge * torch.eye(n, dtype=torch.float64), y.unsqueeze(-1))
    test = ((P.transpose(1, 2) @ a).squeeze(-1) - V).pow(2).sum(-1) + noise
    train = ((X @ a).squeeze(-1) - y).pow(2).mean(-1)
    return test.numpy(), train.numpy()


@pytest.mark.parametrize("n,k,ridge,noise", [
    (50, 100, 0.01, 0.1),   # overparameterized, ridge
    (50, 100, 0.0, 0.1),    # min-norm interpolation with k > n
    (50, 20, 0.0, 0.1),     # underparameterized least squares: E₀ = n/(n − k)
    (60, 40, 0.05, 0.0),    # ridge, noiseless
])
def test_rf_risk_matches_simulation(n, k, ridge, noise):
    lam, v = kt.power_law_task(1.5, 1.5, 300)
    test, train = simulate_rf(lam, v, n, k, ridge, noise)
    p = rf_risk(lam, v, n, k, ridge, noise)
    assert agrees(test, p.test_mse, n), (test.mean(), p.test_mse)
    if ridge > 0 or k < n:
        assert agrees(train, p.train_mse, n), (train.mean(), p.train_mse)
    if ridge == 0 and k < n:
        assert p.e0 == pytest.approx(n / (n - k), rel=1e-9)


def test_infinite_features_is_krr():
    lam, v = kt.power_law_task(2.0, 2.5, 500)
    for ridge in (0.0, 1e-3, 0.3):
        assert rf_risk(lam, v, 40, math.inf, ridge, 0.1).test_mse == pytest.approx(
            kt.eigenlearning(lam, v, 40, ridge, 0.1).test_mse, rel=1e-9)
    # many features: RF → KRR continuously (k = 10⁷ vs ∞)
    assert rf_risk(lam, v, 40, 1e7, 1e-3, 0.1).test_mse == pytest.approx(
        kt.eigenlearning(lam, v, 40, 1e-3, 0.1).test_mse, rel=1e-4)


def test_optimally_ridged_risk_is_monotone_in_features_and_samples():
    """The paper's Theorem (more is better), on the predicted risk: optimal-ridge test MSE decreases in k and n."""
    lam, v = kt.power_law_task(1.5, 1.5, 2000)
    by_k = [rf_optimal_ridge(lam, v, 60, k, 0.1)[1].test_mse for k in (10, 30, 60, 120, 400)]
    by_n = [rf_optimal_ridge(lam, v, n, 60, 0.1)[1].test_mse for n in (10, 30, 60, 120, 400)]
    assert all(np.diff(by_k) < 0) and all(np.diff(by_n) < 0)
    ridgeless = [rf_risk(lam, v, 60, k, 0.0, 0.1).test_mse for k in (30, 55, 65, 120)]
    assert ridgeless[1] > ridgeless[0] and ridgeless[2] > ridgeless[3]  # ...but not without tuning: double descent


def test_rf_bad_input():
    lam, v = kt.power_law_task(2.0, 2.0, 100)
    with pytest.raises(LazyrichError, match="interpolation threshold"):
        rf_risk(lam, v, 30, 30, 0.0)
    with pytest.raises(LazyrichError, match="ridge ≥ 0"):
        rf_risk(lam, v, 30, 40, -1.0)
