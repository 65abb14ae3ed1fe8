"""Synthetic tasks as `Data` (float64 by default): teacher-student ReLU (Kunin et al. Fig. 1),
linear regression with whitened or low-rank inputs."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import require
from ..observe.base import Data


def sphere(n: int, d: int, gen: torch.Generator, dtype: torch.dtype = torch.float64) -> Tensor:
    """n points uniform on the unit sphere S^{d-1}."""
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    return (x / x.norm(dim=1, keepdim=True)).to(dtype)


def teacher_student(d: int = 100, k: int = 3, n: int = 1000, n_test: int = 10_000, seed: int = 0,
                    dtype: torch.dtype = torch.float64) -> Data:
    """Kunin et al. Fig. 1 task: teacher f*(x) = Σ_j a_j relu(w_j·x), w_j ~ Unif(S^{d-1}), a_j = ±1;
    inputs uniform on the sphere; noiseless targets. Returns x [n, d], y [n, 1] (+ test set)."""
    require(d > 0 and k > 0 and n > 0, f"teacher_student needs positive d, k, n; got d={d}, k={k}, n={n}")
    gen = torch.Generator().manual_seed(int(seed))
    w = sphere(k, d, gen)
    a = torch.sign(torch.randn(k, generator=gen, dtype=torch.float64))
    a[a == 0] = 1
    x, x_test = sphere(n, d, gen), sphere(n_test, d, gen)
    f = lambda z: (torch.relu(z @ w.T) @ a).unsqueeze(-1)  # noqa: E731
    return Data(x.to(dtype), f(x).to(dtype), x_test.to(dtype), f(x_test).to(dtype))


def whitened_regression(d: int, c: int = 1, n: int | None = None, seed: int = 0, rank: int | None = None,
                        noise: float = 0.0, dtype: torch.dtype = torch.float64) -> Data:
    """Linear regression y = B* x (+ noise) with inputs whitened exactly: (1/n) XᵀX = I_d (n ≥ d), or
    of `rank` < d (low-rank X, then (1/n) XᵀX is a projector). B* ~ N(0, 1/d)."""
    n = n or max(2 * d, d + 1)
    r = rank or d
    require(r <= min(n, d), f"rank {r} must be ≤ min(n, d) = {min(n, d)}")
    gen = torch.Generator().manual_seed(int(seed))
    u, _ = torch.linalg.qr(torch.randn(n, r, generator=gen, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(d, r, generator=gen, dtype=torch.float64))
    x = math.sqrt(n) * u @ v.T  # (1/n) XᵀX = V Vᵀ
    b = torch.randn(c, d, generator=gen, dtype=torch.float64) / math.sqrt(d)
    y = x @ b.T + noise * torch.randn(n, c, generator=gen, dtype=torch.float64)
    return Data(x.to(dtype), y.to(dtype))
