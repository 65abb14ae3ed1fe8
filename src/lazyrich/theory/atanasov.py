"""Atanasov, Meterez, Simon & Pehlevan (ICLR 2025): the richness dial γ and its learning-rate law.

Prediction: with the readout divided by γ, the best (largest stable) learning rate scales as
η* ∝ γ² for γ ≪ 1 and η* ∝ γ^{2/L} for γ ≫ 1 (depth L) — `lazyrich.conventions.lr_gamma_factor`.

Derivation on their scalar deep-linear toy model f = (1/γ)∏_{ℓ=1}^L w_ℓ, loss ½(f − y)²: at a
balanced minimum all w_ℓ = w* and the Hessian is JJᵀ with J_ℓ = ∏_{k≠ℓ} w_k/γ, so the sharpness is
λ_max = L w*^{2(L−1)}/γ² and GD is stable for η < 2/λ_max.
* plain model: w*^L = γy ⇒ λ_max = L y^{2(L−1)/L} γ^{−2/L}   (γ ≫ 1 branch, η* ∝ γ^{2/L});
* centred model f − f₀ with w(0) = 1 (the small-γ protocol): w*^L = 1 + γy ⇒ λ_max → L/γ² as γ → 0
  (η* ∝ γ²). Without centring the initial output 1/γ is huge and this branch does not appear.
Verified (tests/theory/test_atanasov.py): the Hessian of the trained toy model (`lazyrich.train`)
equals λ_max to 1e-8, and the fitted exponents of sharpness in γ are −2/L and −2 within 0.05.
"""
from __future__ import annotations

import numpy as np

from ..conventions import lr_gamma_factor
from ..errors import require
from .checks import positive


def lr_law(gamma: float, depth: int, eta0: float = 1.0) -> float:
    """η*(γ) = η₀·γ² (γ ≤ 1) or η₀·γ^{2/L} (γ > 1)."""
    require(depth >= 1, f"depth={depth} must be ≥ 1")
    return float(eta0 * lr_gamma_factor(positive(gamma, "gamma"), depth))


def lr_exponent(gamma: float, depth: int) -> float:
    """d log η*/d log γ of the law: 2 for γ < 1, 2/L for γ > 1."""
    return 2.0 if gamma < 1 else 2.0 / depth


def toy_minimum(gamma: float, depth: int, y: float, centred: bool = False) -> float:
    """Balanced minimiser w* of the toy model: w*^L = γy (+1 when centred around w = 1)."""
    target = gamma * y + (1.0 if centred else 0.0)
    require(target > 0 or depth % 2 == 1, f"a balanced real minimum needs γy{' + 1' if centred else ''} > 0 for even depth")
    return float(np.sign(target) * abs(target) ** (1.0 / depth))


def toy_sharpness(gamma: float, depth: int, y: float, centred: bool = False) -> float:
    """λ_max of the loss Hessian at the balanced minimum: L w*^{2(L−1)}/γ²."""
    gamma = positive(gamma, "gamma")
    w = toy_minimum(gamma, depth, y, centred)
    return float(depth * w ** (2 * (depth - 1)) / gamma**2)


def toy_max_lr(gamma: float, depth: int, y: float, centred: bool = False) -> float:
    """Largest stable GD learning rate at the minimum, 2/λ_max."""
    return 2.0 / toy_sharpness(gamma, depth, y, centred)


def sharpness_exponent(gamma: float, depth: int) -> float:
    """d log λ_max/d log γ in the two limits: −2 (γ ≪ 1, centred) and −2/L (γ ≫ 1)."""
    return -2.0 if gamma < 1 else -2.0 / depth
