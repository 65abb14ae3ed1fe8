"""Conventions used everywhere in lazyrich: one definition, one name per quantity.

* Loss: ``loss = scale · mean_i ||f(x_i) − y_i||²`` with ``scale = ½`` (``LOSS_SCALE``) by default.
  Kunin et al.'s code uses scale 1 (gradient factor 2/n); reproductions that follow it pass
  ``loss_scale=1.0`` and say so.
* Time: under GD ``t = Σ_k η_k`` with η_k the base learning rate at step k, so GD and gradient
  flow share one time axis (per-tensor scales multiply η but do not define time).
* Conserved quantity for consecutive layers l, l+1 (pair l):
  ``Q_l = W_{l+1}ᵀ W_{l+1} / η_{l+1} − W_l W_lᵀ / η_l`` (bias of layer l counts with W_l).
  Two-layer net ``f = A σ(W x)``: W = W1, A = W2, ``Q = AᵀA/η_A − WWᵀ/η_W``.
  Per-neuron ``δ_k`` of Kunin et al. is ``η_A η_W Q_kk``; the single-neuron ``δ = η_a η_w Q``;
  the Fig. 1 grid's δ is the learning-rate-free ``a² − ||w||²`` (= Q at unit learning rates).
  The paper's α is 1/α of the authors' code.
* Drift of Q is relative to ``max(||AᵀA||/η_A, ||WWᵀ||/η_W)`` (Q itself can be 0).
  For homogeneous activations (ReLU, leaky ReLU) only diag(Q) (the δ_k) is conserved; the full
  matrix only for linear layers.
* Relative imbalance ``||Q|| / (||AᵀA/η_A|| + ||WWᵀ/η_W||)`` (Frobenius) lies in [0, 1].
"""
from __future__ import annotations

import torch
from torch import Tensor

from ._batched import bmm

LOSS_SCALE = 0.5


def mse(pred: Tensor, target: Tensor, scale: float = LOSS_SCALE) -> Tensor:
    """Per-member loss ``scale · mean_i ||pred_i − target_i||²``; pred, target: [E, n, c] → [E]."""
    return scale * (pred - target).pow(2).sum(-1).mean(-1)


def gram_pair(upper: Tensor, lower: Tensor, lower_bias: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``(W_{l+1}ᵀ W_{l+1}, W_l W_lᵀ [+ b_l b_lᵀ])`` for batched weights [E, out, in]."""
    top = bmm(upper.transpose(-1, -2), upper)
    bottom = bmm(lower, lower.transpose(-1, -2))
    if lower_bias is not None:
        bottom = bottom + lower_bias.unsqueeze(-1) * lower_bias.unsqueeze(-2)
    return top, bottom


def _per_member(x: Tensor | float, like: Tensor) -> Tensor:
    x = torch.as_tensor(x, dtype=like.dtype, device=like.device)
    return x.reshape(-1, 1, 1) if x.dim() == 1 else x


def conserved(upper: Tensor, lower: Tensor, lr_upper: Tensor | float, lr_lower: Tensor | float,
              lower_bias: Tensor | None = None, lr_bias: Tensor | float | None = None) -> Tensor:
    """Q = W_{l+1}ᵀW_{l+1}/η_{l+1} − W_lW_lᵀ/η_l (− b_l b_lᵀ/η_b): [E, n_l, n_l]."""
    top, bottom = gram_pair(upper, lower)
    q = top / _per_member(lr_upper, top) - bottom / _per_member(lr_lower, top)
    if lower_bias is not None:
        lr_b = lr_lower if lr_bias is None else lr_bias
        q = q - lower_bias.unsqueeze(-1) * lower_bias.unsqueeze(-2) / _per_member(lr_b, top)
    return q


def conserved_scale(upper: Tensor, lower: Tensor, lr_upper: Tensor | float, lr_lower: Tensor | float,
                    lower_bias: Tensor | None = None, lr_bias: Tensor | float | None = None) -> Tensor:
    """``max(||W_{l+1}ᵀW_{l+1}||/η_{l+1}, ||W_lW_lᵀ(+bbᵀ)||/η_l)`` (Frobenius): the unit of Q's drift, [E]."""
    top, bottom = gram_pair(upper, lower)
    bottom = bottom / _per_member(lr_lower, top)
    if lower_bias is not None:
        lr_b = lr_lower if lr_bias is None else lr_bias
        bottom = bottom + lower_bias.unsqueeze(-1) * lower_bias.unsqueeze(-2) / _per_member(lr_b, top)
    top = top / _per_member(lr_upper, top)
    return torch.maximum(torch.linalg.matrix_norm(top), torch.linalg.matrix_norm(bottom))


def relative_imbalance(upper: Tensor, lower: Tensor, lr_upper: Tensor | float, lr_lower: Tensor | float) -> Tensor:
    """``||Q|| / (||W_{l+1}ᵀW_{l+1}/η_{l+1}|| + ||W_lW_lᵀ/η_l||)`` ∈ [0, 1]; 0 = balanced. [E]."""
    top, bottom = gram_pair(upper, lower)
    top = top / _per_member(lr_upper, top)
    bottom = bottom / _per_member(lr_lower, top)
    num = torch.linalg.matrix_norm(top - bottom)
    return num / (torch.linalg.matrix_norm(top) + torch.linalg.matrix_norm(bottom))


def lr_gamma_factor(gamma: float | Tensor, depth: int) -> float | Tensor:
    """Atanasov et al.'s learning-rate rescaling g(γ): γ² for γ ≤ 1, γ^{2/L} for γ > 1 (L = depth)."""
    g = torch.as_tensor(gamma, dtype=torch.float64)
    out = torch.where(g <= 1, g**2, g ** (2.0 / depth))
    return float(out) if out.dim() == 0 else out
