"""Neural tangent kernels, the kernel distance and kernel–target alignment.

Public functions (other rooms import these; keep the names and signatures):

* ``empirical_ntk(fn, params, x, lr=None, method="jacobian", memory_budget_bytes=DEFAULT_BUDGET,
  jvp_batch=32)`` → [n·c, n·c]: the NTK of any function ``fn(params, x) -> [n, c]`` (e.g. an
  ``nn.Module`` through ``torch.func.functional_call``) by ``torch.func``, chunked to a memory budget;
  params is a dict of tensors *without* a member axis.
* ``mlp_ntk(net, params, x, multipliers=None, lr=None)`` → [E, n·c, n·c]: the structured NTK of an
  ensemble of MLPs from backpropagated output gradients (no per-sample parameter Jacobian).
* ``ensemble_ntk(ens, params, x, weights="lr")``: ``mlp_ntk`` with the ensemble's multipliers and lrs.
* ``kernel_distance(K0, K1)`` → S = 1 − ⟨K0, K1⟩_F / (‖K0‖_F ‖K1‖_F), batched over leading axes.
* ``kernel_target_alignment(K, y, centered=False)`` → yᵀKy / (‖K‖_F ‖y‖²).

Kernel (Kunin et al.): Θ(x, x') = Σ_p η_p ∂f/∂θ_p(x) ∂f/∂θ_p(x')ᵀ with per-tensor weights η_p (the
effective learning rates, or 1 for every tensor: ``lr=None`` / ``weights="unit"``). Layout: sample-major
``K[i·c + a, j·c + b] = Θ_ab(x_i, x_j)``; with one output, K is [n, n].
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Literal, Mapping

import torch
from torch import Tensor
from torch.func import jacrev, jvp, vmap

from ..ensemble import Ensemble
from ..errors import require
from ..models.activations import activation, derivative
from ..models.mlp import MLP, Params, preactivations
from .base import Observation, State, register

DEFAULT_BUDGET = 2**30  # bytes of Jacobian rows held at once by `empirical_ntk` (1 GiB)
# Row-chunk-sized buffers alive at the peak (measured): jacobian = row chunk + column chunk + the
# transient of computing one; ntk_vp = row chunk + that transient.
_BUFFERS = {"jacobian": 3, "ntk_vp": 2}
Method = Literal["jacobian", "ntk_vp"]


# ---------------------------------------------------------------- kernel comparisons

def kernel_distance(K0: Tensor, K1: Tensor) -> Tensor:
    """S(t0, t1) = 1 − ⟨K0, K1⟩_F / (‖K0‖_F ‖K1‖_F) over the last two axes (0: same kernel up to scale)."""
    inner = torch.einsum("...ij,...ij->...", K0, K1)
    return 1 - inner / (torch.linalg.matrix_norm(K0) * torch.linalg.matrix_norm(K1))


def _center(K: Tensor, n: int, c: int) -> Tensor:
    # H K H with H = (I_n − 11ᵀ/n) ⊗ I_c: remove sample means, keep outputs apart
    k = K.reshape(*K.shape[:-2], n, c, n, c)
    k = k - k.mean(-4, keepdim=True)
    k = k - k.mean(-2, keepdim=True)
    return k.reshape(K.shape)


def kernel_target_alignment(K: Tensor, y: Tensor, centered: bool = False) -> Tensor:
    """A(K, y) = yᵀ K y / (‖K‖_F ‖y‖²) = ⟨K, yyᵀ⟩_F / (‖K‖_F ‖yyᵀ‖_F) ∈ [−1, 1] (Cristianini et al.).

    K: [..., n·c, n·c] (sample-major), y: [..., n, c]. `centered=True` centres K and y over samples
    first (Cortes et al.), which removes the constant-function direction."""
    require(y.dim() >= 2, f"y must be [..., n, c]; got shape {tuple(y.shape)}")
    n, c = y.shape[-2], y.shape[-1]
    require(K.shape[-1] == n * c, f"K is {K.shape[-1]}×{K.shape[-1]} but y has n·c = {n}·{c}: they must match")
    if centered:
        K = _center(K, n, c)
        y = y - y.mean(-2, keepdim=True)
    v = y.reshape(*y.shape[:-2], n * c)
    quad = (v.unsqueeze(-2) @ K @ v.unsqueeze(-1)).squeeze(-1).squeeze(-1)
    return quad / (torch.linalg.matrix_norm(K) * v.pow(2).sum(-1))


# ---------------------------------------------------------------- structured NTK of MLPs

def _per_member(m: Tensor | float, dims: int) -> Tensor | float:
    return m.reshape(-1, *[1] * dims) if isinstance(m, Tensor) and m.dim() == 1 else m


def output_gradients(net: MLP, params: Params, x: Tensor, multipliers: Mapping[str, Tensor | float] | None = None
                     ) -> tuple[list[Tensor], list[Tensor]]:
    """Backpropagated output gradients g_l = ∂f/∂z_l ([E, n, c, n_l], l = 1..L−1) and layer inputs
    h_{l−1} (l = 1..L; h_0 = x as given). ∂f/∂z_L = I_c is not materialized."""
    mult = multipliers or {}
    zs = preactivations(net, params, x, dict(mult))
    act, dact = activation(net.activation), derivative(net.activation)
    inputs = [x] + [act(z) for z in zs[:-1]]
    grads: list[Tensor] = []
    g: Tensor | None = None
    for l in range(net.depth - 1, 0, -1):
        w = params[f"W{l + 1}"] * _per_member(mult.get(f"W{l + 1}", 1.0), 2)  # effective weight m·W
        if g is None:  # ∂f/∂h_{L−1} = m_L W_L for every sample
            back = w.unsqueeze(1)  # [E, 1, c, n_l]
        else:  # one bmm per member (a broadcast matmul would copy W once per sample)
            E, n, c, _ = g.shape
            back = torch.bmm(g.reshape(E, n * c, -1), w).reshape(E, n, c, -1)
        g = back * dact(zs[l - 1]).unsqueeze(-2)
        grads.append(g)
    return grads[::-1], inputs


def _gram(h: Tensor) -> Tensor:
    return h @ h.transpose(-1, -2)


def mlp_ntk(net: MLP, params: Params, x: Tensor, multipliers: Mapping[str, Tensor | float] | None = None,
            lr: Mapping[str, Tensor | float] | None = None) -> Tensor:
    """NTK of an ensemble of MLPs, [E, n·c, n·c] (sample-major), x: [n, d] shared or [E, n, d].

    With z_l = m_l W_l h_{l−1} + b_l and g_l = ∂f/∂z_l, ∂f/∂W_l = m_l g_l h_{l−1}ᵀ, so
        Θ_ab(x_i, x_j) = Σ_l (η_{W_l} m_l² h_{l−1,i}·h_{l−1,j} + η_{b_l}) · g_{l,i,a}·g_{l,j,b}
    (g_L = I_c). Two-layer f = m₂Aσ(m₁Wx + b): Θ = η_A m₂² ΦΦᵀ ⊗ I + (η_W m₁² XXᵀ + η_b) ⊙ (m₂² G Gᵀ)
    with Φ = σ(z), G = A ⊙ σ'(z). Cost O(n² c² Σ n_l); `lr=None` weights every tensor by 1."""
    mult = multipliers or {}
    names = list(net.shapes())
    if lr is not None:
        missing = [k for k in names if k not in lr]
        require(not missing, f"lr lacks tensors {missing}: give one learning rate per parameter tensor")
    weight = (lambda k: 1.0) if lr is None else (lambda k: _per_member(lr[k], 2))  # noqa: E731
    grads, inputs = output_gradients(net, params, x, mult)
    E = next(iter(params.values())).shape[0]
    n, c, L = x.shape[-2], net.widths[-1], net.depth

    def coef(l: int) -> Tensor | float:  # η_W m²: per member [E, 1, 1] or a float
        m = _per_member(mult.get(f"W{l}", 1.0), 2)
        return weight(f"W{l}") * m * m

    # output layer: (η m² H Hᵀ + η_b) ⊗ I_c, built in a fresh [E, n, n] tensor
    out = _gram(inputs[L - 1])
    out = out.expand(E, n, n) * coef(L) if out.dim() == 2 else out.mul_(coef(L))
    if f"b{L}" in params:
        out = out.add_(weight(f"b{L}"))
    if c == 1:
        K = out
    else:
        K = torch.zeros(E, n, c, n, c, dtype=out.dtype, device=out.device)
        K.diagonal(dim1=2, dim2=4).copy_(out.unsqueeze(-1).expand(E, n, n, c))
        K = K.reshape(E, n * c, n * c)
    for l in range(1, L):  # hidden layers: (g gᵀ) ⊙ (η m² H Hᵀ + η_b), in place
        g = grads[l - 1].reshape(E, n * c, -1)
        s = _gram(inputs[l - 1])
        if f"b{l}" in params:
            s = s * coef(l) + weight(f"b{l}")
        else:  # fold η m² into g so a shared-input Gram is never copied per member
            a = coef(l)
            g = g * (a.sqrt() if isinstance(a, Tensor) else a**0.5)
        gg = torch.bmm(g, g.transpose(1, 2))
        s = s if s.dim() == 3 else s.unsqueeze(0)
        gg.view(E, n, c, n, c).mul_(s[:, :, None, :, None])
        K.add_(gg)
    return K


