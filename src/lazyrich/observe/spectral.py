"""Instruments of the spectral condition for feature learning (Yang, Simon & Bernstein, arXiv 2310.17813).

Notation of the paper: h_ℓ = W_ℓ h'_{ℓ−1} (preactivation), h'_ℓ = φ(h_ℓ). Here z_l = m_l W_l h_{l−1} + b_l,
so the paper's W_ℓ is the effective weight m_l·W_l and h'_{ℓ−1} is our layer input h_{l−1}.

* Condition 1: ‖W_l‖₂ = Θ(√(n_l/n_{l−1})) and ‖ΔW_l‖₂ = Θ(√(n_l/n_{l−1})) (the `*_ratio` observables
  divide by √(fan_out/fan_in); `scaling_exponent` fits their width slope, which should be 0).
* eq. 23 feature change E_x ‖z_l − z_l⁰‖/‖z_l⁰‖; eq. 24 final-layer alignment
  E_x ‖W_L h_{L−1}‖/(‖W_L‖₂‖h_{L−1}‖); eq. 25 update alignment E_x ‖ΔW_l h_{l−1}‖/(‖ΔW_l‖₂‖h_{l−1}‖).
* stable rank srnk(M) = ‖M‖_F²/‖M‖₂².
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from ..ensemble import Ensemble
from ..errors import require
from ..models.activations import activation
from ..models.mlp import Params, preactivations
from .base import Data, Observation, State, register
from .shared import (current_preactivations, effective_weight, gd_update, init_preactivations, layer_inputs,
                     member_column)


def spectral_norm(m: Tensor) -> Tensor:
    """‖M‖₂ (largest singular value) of [..., a, b]."""
    return torch.linalg.matrix_norm(m, ord=2)


def stable_rank(m: Tensor) -> Tensor:
    """srnk(M) = ‖M‖_F² / ‖M‖₂² ∈ [1, rank M] (NaN for M = 0)."""
    s = torch.linalg.svdvals(m)
    return s.pow(2).sum(-1) / s[..., 0].pow(2)


def input_alignment(m: Tensor, h: Tensor) -> Tensor:
    """E_x ‖M h(x)‖ / (‖M‖₂ ‖h(x)‖) over the samples of h ([E, n, fan_in] or shared [n, fan_in]), [E].
    Samples with h = 0 (e.g. dead ReLU layers) are left out of the mean."""
    mh = torch.einsum("eoi,ni->eno", m, h) if h.dim() == 2 else h @ m.transpose(-1, -2)
    hn = h.norm(dim=-1)
    hn = hn.expand(mh.shape[:-1]) if hn.dim() == 1 else hn
    ratio = mh.norm(dim=-1) / (spectral_norm(m).unsqueeze(-1) * hn)
    return torch.where(hn > 0, ratio, torch.full_like(ratio, float("nan"))).nanmean(-1)


def feature_change(z0: Tensor, z: Tensor) -> Tensor:
    """E_x ‖z(x) − z⁰(x)‖ / ‖z⁰(x)‖ for preactivations [E, n, n_l] (eq. 23), [E]; samples with z⁰ = 0
    (a dead layer below) are left out of the mean."""
    base = z0.norm(dim=-1)
    ratio = (z - z0).norm(dim=-1) / base
    return torch.where(base > 0, ratio, torch.full_like(ratio, float("nan"))).nanmean(-1)


def spectral_scale(fan_in: int, fan_out: int) -> float:
    """√(fan_out / fan_in): the spectral norm Condition 1 asks of W and of ΔW."""
    return math.sqrt(fan_out / fan_in)


def scaling_exponent(widths: Sequence[float], values: Sequence[float] | np.ndarray) -> float:
    """Least-squares slope of log(value) against log(width): a quantity ∝ width^slope."""
    w, v = np.log(np.asarray(widths, dtype=float)), np.log(np.asarray(values, dtype=float))
    require(w.size >= 2 and w.size == v.size, "scaling_exponent needs ≥ 2 widths and one value per width")
    return float(np.polyfit(w, v, 1)[0])


@register("spectral")
@dataclass
class Spectral:
    """Per weight "W{l}" (effective weight m_l·W_l): `spectral_norm` ‖W‖₂, `delta_spectral_norm` ‖W − W⁰‖₂
    (cumulative), `update_spectral_norm` ‖ΔW‖₂ of the next full-batch GD step −η(∇L + κW) (the
    per-step update; exact for `gd` at schedule factor 1), `stable_rank` of W and `update_stable_rank`
    of ΔW, and each norm ÷ √(fan_out/fan_in) as `spectral_ratio`, `delta_spectral_ratio`,
    `update_spectral_ratio` (Condition 1: Θ(1) in width)."""

    name: str = "spectral"

    def __call__(self, s: State) -> Iterator[Observation]:
        widths = s.ens.net.widths
        for l, name in enumerate(s.ens.net.names, start=1):
            w, w0 = effective_weight(s, l), effective_weight(s, l, s.params0)
            dw = gd_update(s, name) * member_column(s.ens.multipliers.get(name, 1.0), w)
            scale = spectral_scale(widths[l - 1], widths[l])
            norm, delta, step = spectral_norm(w), spectral_norm(w - w0), spectral_norm(dw)
            yield Observation("spectral_norm", name, norm)
            yield Observation("delta_spectral_norm", name, delta)
            yield Observation("update_spectral_norm", name, step)
            yield Observation("stable_rank", name, stable_rank(w))
            yield Observation("update_stable_rank", name, stable_rank(dw))
            yield Observation("spectral_ratio", name, norm / scale)
            yield Observation("delta_spectral_ratio", name, delta / scale)
            yield Observation("update_spectral_ratio", name, step / scale)


@register("alignment")
@dataclass
class Alignment:
    """Per weight "W{l}" on the training inputs: `weight_alignment` E_x ‖W h‖/(‖W‖₂‖h‖) (eq. 24; the
    final layer W_L is the paper's final-layer alignment, Θ(n^{-1/2}) at init, Θ(1) when rich) and
    `update_alignment` of the next full-batch GD step ΔW (eq. 25)."""

    name: str = "alignment"

    def __call__(self, s: State) -> Iterator[Observation]:
        hs = layer_inputs(s)
        for l, name in enumerate(s.ens.net.names, start=1):
            yield Observation("weight_alignment", name, input_alignment(s.params[name], hs[l - 1]))
            yield Observation("update_alignment", name, input_alignment(gd_update(s, name), hs[l - 1]))


@register("feature_change")
@dataclass
class FeatureChange:
    """Per hidden layer "W{l}": `feature_change` E_x ‖z_l − z_l⁰‖/‖z_l⁰‖ on the training inputs (eq. 23;
    Θ(1) in width under μP, ∝ n^{-1/2} under NTP)."""

    name: str = "feature_change"

    def __call__(self, s: State) -> Iterator[Observation]:
        z0s, zs = init_preactivations(s), current_preactivations(s)
        for l in range(1, s.ens.net.depth):
            yield Observation("feature_change", f"W{l}", feature_change(z0s[l - 1], zs[l - 1]))


def update_structure(ens: Ensemble, params: Params, data: Data, batch_sizes: Sequence[int], layer: int = 2,
                     trials: int = 1, seed: int = 0) -> pd.DataFrame:
    """Spectral paper Fig. 1: stable rank of a one-step gradient update ΔW_layer on a random batch of
    size B and its alignment with the batch's layer inputs (eq. 25), per member, B and trial.

    Returns columns member, batch_size, trial, update_stable_rank, update_alignment. A batch of one
    gives a rank-one update: stable rank 1 and alignment 1 exactly."""
    from ..dynamics.train import loss_and_grads  # lazy: dynamics imports observe
    net = ens.net
    require(1 <= layer <= net.depth, f"layer={layer} must be in 1..{net.depth}")
    n = data.x.shape[-2]
    require(all(1 <= int(b) <= n for b in batch_sizes), f"batch sizes must lie in 1..{n} (the training set size)")
    gen = torch.Generator().manual_seed(int(seed))
    act = activation(net.activation)
    active = torch.ones(ens.size, dtype=torch.bool, device=data.x.device)
    rows = []
    for b in batch_sizes:
        for t in range(trials):
            idx = torch.randperm(n, generator=gen)[: int(b)].to(data.x.device)
            x, y = data.x.index_select(-2, idx), data.y.index_select(-2, idx)
            _, grads = loss_and_grads(ens, params, x, y, active)
            dw = grads[f"W{layer}"]
            h = x if layer == 1 else act(preactivations(net, params, x, ens.multipliers)[layer - 2])
            sr, al = stable_rank(dw), input_alignment(dw, h)
            for e in range(ens.size):
                rows.append((e, int(b), t, float(sr[e]), float(al[e])))
    return pd.DataFrame(rows, columns=["member", "batch_size", "trial", "update_stable_rank", "update_alignment"])
