"""The authors' per-configuration training step, re-typed: what `fit_nn_gd` in Kunin et al.'s code
(getrichquick, two-layer-relu/utils.py) does each step — a loss every `every` steps, a checkpoint
membership test, σ' by masked assignment into a transposed view, np.outer, lr/n scaling. The benchmarks'
lean NumPy loop does the same arithmetic with fewer passes; both are reported."""
from __future__ import annotations

from typing import Callable

import numpy as np


def authors_step(x: np.ndarray, y: np.ndarray, h: int, lr: float = 1e-3, every: int = 100) -> Callable[[], None]:
    """A closure doing one step of the authors' loop on f = a·relu(Wx), loss mean (f − y)²."""
    n, d = x.shape
    rng = np.random.default_rng(0)
    w, a = rng.standard_normal((h, d)) / np.sqrt(d), rng.standard_normal(h) / np.sqrt(h)
    saved, it = (0, 10, 100, 1_000, 10_000, 100_000, 1_000_000), [0]

    def relu_grad(z: np.ndarray) -> np.ndarray:  # in place, as theirs
        z[z >= 0] = 1
        z[z < 0] = 0
        return z

    def step() -> None:
        if it[0] % every == 0:
            np.mean((np.maximum(x @ w.T, 0) @ a - y) ** 2)
        if it[0] in saved:
            (w.copy(), a.copy())
        lin = x @ w.T
        act = np.maximum(lin, 0)
        res = 2 * (y - act @ a)
        grad_a = -act.T @ res
        grad_w = -(np.outer(a, res) * relu_grad(lin.T)) @ x
        w[:] -= lr / n * grad_w
        a[:] -= lr / n * grad_a
        it[0] += 1
    return step