def ensemble_ntk(ens: Ensemble, params: Params, x: Tensor, weights: Literal["lr", "unit"] = "lr") -> Tensor:
    """`mlp_ntk` under the ensemble's multipliers, weighted by its effective lrs (`weights="lr"`) or by 1
    (`"unit"`, as Kunin et al.'s Fig. 1 code). A centred model f − f₀ has the same kernel."""
    require(weights in ("lr", "unit"), f"weights={weights!r}: choose 'lr' (layerwise learning rates) or 'unit'")
    return mlp_ntk(ens.net, params, x, ens.multipliers, ens.lr if weights == "lr" else None)


# ---------------------------------------------------------------- generic empirical NTK (torch.func)

def _weights(params: Mapping[str, Tensor], lr: Mapping[str, Tensor | float] | float | None) -> dict[str, float]:
    if lr is None or isinstance(lr, (int, float)):
        return {k: 1.0 if lr is None else float(lr) for k in params}
    extra = sorted(set(lr) - set(params))
    missing = sorted(set(params) - set(lr))
    require(not extra, f"lr names unknown tensors {extra}: the parameters are {sorted(params)}")
    require(not missing, f"lr lacks tensors {missing}: give every parameter a learning rate (0 freezes it)")
    return {k: float(lr[k]) for k in params}


