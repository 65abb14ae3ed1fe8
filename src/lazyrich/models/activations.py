"""Elementwise activations by name; `homogeneous` ones (σ(z) = σ'(z) z) conserve per-neuron δ_k."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ..errors import require

LEAKY_SLOPE = 0.1

_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "linear": lambda z: z,
    "relu": torch.relu,
    "leaky_relu": lambda z: torch.nn.functional.leaky_relu(z, LEAKY_SLOPE),
    "tanh": torch.tanh,
    "gelu": torch.nn.functional.gelu,
    "quadratic": lambda z: z * z,
}
_DERIVATIVES: dict[str, Callable[[Tensor], Tensor]] = {
    "linear": torch.ones_like,
    "relu": lambda z: (z > 0).to(z.dtype),
    "leaky_relu": lambda z: torch.where(z > 0, torch.ones_like(z), torch.full_like(z, LEAKY_SLOPE)),
    "tanh": lambda z: 1 - torch.tanh(z) ** 2,
    "gelu": lambda z: 0.5 * (1 + torch.erf(z / 2**0.5)) + z * torch.exp(-0.5 * z * z) / (2 * torch.pi) ** 0.5,
    "quadratic": lambda z: 2 * z,
}
HOMOGENEOUS = frozenset({"linear", "relu", "leaky_relu"})
NAMES = tuple(_ACTIVATIONS)


def check(name: str) -> str:
    require(name in _ACTIVATIONS, f"unknown activation {name!r}: choose one of {', '.join(NAMES)}")
    return name


def activation(name: str) -> Callable[[Tensor], Tensor]:
    return _ACTIVATIONS[check(name)]


def derivative(name: str) -> Callable[[Tensor], Tensor]:
    """σ' (used by analytic kernels and the fused GPU step; autograd does not need it)."""
    return _DERIVATIVES[check(name)]
