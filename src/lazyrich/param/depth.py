"""Depth parametrizations: residual branches x ← x + m_L^(−α)·F(x) and the corrections they need.

m_L = L/L₀ is the number of residual blocks over the base's (L₀ = 1 without a base: the papers' raw
L^(−α)). α = ½ is depth-μP (Yang et al., Tensor Programs VI; Bordelon et al. 2023), α = 1 CompleteP
(Dey et al. 2025), α = 0 no depth scaling. The rule for every α: each block's contribution to the
residual stream's update is Θ(1/L), so the total update is Θ(1) at every depth. Tensors inside the
blocks (matrices, biases, norm gains) take the learning-rate factor below; the embedding, the final
norm and the readout take none. Sources and constants: docs/param.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import require

DEPTH_SCHEMES: dict[str, float] = {"none": 0.0, "depth-mup": 0.5, "completep": 1.0}


def alpha_of(depth: str | float | None) -> float:
    """α from a depth scheme name ("depth-mup", "completep", "none") or a number in [0, 1]."""
    if depth is None:
        return 0.0
    if isinstance(depth, str):
        require(depth in DEPTH_SCHEMES, f"unknown depth scheme {depth!r}: choose one of {', '.join(DEPTH_SCHEMES)} or a number α in [0, 1]")
        return DEPTH_SCHEMES[depth]
    a = float(depth)
    require(math.isfinite(a) and 0.0 <= a <= 1.0, f"depth α={depth} must lie in [0, 1] (½: depth-μP, 1: CompleteP)")
    return a


@dataclass(frozen=True)
class DepthExponents:
    """Exponents of m_L in each in-block hyperparameter (value = m_L^exponent)."""

    branch: float  # forward multiplier of each residual branch's output
    lr: float  # learning rate of every tensor inside a block
    wd: float  # weight decay (decoupled, AdamW-style) inside a block
    eps: float  # Adam ε inside a block (gradients there scale like the branch multiplier)
    init: float  # init std inside a block


def exponents(alpha: float, optimizer: str) -> DepthExponents:
    """The depth exponents of `alpha` for `optimizer` ∈ {sgd, adam, muon}.

    SGD: a branch weight's gradient carries m_L^(−α), its update η·m_L^(−α), its effect on the stream
    m_L^(−2α)·η, so Θ(1/L) needs η ∝ m_L^(2α−1) (α = ½: constant, TP VI). Adam and Muon normalize the
    gradient: the update is η, its effect m_L^(−α)·η, so η ∝ m_L^(α−1) (CompleteP Table 1; TP VI's
    η/√L for Adam at α = ½). ε follows the gradient (m_L^(−α), CompleteP eq. 40 / authors' code);
    weight decay and init carry no depth factor (CompleteP code: λ·m_N only)."""
    require(optimizer in ("sgd", "adam", "muon"), f"unknown optimizer family {optimizer!r}: choose sgd, adam or muon")
    lr = 2 * alpha - 1 if optimizer == "sgd" else alpha - 1
    return DepthExponents(branch=-alpha, lr=lr, wd=0.0, eps=-alpha if optimizer == "adam" else 0.0, init=0.0)


@dataclass(frozen=True)
class DepthFactors:
    """Multiplicative factors at depth ratio m_L (what `parametrize` applies)."""

    alpha: float
    ratio: float
    branch: float
    lr: float
    wd: float
    eps: float
    init: float


def factors(alpha: float, optimizer: str, blocks: int, base_blocks: int = 1) -> DepthFactors:
    """Factors m_L^exponent for `blocks` residual blocks against a base with `base_blocks`."""
    require(blocks >= 1 and base_blocks >= 1, f"block counts must be positive; got {blocks} (base {base_blocks})")
    e = exponents(alpha, optimizer)
    r = blocks / base_blocks
    return DepthFactors(alpha, r, r**e.branch, r**e.lr, r**e.wd, r**e.eps, r**e.init)


def depth_table(optimizer: str = "adam") -> list[dict[str, float | str]]:
    """One row per named depth scheme: α and the m_L exponents (branch, lr, wd, eps, init)."""
    return [{"depth": name, "alpha": a, **exponents(a, optimizer).__dict__} for name, a in DEPTH_SCHEMES.items()]
