"""Features at convergence (FACT, Boix-Adserà, Mallinar, Simon & Belkin) and the neural feature ansatz.

With weight decay κ on W_l (loss L + κ/2 ‖W_l‖²; z_l = m_l W_l h_{l−1}), a critical point has
∇_{W_l}L + κ W_l = 0; left-multiplying by W_lᵀ gives

    W_lᵀW_l = FACT_l := −W_lᵀ ∇_{W_l}L / κ = −(1/(nκ)) Σ_i (∇_{h_{l−1}} ℓ_i) h_{l−1,i}ᵀ,

so the FACT residual ‖WᵀW − FACT‖_F/‖WᵀW‖_F vanishes at convergence (it is ‖Wᵀ(∇L + κW)‖/(κ‖WᵀW‖)).
The neural feature ansatz instead posits W_lᵀW_l ∝ AGOP_l^s with the average gradient outer product
AGOP_l = (1/n) Σ_i Σ_a ∇_{h_{l−1}} f_a(x_i) ∇_{h_{l−1}} f_a(x_i)ᵀ (for l = 1 the input gradient).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Mapping

import torch
from torch import Tensor

from ..models.mlp import MLP, Params
from .base import Observation, State, register
from .kernel import output_gradients
from .shared import gradients, member_column


def fact_matrix(w: Tensor, grad: Tensor, kappa: Tensor | float) -> Tensor:
    """FACT = −Wᵀ ∇_W L / κ, [E, fan_in, fan_in] (NaN where κ = 0: FACT needs weight decay)."""
    kappa = torch.as_tensor(kappa, dtype=w.dtype, device=w.device)
    kappa = torch.where(kappa == 0, torch.full_like(kappa, float("nan")), kappa)
    return -(w.transpose(-1, -2) @ grad) / member_column(kappa, w)


def matrix_correlation(a: Tensor, b: Tensor, centered: bool = True) -> Tensor:
    """Pearson correlation of the entries of two matrices (`centered`), or their cosine ⟨A, B⟩_F/(‖A‖‖B‖)."""
    a, b = a.flatten(-2), b.flatten(-2)
    if centered:
        a, b = a - a.mean(-1, keepdim=True), b - b.mean(-1, keepdim=True)
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))


def fact_residual(w: Tensor, fact: Tensor) -> Tensor:
    """‖WᵀW − FACT‖_F / ‖WᵀW‖_F, [E]."""
    gram = w.transpose(-1, -2) @ w
    return torch.linalg.matrix_norm(gram - fact) / torch.linalg.matrix_norm(gram)


def agop(net: MLP, params: Params, x: Tensor, multipliers: Mapping[str, Tensor | float] | None = None
         ) -> list[Tensor]:
    """AGOP_l for l = 1..L, each [E, n_{l−1}, n_{l−1}]: (1/n) Σ_i J_iᵀJ_i with J_i = ∂f(x_i)/∂h_{l−1}."""
    mult = multipliers or {}
    grads, _ = output_gradients(net, params, x, mult)
    n = x.shape[-2]
    out = []
    for l in range(1, net.depth + 1):
        w = params[f"W{l}"] * member_column(mult.get(f"W{l}", 1.0), params[f"W{l}"])
        if l == net.depth:  # ∂f/∂h_{L−1} = m_L W_L for every sample
            out.append(w.transpose(-1, -2) @ w)
            continue
        g = grads[l - 1]  # [E, n, c, n_l]
        j = torch.bmm(g.reshape(g.shape[0], -1, g.shape[-1]), w)  # [E, n·c, n_{l−1}]
        out.append(j.transpose(-1, -2) @ j / n)
    return out


def psd_power(m: Tensor, power: float) -> Tensor:
    """M^power of symmetric PSD matrices (negative round-off eigenvalues clipped to 0)."""
    ev, vec = torch.linalg.eigh(m)
    return (vec * ev.clamp(min=0).pow(power).unsqueeze(-2)) @ vec.transpose(-1, -2)


@register("fact")
@dataclass
class Fact:
    """Per weight "W{l}" with weight decay κ_l > 0 (NaN where κ_l = 0): `fact_residual`
    ‖WᵀW − FACT‖/‖WᵀW‖ (→ 0 at convergence), `fact_asymmetry` ‖FACT − FACTᵀ‖/‖FACT‖ and
    `fact_correlation` (Pearson correlation of the entries of WᵀW and FACT)."""

    name: str = "fact"

    def __call__(self, s: State) -> Iterator[Observation]:
        g = gradients(s)
        for name in s.ens.net.names:
            w = s.params[name]
            f = fact_matrix(w, g[name], s.ens.weight_decay[name])
            yield Observation("fact_residual", name, fact_residual(w, f))
            yield Observation("fact_asymmetry", name, torch.linalg.matrix_norm(f - f.transpose(-1, -2))
                              / torch.linalg.matrix_norm(f))
            yield Observation("fact_correlation", name, matrix_correlation(w.transpose(-1, -2) @ w, f))


@register("agop")
@dataclass
class Agop:
    """Per weight "W{l}": `agop_correlation` = Pearson correlation of the entries of W_lᵀW_l and
    AGOP_l^`power` on the training inputs (neural feature ansatz W_lᵀW_l ∝ AGOP_l^s; s = 1 is the
    original statement, s = ½ the form FACT is compared against). The readout is left out: there
    AGOP_L = m_L² W_LᵀW_L identically."""

    name: str = "agop"
    power: float = 0.5

    def __call__(self, s: State) -> Iterator[Observation]:
        mats = agop(s.ens.net, s.params, s.data.x, s.ens.multipliers)
        for name, m in zip(s.ens.net.names[:-1], mats):
            w = s.params[name]
            target = m if self.power == 1 else psd_power(m, self.power)
            yield Observation("agop_correlation", name, matrix_correlation(w.transpose(-1, -2) @ w, target))
