"""Observers for the quantities the exact solutions predict and the core observers do not record, so a
run and `lazyrich.theory` overlay by name (importing `lazyrich.theory` registers them):

* ``linear_map``: ``beta`` (end-to-end map m_L W_L ⋯ m_1 W_1 of a linear MLP, c×d row-major),
  ``input_gram`` (W1ᵀW1, layer W1), ``output_gram`` (W_L W_Lᵀ, layer W{L}) and ``mode_strength``
  (diag UᵀβV for the SVD Σ_yx = U S Vᵀ of the training data);
* ``single_neuron``: ``a`` (W2), ``w`` (W1), ``mu`` = a||w||, ``phi`` = cos∠(w, β*), β* = (1/n)Xᵀy;
* ``one_d``: ``output`` (f at Xu & Ziyin's effective point, mean(z f)/√mean z²), ``u_norm`` (W2),
  ``w_norm`` (||W1 n||, W1) for data x_i = z_i n;
* ``ntk_ratio``: ||K_t||_F/||K_0||_F of the lr-weighted NTK (the magnitude the kernel distance ignores).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from torch import Tensor

from ..errors import require
from ..observe.base import Observation, State, register


def end_to_end(s: State) -> Tensor:
    """m_L W_L ⋯ m_1 W_1 of a linear MLP without biases: [E, c, d]."""
    net = s.ens.net
    require(net.activation == "linear" and not net.bias and not net.bias_out,
            f"the end-to-end map needs a linear MLP without biases; got activation {net.activation!r}")
    out = None
    for name in net.names:
        w = s.params[name] * s.ens.multipliers[name].reshape(-1, 1, 1)
        out = w if out is None else w @ out
    return out  # type: ignore[return-value]


def _sigma_yx(s: State) -> Tensor:
    x, y = s.data.x, s.data.y
    return (y.transpose(-1, -2) @ x) / x.shape[-2]


@register("linear_map")
@dataclass
class LinearMap:
    """`beta`, `input_gram`, `output_gram`, `mode_strength` of a linear MLP (module docstring)."""

    name: str = "linear_map"

    def __call__(self, s: State) -> Iterator[Observation]:
        beta = end_to_end(s)
        yield Observation("beta", "", beta.flatten(1))
        first, last = s.ens.net.names[0], s.ens.net.names[-1]
        w1, wl = s.params[first], s.params[last]
        yield Observation("input_gram", first, (w1.transpose(-1, -2) @ w1).flatten(1))
        yield Observation("output_gram", last, (wl @ wl.transpose(-1, -2)).flatten(1))
        if "svd" not in s.memory:
            sig = _sigma_yx(s)
            u, _, vh = torch.linalg.svd(sig, full_matrices=False)
            s.memory["svd"] = (u, vh)
        u, vh = s.memory["svd"]
        yield Observation("mode_strength", "", torch.diagonal(u.transpose(-1, -2) @ beta @ vh.transpose(-1, -2),
                                                              dim1=-2, dim2=-1))


@register("single_neuron")
@dataclass
class SingleNeuron:
    """`a`, `w`, `mu`, `phi` of f = a wᵀx (widths (d, 1, 1))."""

    name: str = "single_neuron"

    def __call__(self, s: State) -> Iterator[Observation]:
        require(s.ens.net.widths[1:] == (1, 1), f"single_neuron needs widths (d, 1, 1); got {s.ens.net.widths}")
        a, w = s.params["W2"][:, 0, 0], s.params["W1"][:, 0, :]
        bstar = _sigma_yx(s)[..., 0, :]
        wn = w.norm(dim=-1)
        yield Observation("a", "W2", a)
        yield Observation("w", "W1", w)
        yield Observation("mu", "", a * wn)
        yield Observation("phi", "", (w * bstar).sum(-1) / (wn * bstar.norm(dim=-1)))


@register("one_d")
@dataclass
class OneD:
    """`output`, `u_norm`, `w_norm` of a (d, h, 1) net on data x_i = z_i n."""

    name: str = "one_d"

    def __call__(self, s: State) -> Iterator[Observation]:
        from ..ensemble import predict

        x = s.data.x
        if "direction" not in s.memory:
            _, sv, vh = torch.linalg.svd(x, full_matrices=False)
            require(sv.shape[-1] == 1 or bool((sv[..., 1] <= 1e-10 * sv[..., 0]).all()),
                    "one_d needs 1-D data x_i = z_i·n (rank-one X)")
            s.memory["direction"] = vh[..., 0, :]
        n = s.memory["direction"]
        z = x @ n
        m2 = (z * z).mean(-1)
        f = predict(s.ens, s.params, x)[..., 0]  # [E, n]
        yield Observation("output", "", (f * z).mean(-1) / m2.sqrt())
        yield Observation("u_norm", "W2", s.params["W2"][:, 0, :].norm(dim=-1))
        yield Observation("w_norm", "W1", (s.params["W1"] @ n.reshape(-1, 1) if n.dim() == 1 else
                                           s.params["W1"] @ n.unsqueeze(-1))[..., 0].norm(dim=-1))


@register("ntk_ratio")
@dataclass
class NTKRatio:
    """`ntk_ratio` = ||K_t||_F/||K_0||_F (lr-weighted NTK on the training inputs)."""

    name: str = "ntk_ratio"

    def __call__(self, s: State) -> Iterator[Observation]:
        from ..observe.kernel import ensemble_ntk

        if "ntk_norm0" not in s.memory:
            s.memory["ntk_norm0"] = torch.linalg.matrix_norm(ensemble_ntk(s.ens, s.params0, s.data.x, "lr"))
        K = ensemble_ntk(s.ens, s.params, s.data.x, "lr")
        yield Observation("ntk_ratio", "", torch.linalg.matrix_norm(K) / s.memory["ntk_norm0"])