def _row_jacobians(fn: Callable[[Params, Tensor], Tensor], params: Params, x: Tensor) -> dict[str, Tensor]:
    """Per-sample Jacobians {name: [s, c, *shape]} of the rows x [s, d] (one vmapped reverse pass each)."""
    def single(p: Params, xi: Tensor) -> Tensor:
        return fn(p, xi.unsqueeze(0)).reshape(-1)
    return vmap(jacrev(single), in_dims=(None, 0))(params, x)


def _chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def ntk_row_bytes(params: Mapping[str, Tensor], c: int) -> int:
    """Bytes of one sample's Jacobian (c × P entries): the unit `memory_budget_bytes` is spent in."""
    return c * sum(v.numel() * v.element_size() for v in params.values())


def empirical_ntk(fn: Callable[[Params, Tensor], Tensor], params: Params, x: Tensor,
                  lr: Mapping[str, Tensor | float] | float | None = None, method: Method = "jacobian",
                  memory_budget_bytes: int | None = DEFAULT_BUDGET, jvp_batch: int = 32) -> Tensor:
    """Empirical NTK [n·c, n·c] of ``fn(params, x) -> [n, c]`` (or [n]) at `params` (no member axis).

    `lr` weights each tensor (dict name → lr, a float for all, or None for 1). Methods:
    ``"jacobian"`` contracts per-sample Jacobians J_i (vmap ∘ jacrev); ``"ntk_vp"`` forms J_iᵀ e_a by
    vjp and pushes η ⊙ J_iᵀ e_a through a jvp on all n samples, giving a whole row block of K without
    the column Jacobians. `memory_budget_bytes` bounds the Jacobian rows alive at once (None: no bound):
    rows are processed in chunks; "jacobian" then recomputes column chunks (≈ m/2 × more Jacobian
    work for m chunks), "ntk_vp" needs a single pass but runs `jvp_batch` jvps on all n samples at a
    time (memory ≈ jvp_batch × fn's forward on x). fn's own activations and the n·c × n·c output are
    not counted. fn must treat samples independently (no batch norm)."""
    require(method in ("jacobian", "ntk_vp"), f"method={method!r}: choose 'jacobian' or 'ntk_vp'")
    require(x.dim() >= 2, f"x must be [n, ...] with a sample axis; got shape {tuple(x.shape)}")
    params = {k: v.detach() for k, v in params.items()}
    eta = _weights(params, lr)
    params = {k: v for k, v in params.items() if eta[k] != 0.0}  # frozen tensors add nothing
    require(len(params) > 0, "every tensor has lr 0: the kernel is identically zero")
    with torch.no_grad():
        out = fn(params, x[:1])
    c = out.reshape(1, -1).shape[-1]
    n = x.shape[0]
    row = ntk_row_bytes(params, c)
    held = _BUFFERS[method]
    if memory_budget_bytes is None:
        size = n
    else:
        size = min(n, memory_budget_bytes // (held * row))
        require(size >= 1, f"memory_budget_bytes={memory_budget_bytes} holds no Jacobian row ({held}×{row} bytes "
                           f"needed): raise the budget to at least {held * row}")
    if method == "jacobian":
        return _ntk_jacobian(fn, params, x, eta, c, size)
    require(jvp_batch >= 1, f"jvp_batch={jvp_batch} must be a positive integer")
    return _ntk_vp(fn, params, x, eta, c, size, jvp_batch)


def _contract(ji: dict[str, Tensor], jj: dict[str, Tensor], eta: dict[str, float]) -> Tensor:
    """Σ_p η_p J_i,p J_j,pᵀ for row-Jacobian dicts {name: [s, c, *shape]} → [s_i·c, s_j·c]."""
    out: Tensor | None = None
    for k in ji:
        a = ji[k].reshape(ji[k].shape[0] * ji[k].shape[1], -1)  # [s·c, P_k], scalar tensors included
        b = jj[k].reshape(jj[k].shape[0] * jj[k].shape[1], -1)
        term = eta[k] * (a @ b.T)
        out = term if out is None else out + term
    assert out is not None
    return out


def _ntk_jacobian(fn: Callable[[Params, Tensor], Tensor], params: Params, x: Tensor, eta: dict[str, float],
                  c: int, size: int) -> Tensor:
    n = x.shape[0]
    K = torch.empty(n * c, n * c, dtype=next(iter(params.values())).dtype, device=x.device)
    spans = list(_chunks(n, size))
    for a, si in enumerate(spans):
        ji = _row_jacobians(fn, params, x[si])
        rows = slice(si.start * c, si.stop * c)
        K[rows, rows] = _contract(ji, ji, eta)
        for sj in spans[a + 1:]:
            jj = _row_jacobians(fn, params, x[sj])
            cols = slice(sj.start * c, sj.stop * c)
            block = _contract(ji, jj, eta)
            K[rows, cols], K[cols, rows] = block, block.T
            del jj
        del ji
    return K


def _ntk_vp(fn: Callable[[Params, Tensor], Tensor], params: Params, x: Tensor, eta: dict[str, float],
            c: int, size: int, jvp_batch: int) -> Tensor:
    n = x.shape[0]
    names = list(params)

    def push(tangent: tuple[Tensor, ...]) -> Tensor:  # J(all samples) · tangent → [n·c]
        def f(*ps: Tensor) -> Tensor:
            return fn(dict(zip(names, ps)), x).reshape(-1)
        return jvp(f, tuple(params[k] for k in names), tangent)[1]

    blocks = []
    for si in _chunks(n, size):
        rows = _row_jacobians(fn, params, x[si])  # J_iᵀ e_a for the chunk: {name: [s, c, *shape]}
        tangents = tuple(rows[k].mul_(eta[k]).flatten(0, 1) for k in names)  # in place: one copy held
        blocks.append(vmap(push, chunk_size=jvp_batch)(tangents))  # [s·c, n·c]
        del rows, tangents
    return torch.cat(blocks, 0)


# ---------------------------------------------------------------- observer

@register("kernel_distance")
@dataclass
class KernelDistance:
    """`kernel_distance` S(0, t) between the NTK at init and now, and `kernel_target_alignment` of the
    current NTK with the training targets. `weights`: "lr" (layerwise learning rates) or "unit"
    (Kunin et al. Fig. 1). K₀ is computed once per run and kept in `state.memory` ([E, n·c, n·c])."""

    name: str = "kernel_distance"
    weights: Literal["lr", "unit"] = "lr"
    alignment: bool = True
    centered: bool = False

    def __call__(self, s: State) -> Iterator[Observation]:
        key = ("K0", self.weights)
        if key not in s.memory:
            s.memory[key] = ensemble_ntk(s.ens, s.params0, s.data.x, self.weights)
        K = ensemble_ntk(s.ens, s.params, s.data.x, self.weights)
        yield Observation("kernel_distance", "", kernel_distance(s.memory[key], K))
        if self.alignment:
            yield Observation("kernel_target_alignment", "", kernel_target_alignment(K, s.data.y, self.centered))


__all__ = ["empirical_ntk", "mlp_ntk", "ensemble_ntk", "kernel_distance", "kernel_target_alignment",
           "output_gradients", "ntk_row_bytes", "KernelDistance", "DEFAULT_BUDGET"]
