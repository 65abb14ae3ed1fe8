"""Balance-controlled init for users' MLP chains (consecutive nn.Linear layers).

For a pair of consecutive layers (lower W_l with bias b_l, upper W_{l+1}) the conserved matrix is
Q_l = W_{l+1}ᵀW_{l+1}/η_{l+1} − W_lW_lᵀ/η_l − b_lb_lᵀ/η_b (docs/conventions), and Kunin et al.'s
per-neuron δ_k = η_l η_{l+1} Q_kk (δ > 0 upstream: the readout side is larger; δ < 0 downstream).

* `balance(model, delta)` sets every diag(Q_l) to δ_l/(η_l η_{l+1}) by rescaling each hidden neuron
  (row of W_l and b_l by c, column of W_{l+1} by 1/c). With positively homogeneous activations (ReLU,
  leaky ReLU, linear) this leaves the network function unchanged. Each pair is solved in closed form
  given the others; sweeping the pairs is block coordinate descent on a convex function of the log
  scales (its gradient is Q_kk − target), so deep chains converge.
* `balance_chain(model, lam)` sets the whole matrix Q_l = λ_l I (exactly conserved by gradient flow
  in linear networks) by redrawing layers 2..L from layer 1 (changes the function).
η are the per-tensor lr scales of a parametrized model (else 1), or `lr` given per parameter name.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
from torch import Tensor, nn

from ..conventions import conserved
from ..errors import LazyrichError, require
from . import meta
from .tensors import linear_chain

HOMOGENEOUS = (nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.Identity)
_TOL = 1e-13  # relative to the larger lr-weighted norm in each pair


def _lrs(model: nn.Module, lr: Mapping[str, float] | None) -> dict[str, float]:
    m = meta.find(model)
    out = {r["name"]: float(r["lr_scale"]) for r in m.state["rows"]} if m is not None else {}
    out.update({k: float(v) for k, v in (lr or {}).items()})
    return out


def _pairs(model: nn.Module, pairs: Sequence[tuple[str, str]] | None) -> list[tuple[nn.Linear, nn.Linear, str, str]]:
    modules = dict(model.named_modules())
    pairs = list(pairs) if pairs is not None else linear_chain(model)
    require(len(pairs) > 0, "found no consecutive nn.Linear layers whose widths connect: pass pairs=[(lower, upper), ...]")
    out = []
    for lo, up in pairs:
        require(lo in modules and up in modules, f"pair ({lo!r}, {up!r}) names no modules of this model")
        a, b = modules[lo], modules[up]
        require(isinstance(a, nn.Linear) and isinstance(b, nn.Linear) and a.out_features == b.in_features,
                f"pair ({lo!r}, {up!r}) must be two nn.Linear layers with {lo}.out_features = {up}.in_features")
        out.append((a, b, lo, up))
    return out


def _check_homogeneous(model: nn.Module) -> None:
    if not isinstance(model, nn.Sequential):
        return  # we cannot see the activations of a custom forward: the docstring states the condition
    bad = [type(m).__name__ for m in model if not isinstance(m, (nn.Linear, *HOMOGENEOUS))]
    require(not bad, f"{', '.join(bad)} is not positively homogeneous, so rescaling neurons would change the function: "
                     "use ReLU/LeakyReLU/linear layers, or pass preserve_function=False")


def _targets(value: float | Sequence[float], n: int, what: str) -> list[float]:
    vals = [float(value)] * n if isinstance(value, (int, float)) else [float(v) for v in value]
    require(len(vals) == n, f"{what} needs one value per consecutive pair ({n}), got {len(vals)}")
    require(all(math.isfinite(v) for v in vals), f"{what} must be finite numbers")
    return vals


def neuron_delta(lower: nn.Linear, upper: nn.Linear, lr_lower: float, lr_upper: float, lr_bias: float) -> Tensor:
    """Per-neuron δ_k = η_l η_{l+1} Q_kk of a pair (float64), from `conventions.conserved`."""
    b = lower.bias.detach().double()[None] if lower.bias is not None else None
    q = conserved(upper.weight.detach().double()[None], lower.weight.detach().double()[None], lr_upper, lr_lower,
                  b, lr_bias if b is not None else None)[0]
    return q.diagonal() * lr_lower * lr_upper


@torch.no_grad()
def balance(model: nn.Module, delta: float | Sequence[float] = 0.0, *, pairs: Sequence[tuple[str, str]] | None = None,
            lr: Mapping[str, float] | None = None, preserve_function: bool = True, tol: float = _TOL,
            max_sweeps: int = 10_000) -> nn.Module:
    """Rescale hidden neurons so every per-neuron δ_k of every pair equals `delta` (one value, or one
    per pair, lower pair first). 0 = balanced. Returns the model (changed in place)."""
    chain = _pairs(model, pairs)
    if preserve_function:
        _check_homogeneous(model)
    lrs = _lrs(model, lr)
    eta = lambda name: lrs.get(name, 1.0)  # noqa: E731
    deltas = _targets(delta, len(chain), "delta")
    for sweep in range(max_sweeps):
        worst = 0.0
        for (lo, up, lo_name, up_name), target in zip(chain, deltas):
            e_lo, e_up, e_b = eta(f"{lo_name}.weight"), eta(f"{up_name}.weight"), eta(f"{lo_name}.bias")
            w, a = lo.weight.double(), up.weight.double()
            b = lo.bias.double() if lo.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
            lower = w.pow(2).sum(1) / e_lo + b.pow(2) / e_b  # row norms of [W_l, b_l], lr-weighted
            upper = a.pow(2).sum(0) / e_up  # column norms of W_{l+1}
            q = target / (e_lo * e_up)
            scale = max(float(upper.max()), float(lower.max()), abs(q), 1e-300)
            worst = max(worst, float((upper - lower - q).abs().max()) / scale)
            ok = (lower > 0) & (upper > 0)
            u = (-q + torch.sqrt(q * q + 4 * lower * upper)) / (2 * lower.clamp(min=1e-300))  # c² solving Q_kk(c) = q
            c = torch.where(ok, u.sqrt(), torch.ones_like(u))
            lo.weight.mul_(c.to(lo.weight).unsqueeze(1))
            if lo.bias is not None:
                lo.bias.mul_(c.to(lo.bias))
            up.weight.div_(c.to(up.weight).unsqueeze(0))
        if worst <= tol:
            return model
    raise LazyrichError(f"balance did not reach δ within {tol:g} after {max_sweeps} sweeps (residual {worst:.2e}): "
                        "some neuron has zero incoming or outgoing weights; re-initialize it or use another target")


def _orthonormal(gen: torch.Generator, n: int, k: int) -> Tensor:
    q, r = torch.linalg.qr(torch.randn(n, k, generator=gen, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r)).unsqueeze(0)


@torch.no_grad()
def balance_chain(model: nn.Module, lam: float | Sequence[float] = 0.0, *, pairs: Sequence[tuple[str, str]] | None = None,
                  lr: Mapping[str, float] | None = None, seed: int = 0) -> nn.Module:
    """Redraw layers 2..L so that Q_l = λ_l I for every pair (λ = 0: balanced chain): W_{l+1} solves
    W_{l+1}ᵀW_{l+1} = η_{l+1}(W_lW_lᵀ/η_l + b_lb_lᵀ/η_b + λ_l I) with a random orthonormal left factor.
    Needs that matrix PSD with rank ≤ width of layer l+1 (e.g. λ ≥ 0 with a wide enough next layer).
    Upper layers' biases are kept; the function changes."""
    chain = _pairs(model, pairs)
    for (_, up, _, _), (lo2, _, _, _) in zip(chain, chain[1:]):
        require(up is lo2, "balance_chain needs one unbroken chain: each pair's upper layer is the next pair's lower")
    lrs = _lrs(model, lr)
    eta = lambda name: lrs.get(name, 1.0)  # noqa: E731
    lams = _targets(lam, len(chain), "lam")
    gen = torch.Generator().manual_seed(int(seed))
    for (lo, up, lo_name, up_name), lam_l in zip(chain, lams):
        w = lo.weight.double()
        gram = w @ w.T / eta(f"{lo_name}.weight") + lam_l * torch.eye(w.shape[0], dtype=torch.float64)
        if lo.bias is not None:
            gram = gram + torch.outer(lo.bias.double(), lo.bias.double()) / eta(f"{lo_name}.bias")
        ev, vec = torch.linalg.eigh(gram)
        ev, vec = ev.flip(0), vec.flip(1)
        tol = 1e-10 * max(1.0, float(ev.abs().max()))
        require(float(ev.min()) >= -tol, f"λ={lam_l} makes {up_name}ᵀ{up_name} indefinite: use a larger λ")
        keep = min(up.out_features, w.shape[0])
        require(bool((ev[keep:].abs() <= tol).all()),
                f"{up_name} (width {up.out_features}) cannot carry the rank of {lo_name}'s Gram matrix: widen it or set λ=0")
        new = math.sqrt(eta(f"{up_name}.weight")) * _orthonormal(gen, up.out_features, keep) \
            @ torch.diag(ev[:keep].clamp(min=0).sqrt()) @ vec[:, :keep].T
        up.weight.copy_(new)
    return model
