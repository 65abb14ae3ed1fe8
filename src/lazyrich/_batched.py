"""Batched matmul whose per-member result does not depend on the ensemble size.

CPU kernels pick different code paths for a batch of one (e.g. gemv for a 1-column output) than for
a batch of several, which changes rounding. Every batch of ≥ 2 is computed per member identically
(checked for many shapes), so a batch of one is padded to two: member e of an ensemble then equals
the same configuration run alone, bitwise.
"""
from __future__ import annotations

import torch
from torch import Tensor


def bmm(a: Tensor, b: Tensor) -> Tensor:
    """a: [E, m, k], b: [E, k, n] (either may be an expanded view) -> [E, m, n]."""
    if a.shape[0] == 1 and a.device.type == "cpu":
        return torch.bmm(a.expand(2, *a.shape[1:]), b.expand(2, *b.shape[1:]))[:1]
    return torch.bmm(a, b)
