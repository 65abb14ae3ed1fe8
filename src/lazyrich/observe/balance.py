"""Balance instruments: learning-rate-scaled singular values of consecutive layers side by side, their
gap, and the inter-layer alignment ζ.

A balanced pair (Q_l = W_{l+1}ᵀW_{l+1}/η_{l+1} − W_lW_lᵀ/η_l = 0) has equal nonzero singular values of
W_l/√η_l and W_{l+1}/√η_{l+1} and aligned singular spaces (the left singular vectors of W_l are the
right singular vectors of W_{l+1}). ζ_k = ‖U_kᵀV_k‖_F/√k measures that alignment for the top-k spaces
(U_k: top-k left singular vectors of W_l; V_k: top-k right singular vectors of W_{l+1}); it is
1 when the spaces coincide and ≈ √(k/n_l) for random layers. When W_l is a column (fan_in 1) and
W_{l+1} a row (fan_out 1), ζ is the signed cos∠(u, w) of Xu & Ziyin's 1-D model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from torch import Tensor

from ..errors import require
from .base import Observation, State, register
from .shared import member_column


def scaled_singular_values(w: Tensor, lr: Tensor | float) -> Tensor:
    """Singular values of W/√η, descending, [E, min(fan_out, fan_in)]."""
    return torch.linalg.svdvals(w) / member_column(torch.as_tensor(lr, dtype=w.dtype), w[..., 0]) ** 0.5


def singular_value_gap(s_lower: Tensor, s_upper: Tensor) -> Tensor:
    """max_i |s_i(W_l/√η_l) − s_i(W_{l+1}/√η_{l+1})| over the common ranks, ÷ the largest value; [E].
    0 for a balanced pair (Q_l = 0)."""
    r = min(s_lower.shape[-1], s_upper.shape[-1])
    gap = (s_lower[..., :r] - s_upper[..., :r]).abs().amax(-1)
    return gap / torch.maximum(s_lower[..., 0], s_upper[..., 0])


def zeta(lower: Tensor, upper: Tensor, k: int = 1) -> Tensor:
    """Inter-layer alignment of W_l ([E, n_l, n_{l−1}]) and W_{l+1} ([E, n_{l+1}, n_l]), [E].

    Vectors (fan_in of W_l and fan_out of W_{l+1} both 1): signed cos∠(w, u). Otherwise
    ‖U_kᵀ V_k‖_F/√k ∈ [0, 1] with k clipped to both ranks' dimensions."""
    require(k >= 1, f"k={k} must be a positive number of singular directions")
    require(lower.shape[-2] == upper.shape[-1], f"layers do not chain: W_l has {lower.shape[-2]} outputs, "
                                                 f"W_l+1 has {upper.shape[-1]} inputs")
    if lower.shape[-1] == 1 and upper.shape[-2] == 1:
        w, u = lower[..., 0], upper[..., 0, :]
        return (w * u).sum(-1) / (w.norm(dim=-1) * u.norm(dim=-1))
    k = min(k, *lower.shape[-2:], *upper.shape[-2:])
    u_low = torch.linalg.svd(lower, full_matrices=False)[0][..., :k]  # left singular vectors of W_l
    v_up = torch.linalg.svd(upper, full_matrices=False)[2][..., :k, :].transpose(-1, -2)  # right of W_{l+1}
    return torch.linalg.matrix_norm(u_low.transpose(-1, -2) @ v_up) / k**0.5


@register("balance")
@dataclass
class Balance:
    """Per weight "W{l}": `scaled_singular_values` of W_l/√η_l ([E, min dims]; side by side in the table).
    Per pair "W{l}-W{l+1}": `singular_value_gap` and `zeta` (top-`k` singular spaces; signed cos∠ in
    the 1-D model). The per-neuron δ_k distribution is the `conserved` observer's `delta_k`."""

    name: str = "balance"
    k: int = 1

    def __call__(self, s: State) -> Iterator[Observation]:
        p, lr, names = s.params, s.ens.lr, s.ens.net.names
        svals = [scaled_singular_values(p[n], lr[n]) for n in names]
        for n, sv in zip(names, svals):
            yield Observation("scaled_singular_values", n, sv)
        for l in range(1, len(names)):
            pair = f"W{l}-W{l + 1}"
            yield Observation("singular_value_gap", pair, singular_value_gap(svals[l - 1], svals[l]))
            yield Observation("zeta", pair, zeta(p[f"W{l}"], p[f"W{l + 1}"], self.k))
