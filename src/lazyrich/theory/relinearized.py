"""Kernel distance a run will reach by a horizon, predicted without training: lazy fit, relinearize, fit again.

For a two-layer net f(x) = A σ(W x) (multipliers folded into W and A), gradient flow on the
linearization f₀ + J(θ − θ₀) is solvable in closed form: with loss s·mean_i ||r_i||², layer rates η
(per step), K = J diag(η) Jᵀ = U Λ Uᵀ and time counted in steps k (GD with small rates),

    Δθ = η ⊙ Jᵀ U diag((1 − e^{−cλk}) / λ) Uᵀ r₀,        c = 2s/n.

One linearization misses the delayed rich regime (Kunin et al.): from a downstream init the first
layer's Jacobian is ∝ A, which is tiny until the readout has grown during the lazy fit. So the
estimate linearizes twice: once at init, and once more at the end of the first (lazy) fit, running
the same horizon from there, and reports S = 1 − ⟨K₀, K₂⟩/(‖K₀‖‖K₂‖) between the NTK at init and at
the end (both weighted by the layer rates, as the `kernel_distance` observer's default).
More phases converge to the trajectory itself (a coarse integrator, no longer a prediction); two is
the smallest number that sees the delayed regime. Measured accuracy (tests/theory/test_regime.py):
within a factor ≈ 2 of the measured S(0, T) away from the get-rich-quick corner, where one
linearization is off by orders of magnitude; it underestimates rapid (upstream) rich learning —
`regime.predict_regime_on_data` covers that with the gate-rotation number R. Cost O(n³c³) per net.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..errors import require
from ..models.activations import activation as act_fn
from ..models.activations import derivative


def jacobian(x: Tensor, W: Tensor, A: Tensor, act: str = "relu") -> tuple[Tensor, Tensor]:
    """∂f/∂A and ∂f/∂W of f = A σ(W x) over the samples: [n·c, c·m] and [n·c, m·d] (sample-major)."""
    n, d = x.shape
    c, m = A.shape
    z = x @ W.T                                    # [n, m]
    phi, dphi = act_fn(act)(z), derivative(act)(z)
    eye = torch.eye(c, dtype=x.dtype, device=x.device)
    j_a = (eye[None, :, :, None] * phi[:, None, None, :]).reshape(n * c, c * m)
    j_w = ((A[None] * dphi[:, None, :])[..., None] * x[:, None, None, :]).reshape(n * c, m * d)
    return j_a, j_w


def ntk(x: Tensor, W: Tensor, A: Tensor, lr_w: float, lr_a: float, act: str = "relu") -> Tensor:
    """Rate-weighted NTK [n·c, n·c] = η_A J_A J_Aᵀ + η_W J_W J_Wᵀ."""
    j_a, j_w = jacobian(x, W, A, act)
    return lr_a * j_a @ j_a.T + lr_w * j_w @ j_w.T


def linearized_step(x: Tensor, y: Tensor, W: Tensor, A: Tensor, steps: int, lr_w: float, lr_a: float,
                    act: str = "relu", loss_scale: float = 0.5) -> tuple[Tensor, Tensor]:
    """(W, A) after `steps` steps of rates (lr_w, lr_a) of gradient flow on the linearization at (W, A)
    (closed form above; equals GD on it to O(η))."""
    n, c = y.shape
    j_a, j_w = jacobian(x, W, A, act)
    r0 = (y - (act_fn(act)(x @ W.T) @ A.T)).reshape(-1)  # targets minus outputs, sample-major
    K = lr_a * j_a @ j_a.T + lr_w * j_w @ j_w.T
    lam, U = torch.linalg.eigh(K)
    lam = lam.clamp_min(0.0)
    rate = 2 * loss_scale / n
    tiny = lam <= lam.max() * 1e-13  # (1 − e^{−cλk})/λ → ck
    g = torch.where(tiny, torch.full_like(lam, steps * rate), -torch.expm1(-rate * steps * lam) / torch.where(tiny, 1.0, lam))
    v = U @ (g * (U.T @ r0))
    dA = lr_a * (j_a.T @ v)
    dW = lr_w * (j_w.T @ v)
    return W + dW.reshape(W.shape), A + dA.reshape(c, -1)


def relinearized_kernel_distance(x: Tensor, y: Tensor, W: Tensor, A: Tensor, steps: int, lr_w: float, lr_a: float,
                                 act: str = "relu", loss_scale: float = 0.5, phases: int = 2) -> float:
    """Predicted S(0, steps) of one two-layer net (W [m, d], A [c, m], x [n, d], y [n, c], float64):
    `phases` lazy fits of `steps` steps each, relinearizing in between (module docstring)."""
    require(x.dim() == 2 and y.dim() == 2 and W.dim() == 2 and A.dim() == 2,
            "give one net: x [n, d], y [n, c], W [m, d], A [c, m]")
    require(W.shape[1] == x.shape[1] and A.shape[1] == W.shape[0] and A.shape[0] == y.shape[1],
            f"shapes do not chain: x {tuple(x.shape)}, W {tuple(W.shape)}, A {tuple(A.shape)}, y {tuple(y.shape)}")
    require(steps >= 0 and phases >= 1, f"need steps ≥ 0 and phases ≥ 1 (got {steps}, {phases})")
    W1, A1 = W, A
    for _ in range(phases):
        W1, A1 = linearized_step(x, y, W1, A1, steps, lr_w, lr_a, act, loss_scale)
    K0, K1 = ntk(x, W, A, lr_w, lr_a, act), ntk(x, W1, A1, lr_w, lr_a, act)
    return float(1 - (K0 * K1).sum() / (torch.linalg.matrix_norm(K0) * torch.linalg.matrix_norm(K1)))
