"""Saddle escape of deep ReLU nets from a small init (arXiv 2505.21722; theory/saddle_escape.py).

Per layer "W{l}" of the effective weights m_l·W_l, batched over members ([E] values):
- `layer_norm_share` ‖W_l‖²/‖θ‖² (1/L for a balanced escape direction),
- `effective_rank` exp(entropy of σ/Σσ) and `singular_ratio` σ₁/σ₂ (the low-rank bias; the paper's bound
  σ₁ ≥ ℓ^{1/4}σ₂ at the optimal escape direction),
- `escape_overlap`: the overlap of the normalized weight direction with a predicted escape direction θ*
  (given at construction), after matching hidden units by permutation layer by layer
  (`theory.saddle_escape.aligned_overlap`); 1 when the layer points along θ*'s.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch

from ..errors import require
from .base import Observation, State, register
from .shared import effective_weight


@register("escape")
class Escape:
    """Observer of the escape direction (module docstring). `target`: θ*'s weights W_1..W_L (arrays, any
    norm); without it `escape_overlap` is not recorded."""

    name = "escape"

    def __init__(self, target: Sequence[np.ndarray] | None = None) -> None:
        self.target = None if target is None else [np.asarray(w, float) for w in target]

    def __call__(self, s: State) -> Iterator[Observation]:
        from ..theory.saddle_escape import aligned_overlap

        L = s.ens.net.depth
        ws = [effective_weight(s, l) for l in range(1, L + 1)]
        if self.target is not None:
            require(len(self.target) == L and all(t.shape == tuple(w.shape[1:]) for t, w in zip(self.target, ws)),
                    f"escape: the target direction's shapes {[t.shape for t in self.target]} do not match the net's "
                    f"{[tuple(w.shape[1:]) for w in ws]}: compute it for the same widths")
        total = sum(w.pow(2).sum((1, 2)) for w in ws)
        for l, w in enumerate(ws, 1):
            sv = torch.linalg.svdvals(w)  # [E, k], descending
            p = sv / sv.sum(-1, keepdim=True)
            ent = -(torch.where(p > 0, p * torch.log(p), torch.zeros_like(p))).sum(-1)
            yield Observation("layer_norm_share", f"W{l}", w.pow(2).sum((1, 2)) / total)
            yield Observation("effective_rank", f"W{l}", torch.exp(ent))
            ratio = sv[:, 0] / sv[:, 1] if sv.shape[1] > 1 else torch.full_like(sv[:, 0], float("inf"))
            yield Observation("singular_ratio", f"W{l}", ratio)
        if self.target is not None:
            mats = [w.detach().cpu().numpy() for w in ws]
            ov = np.array([aligned_overlap(self.target, [m[e] for m in mats]) for e in range(ws[0].shape[0])])  # [E, L]
            for l in range(L):
                yield Observation("escape_overlap", f"W{l + 1}", torch.as_tensor(ov[:, l], dtype=ws[0].dtype,
                                                                                   device=ws[0].device))
