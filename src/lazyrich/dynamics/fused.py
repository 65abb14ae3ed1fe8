"""Hand-written batched forward and backward pass of two-layer ensembles (no autograd).

For f = m_A · A σ(m_W · W x) (W = W1 [E, h, d], A = W2 [E, c, h], no biases) and the loss
L = s · mean_i ||f(x_i) − y_i||², with residual gradient g = (2s/n)(f − y):

    ∇_A L = m_A · gᵀ H,        ∇_W L = m_W · ((g A m_A) ⊙ σ'(Z))ᵀ x,      H = σ(Z), Z = m_W · W x

Layout: hidden activations are kept member-major and sample-last, [E, h, n], so that with x shared
by all members both big products are single GEMMs over all members at once ([E·h, d] @ [d, n] and
[E·h, n] @ [n, d]) and the rest is a few batched passes. Multipliers are folded into the (small)
weights instead of the (large) activations. Same numbers as autograd to rounding (tests: 1e-12).
"""
from __future__ import annotations

import threading

import torch
from torch import Tensor

from ..models.activations import activation, derivative
from ..models.mlp import Params


def supports(ens: object, x: Tensor) -> bool:
    """True when `two_layer_loss_and_grads` applies: a two-layer MLP without biases, not centred."""
    net = getattr(ens, "net", None)
    return (net is not None and net.depth == 2 and not net.bias and not net.bias_out
            and getattr(ens, "center", None) is None and x.dim() in (2, 3))


# Two [E, h, n] buffers per thread, reused from step to step (shapes of the last call): fresh
# allocations this large go through mmap and page faults every step, costing more than the arithmetic.
_LOCAL = threading.local()
BLOCK_BYTES = 4 << 20  # one block's activations; measured on 1 thread, E = 256, d=10, h=50, n=100: 2.2x in float64


def _buffers(E: int, h: int, n: int, like: Tensor) -> tuple[Tensor, Tensor]:
    key = (h, n, like.dtype, like.device)
    have = getattr(_LOCAL, "buffers", None)
    if getattr(_LOCAL, "key", None) != key or have is None or have[0].shape[0] < E:
        _LOCAL.key, _LOCAL.buffers = key, (torch.empty(E, h, n, dtype=like.dtype, device=like.device),
                                           torch.empty(E, h, n, dtype=like.dtype, device=like.device))
    z, back = _LOCAL.buffers
    return (z, back) if z.shape[0] == E else (z[:E], back[:E])  # a slice is a dispatch: skip it when whole


def clear_workspace() -> None:
    """Free this thread's reused activation buffers."""
    _LOCAL.key = _LOCAL.buffers = None


def _per_member(m: Tensor | float, like: Tensor) -> Tensor:
    m = torch.as_tensor(m, dtype=like.dtype, device=like.device)
    return m.reshape(-1, 1, 1) if m.dim() == 1 else m


