"""The depth factors (lazyrich.param.depth) keep the residual stream's first update Θ(1) in depth.

Independent of the nn.Module machinery: a residual tanh chain h ← h + m·W tanh(h) written out in
float64, one step of SGD, Adam (its first step is η·sign(g) as ε → 0) or Muon (η·polar(g)), with
each scheme's branch multiplier and lr factor from `factors`. The RMS change of the output stream
must have a log-log depth slope near 0 over L = 4…64 for α = ½ and α = 1, and grow for α = 0."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lazyrich.param.depth import factors

N, DEPTHS = 48, (4, 8, 16, 32, 64)


def _step(g: torch.Tensor, optimizer: str) -> torch.Tensor:
    if optimizer == "sgd":
        return g
    if optimizer == "adam":
        return torch.sign(g) / N  # μP Adam hidden lr 1/fan_in
    u, _, vh = torch.linalg.svd(g)
    return u @ vh  # Muon: orthogonalized, μP lr sqrt(fan_out/fan_in) = 1


def stream_update(alpha: float, optimizer: str, L: int, seed: int = 0, lr: float = 0.5) -> float:
    gen = torch.Generator().manual_seed(seed)
    f = factors(alpha, optimizer, L)
    x = torch.randn(N, generator=gen, dtype=torch.float64)
    u = torch.randn(N, generator=gen, dtype=torch.float64) / N  # μP readout
    ws = [(torch.randn(N, N, generator=gen, dtype=torch.float64) / math.sqrt(N)).requires_grad_() for _ in range(L)]

    def forward(mats: list[torch.Tensor]) -> torch.Tensor:
        h = x
        for w in mats:
            h = h + f.branch * (w @ torch.tanh(h))
        return h

    y = forward(ws)
    grads = torch.autograd.grad(u @ y, ws)
    with torch.no_grad():
        new = [w - lr * f.lr * _step(g, optimizer) for w, g in zip(ws, grads)]
        return float((forward(new) - y).pow(2).mean().sqrt())


def slope(alpha: float, optimizer: str) -> float:
    sizes = [np.mean([stream_update(alpha, optimizer, L, s) for s in range(3)]) for L in DEPTHS]
    return float(np.polyfit(np.log(DEPTHS), np.log(sizes), 1)[0])


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "muon"])
def test_depth_schemes_keep_the_stream_update_flat(optimizer):
    for alpha in (0.5, 1.0):
        assert abs(slope(alpha, optimizer)) < 0.15, (alpha, optimizer)
    assert slope(0.0, optimizer) > 0.4  # no depth scheme: the update grows with depth
