"""Core observables: train/test loss and the conserved quantities of every consecutive layer pair."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch

from .._batched import bmm
from ..conventions import conserved, conserved_scale, mse
from ..ensemble import predict
from .base import Observation, State, register


@register("loss")
@dataclass
class Loss:
    """`loss` (train) and `test_loss` (when test data exist), in the ensemble's loss normalisation."""

    name: str = "loss"

    def __call__(self, s: State) -> Iterator[Observation]:
        ens = s.ens
        train = s.cache.get("loss")
        if train is None:
            train = mse(predict(ens, ens.params, s.data.x), s.data.y, ens.loss_scale)
        yield Observation("loss", "", train)
        if s.data.x_test is not None:
            pred = predict(ens, ens.params, s.data.x_test)
            yield Observation("test_loss", "", mse(pred, s.data.y_test, ens.loss_scale))


def pair_conserved(s: State, l: int, params=None) -> torch.Tensor:
    """Q_l of the ensemble (bias of layer l included, with its own learning rate)."""
    ens, p = s.ens, params if params is not None else s.params
    b = p.get(f"b{l}")
    return conserved(p[f"W{l + 1}"], p[f"W{l}"], ens.lr[f"W{l + 1}"], ens.lr[f"W{l}"], b,
                     ens.lr.get(f"b{l}") if b is not None else None)


@register("conserved")
@dataclass
class Conserved:
    """Per pair l ("W{l}-W{l+1}"): `delta_k` = diag Q (one value per neuron), `conserved_norm` = ||Q||_F,
    `relative_imbalance` = ||Q|| / (||upper||+||lower||), `conserved_drift` = ||Q − Q0|| / scale and
    `delta_drift` = max_k |Q_kk − Q0_kk| / scale (scale = max of the two lr-weighted Gram norms at
    init: the drift unit of docs/conventions.md). `full=True` also records the whole matrix `Q`."""

    name: str = "conserved"
    full: bool = False

    def __call__(self, s: State) -> Iterator[Observation]:
        ens = s.ens
        for l in range(1, ens.net.depth):
            layer = f"W{l}-W{l + 1}"
            q = pair_conserved(s, l)
            key = ("Q0", l)
            if key not in s.memory:
                p0 = s.params0
                b0 = p0.get(f"b{l}")
                s.memory[key] = (pair_conserved(s, l, p0), conserved_scale(
                    p0[f"W{l + 1}"], p0[f"W{l}"], ens.lr[f"W{l + 1}"], ens.lr[f"W{l}"], b0,
                    ens.lr.get(f"b{l}") if b0 is not None else None))
            q0, scale = s.memory[key]
            p = s.params
            top = bmm(p[f"W{l + 1}"].transpose(-1, -2), p[f"W{l + 1}"]) / ens.lr[f"W{l + 1}"].reshape(-1, 1, 1)
            lower = top - q
            yield Observation("delta_k", layer, q.diagonal(dim1=-2, dim2=-1))
            yield Observation("conserved_norm", layer, torch.linalg.matrix_norm(q))
            yield Observation("relative_imbalance", layer, torch.linalg.matrix_norm(q) / (
                torch.linalg.matrix_norm(top) + torch.linalg.matrix_norm(lower)))
            yield Observation("conserved_drift", layer, torch.linalg.matrix_norm(q - q0) / scale)
            yield Observation("delta_drift", layer, (q - q0).diagonal(dim1=-2, dim2=-1).abs().amax(-1) / scale)
            if self.full:
                yield Observation("Q", layer, q.flatten(1))