def two_layer_loss_and_grads(params: Params, x: Tensor, y: Tensor, multipliers: dict[str, Tensor | float],
                             act: str = "relu", loss_scale: float = 0.5, active: Tensor | None = None
                             ) -> tuple[Tensor, dict[str, Tensor]]:
    """Per-member loss [E] and gradients {"W1": [E, h, d], "W2": [E, c, h]}; x: [n, d] (shared) or
    [E, n, d], y: [n, c] or [E, n, c]. Members with `active` False get zero gradients.
    On one thread (sweep workers) members go through in blocks whose [E_b, h, n] activations stay in
    cache (`BLOCK_BYTES`); with more threads one GEMM over all members parallelizes better."""
    w = params["W1"]
    E, h, _ = w.shape
    per = max(1, BLOCK_BYTES // (h * x.shape[-2] * w.element_size()))
    if E <= per or torch.get_num_threads() > 1:
        return _block(params, x, y, multipliers, act, loss_scale, active)

    def cut(m: Tensor | float, s: slice) -> Tensor | float:  # per-member multipliers [E] are sliced
        return m[s] if isinstance(m, Tensor) and m.dim() == 1 else m
    parts = []
    for start in range(0, E, per):
        s = slice(start, start + per)
        parts.append(_block({k: v[s] for k, v in params.items()}, x if x.dim() == 2 else x[s], y if y.dim() == 2 else y[s],
                            {k: cut(v, s) for k, v in multipliers.items()}, act, loss_scale,
                            None if active is None else active[s]))
    return torch.cat([p[0] for p in parts]), {k: torch.cat([p[1][k] for p in parts]) for k in parts[0][1]}


def _block(params: Params, x: Tensor, y: Tensor, multipliers: dict[str, Tensor | float], act: str,
           loss_scale: float, active: Tensor | None) -> tuple[Tensor, dict[str, Tensor]]:
    w, a = params["W1"], params["W2"]
    m_w, m_a = _per_member(multipliers.get("W1", 1.0), w), _per_member(multipliers.get("W2", 1.0), a)
    return _pass(w, a, x, x.T if x.dim() == 2 else x.transpose(-1, -2), y.T if y.dim() == 2 else y.transpose(-1, -2),
                 m_w, m_a, act, loss_scale, active)


def _pass(w: Tensor, a: Tensor, x: Tensor, xt: Tensor, yt: Tensor, m_w: Tensor | None, m_a: Tensor | None, act: str,
          loss_scale: float, active: Tensor | None) -> tuple[Tensor, dict[str, Tensor]]:
    """The pass itself; xt, yt: x and y sample-last; m_w, m_a: [E, 1, 1], 0-dim or None (all ones: a
    product by 1 is exact, so skipping it changes no bit). Products call mm/bmm directly (the kernels
    `@` dispatches to, without its reshapes): one dispatch each."""
    E, h, d = w.shape
    n = x.shape[-2]
    w_eff = w if m_w is None else w * m_w  # [E, h, d], [E, c, h]: multipliers on the small tensors
    a_eff = a if m_a is None else a * m_a
    z, back = _buffers(E, h, n, w)
    if x.dim() == 2:
        torch.mm(w_eff.view(E * h, d), xt, out=z.view(E * h, n))  # one GEMM for all members
    else:
        torch.bmm(w_eff, xt, out=z)
    hidden = z.clamp_min_(0.0) if act == "relu" else activation(act)(z)  # relu in place: z is ours
    f = torch.bmm(a_eff, hidden)  # [E, c, n]
    r = f - yt
    loss = r.pow(2).sum(1).mean(-1)
    loss = loss if loss_scale == 1.0 else loss_scale * loss
    g = r * (2 * loss_scale / n)
    grad_a = torch.bmm(g, hidden.transpose(-1, -2))  # [E, c, h]
    grad_a = grad_a if m_a is None else grad_a * m_a
    torch.bmm(a_eff.transpose(-1, -2), g, out=back)  # [E, h, n]
    if act == "relu":  # σ'(Z) = 1[H > 0] from H itself, applied in place: one pass, no mask tensor
        dz = torch.ops.aten.threshold_backward.grad_input(back, hidden, 0.0, grad_input=back)
    elif act == "linear":
        dz = back
    else:
        dz = back * derivative(act)(z)
    # ∇W computed transposed, xᵀ dzᵀ: MKL runs this shape up to 4× faster than dz x when d is small
    if x.dim() == 2:
        grad_w = torch.mm(xt, dz.view(E * h, n).T).T.reshape(E, h, d)  # one GEMM for all members
    else:
        grad_w = torch.bmm(xt, dz.transpose(-1, -2)).transpose(-1, -2)
    grads = {"W1": grad_w if m_w is None else grad_w * m_w, "W2": grad_a}
    if active is not None:  # frozen members get exactly zero gradients, even when their weights are NaN
        zero = torch.zeros((), dtype=w.dtype, device=w.device)
        grads = {k: torch.where(active.reshape(-1, 1, 1), v, zero) for k, v in grads.items()}
    return loss, grads


def prepare(ens: object, x: Tensor, y: Tensor) -> "callable":
    """`loss_and_grads` for training on fixed (x, y) with the per-step constants (multipliers shaped
    [E, 1, 1], x and y sample-last) computed once: the same arithmetic, fewer dispatches a step."""
    mult, act, scale = ens.multipliers, ens.net.activation, ens.loss_scale  # type: ignore[attr-defined]
    w = ens.params["W1"]  # type: ignore[attr-defined]
    m_w, m_a = _per_member(mult.get("W1", 1.0), w), _per_member(mult.get("W2", 1.0), w)
    m_w, m_a = (None if bool((m == 1).all()) else m for m in (m_w, m_a))
    xt, yt = (x.T if x.dim() == 2 else x.transpose(-1, -2)), (y.T if y.dim() == 2 else y.transpose(-1, -2))
    per = max(1, BLOCK_BYTES // (w.shape[1] * x.shape[-2] * w.element_size()))

    def grads_of(ens_: object, params: Params, x_: Tensor, y_: Tensor, active: Tensor | None) -> tuple[Tensor, dict[str, Tensor]]:
        if x_ is not x or y_ is not y or (params["W1"].shape[0] > per and torch.get_num_threads() == 1):
            return two_layer_loss_and_grads(params, x_, y_, mult, act, scale, active)  # minibatches, blocks
        return _pass(params["W1"], params["W2"], x, xt, yt, m_w, m_a, act, scale, active)
    return grads_of


def loss_and_grads(ens: object, params: Params, x: Tensor, y: Tensor, active: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """Drop-in for `dynamics.train.loss_and_grads` on ensembles that `supports` accepts."""
    return two_layer_loss_and_grads(params, x, y, ens.multipliers, ens.net.activation, ens.loss_scale, active)  # type: ignore[attr-defined]
