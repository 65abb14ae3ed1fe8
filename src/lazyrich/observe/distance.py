"""How far a network moved from init: activation-pattern Hamming distance, parameter distance and the
relative weight change (Frobenius and spectral). Large Hamming change with small parameter movement is
Kunin et al.'s "rich quick" signature (upstream init); large movement with few flips is delayed rich."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from torch import Tensor

from ..models.mlp import Params
from .base import Observation, State, register
from .shared import current_preactivations, init_preactivations


def gate_flips(z0: Tensor, z: Tensor) -> Tensor:
    """1 where the gate 1[z > 0] differs between init and now (the ReLU derivative's convention), else 0."""
    return ((z0 > 0) != (z > 0)).to(z.dtype)


def hamming_distance(z0: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
    """(fraction of flipped gates ∈ [0, 1], Kunin's H = Σ_k mean_i flips ∈ [0, n_l]) of preactivations
    [E, n, n_l] at init and now."""
    flips = gate_flips(z0, z)
    per_neuron = flips.mean(-2)  # mean over samples
    return per_neuron.mean(-1), per_neuron.sum(-1)


def param_distance(params0: Params, params: Params) -> Tensor:
    """sqrt(Σ_p ‖θ_p − θ_p⁰‖²) over every tensor, [E] (Kunin et al.'s parameter distance)."""
    sq = [(params[k] - params0[k]).pow(2).flatten(1).sum(1) for k in params0]
    return torch.stack(sq).sum(0).sqrt()


def relative_change(w0: Tensor, w: Tensor, ord: str | int = "fro") -> Tensor:
    """‖W − W⁰‖ / ‖W⁰‖ in the Frobenius (`"fro"`) or spectral (`2`) norm, [E] (inf where W⁰ = 0)."""
    return torch.linalg.matrix_norm(w - w0, ord=ord) / torch.linalg.matrix_norm(w0, ord=ord)


@register("hamming")
@dataclass
class Hamming:
    """Per hidden layer "W{l}": `hamming` = fraction of (sample, neuron) gates 1[z > 0] flipped since init,
    `hamming_neurons` = Σ_k mean_i flips (Kunin et al.'s H, in [0, n_l]). Any activation: the gate is the
    sign pattern of the preactivation (for ReLU, the activation pattern)."""

    name: str = "hamming"

    def __call__(self, s: State) -> Iterator[Observation]:
        z0s, zs = init_preactivations(s), current_preactivations(s)
        for l in range(1, s.ens.net.depth):
            frac, total = hamming_distance(z0s[l - 1], zs[l - 1])
            yield Observation("hamming", f"W{l}", frac)
            yield Observation("hamming_neurons", f"W{l}", total)


@register("param_distance")
@dataclass
class ParamDistance:
    """`param_distance` = sqrt(Σ_p ‖θ_p − θ_p⁰‖²) over all tensors (weights and biases)."""

    name: str = "param_distance"

    def __call__(self, s: State) -> Iterator[Observation]:
        yield Observation("param_distance", "", param_distance(s.params0, s.params))


@register("weight_change")
@dataclass
class WeightChange:
    """Per weight "W{l}": `weight_change_fro` = ‖W−W⁰‖_F/‖W⁰‖_F and `weight_change_spectral` =
    ‖W−W⁰‖₂/‖W⁰‖₂ (Yang et al. Fig. 2 B, D: under μP the spectral change is Θ(1) in width while the
    Frobenius change decays like n^{-1/2})."""

    name: str = "weight_change"

    def __call__(self, s: State) -> Iterator[Observation]:
        for name in s.ens.net.names:
            w0, w = s.params0[name], s.params[name]
            yield Observation("weight_change_fro", name, relative_change(w0, w, "fro"))
            yield Observation("weight_change_spectral", name, relative_change(w0, w, 2))
