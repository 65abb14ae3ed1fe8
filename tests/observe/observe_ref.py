"""Slow, obvious float64 references for the observe tests: one member at a time, one sample at a time,
derivatives by plain autograd, linear algebra in numpy. Nothing here is shared with the package."""
from __future__ import annotations

import numpy as np
import torch

from lazyrich.models import MLP


def member(params: dict, e: int) -> dict:
    return {k: v[e].detach().clone() for k, v in params.items()}


def mult_of(multipliers: dict, e: int, name: str) -> float:
    m = multipliers.get(name, 1.0)
    return float(m[e]) if isinstance(m, torch.Tensor) and m.dim() == 1 else float(m)


def act_fn(name: str):
    return {"linear": lambda z: z, "relu": torch.relu, "tanh": torch.tanh, "quadratic": lambda z: z * z,
            "gelu": torch.nn.functional.gelu,
            "leaky_relu": lambda z: torch.nn.functional.leaky_relu(z, 0.1)}[name]


def forward_one(net: MLP, p: dict, x: torch.Tensor, mult: dict, e: int, upto: int | None = None):
    """One member on one sample x [d]: list of preactivations z_1..z_L (loops over layers)."""
    act = act_fn(net.activation)
    h, zs = x, []
    for l in range(1, net.depth + 1):
        z = mult_of(mult, e, f"W{l}") * (p[f"W{l}"] @ h)
        if f"b{l}" in p:
            z = z + p[f"b{l}"]
        zs.append(z)
        h = act(z)
    return zs


def jacobian(net: MLP, params: dict, x: torch.Tensor, mult: dict, e: int, names: list[str]) -> torch.Tensor:
    """J [n·c, P] of member e, rows sample-major, one autograd call per (sample, output)."""
    p = {k: v.requires_grad_(True) for k, v in member(params, e).items()}
    rows = []
    for i in range(x.shape[-2]):
        xi = x[e, i] if x.dim() == 3 else x[i]
        f = forward_one(net, p, xi, mult, e)[-1]
        for a in range(f.shape[0]):
            g = torch.autograd.grad(f[a], [p[k] for k in names], retain_graph=True)
            rows.append(torch.cat([t.reshape(-1) for t in g]))
    return torch.stack(rows)


def ntk(net: MLP, params: dict, x: torch.Tensor, mult: dict, lr: dict | None, e: int) -> np.ndarray:
    names = list(params)
    J = jacobian(net, params, x, mult, e, names)
    weights = torch.cat([torch.full((params[k][0].numel(),), 1.0 if lr is None else float(
        lr[k][e] if isinstance(lr[k], torch.Tensor) and lr[k].dim() else lr[k]), dtype=torch.float64) for k in names])
    return (J * weights @ J.T).numpy()


def kernel_distance(a: np.ndarray, b: np.ndarray) -> float:
    return 1.0 - float(np.sum(a * b)) / float(np.sqrt(np.sum(a * a) * np.sum(b * b)))


def spectral(m: np.ndarray) -> float:
    return float(np.linalg.svd(m, compute_uv=False)[0])


def preacts(net: MLP, params: dict, x: torch.Tensor, mult: dict, e: int) -> list[np.ndarray]:
    """Per layer [n, n_l] arrays, built sample by sample."""
    rows = [forward_one(net, member(params, e), x[e, i] if x.dim() == 3 else x[i], mult, e)
            for i in range(x.shape[-2])]
    return [np.stack([r[l].detach().numpy() for r in rows]) for l in range(net.depth)]


def layer_inputs(net: MLP, params: dict, x: torch.Tensor, mult: dict, e: int) -> list[np.ndarray]:
    act = act_fn(net.activation)
    zs = preacts(net, params, x, mult, e)
    xe = (x[e] if x.dim() == 3 else x).numpy()
    return [xe] + [act(torch.from_numpy(z)).numpy() for z in zs[:-1]]


def loss_one(net: MLP, p: dict, x: torch.Tensor, y: torch.Tensor, mult: dict, e: int, scale: float) -> torch.Tensor:
    total = 0.0
    for i in range(x.shape[-2]):
        f = forward_one(net, p, x[i], mult, e)[-1]
        total = total + ((f - y[i]) ** 2).sum()
    return scale * total / x.shape[-2]


def hessian_top(net: MLP, params: dict, x, y, mult: dict, e: int, scale: float, lr: dict | None = None) -> float:
    """λ_max of the full Hessian (torch.autograd.functional.hessian on the flat parameters)."""
    p0 = member(params, e)
    names, shapes = list(p0), [v.shape for v in p0.values()]
    sizes = [v.numel() for v in p0.values()]
    flat = torch.cat([v.reshape(-1) for v in p0.values()])

    def f(theta):
        parts = torch.split(theta, sizes)
        return loss_one(net, {k: t.reshape(s) for k, t, s in zip(names, parts, shapes)}, x, y, mult, e, scale)
    H = torch.autograd.functional.hessian(f, flat).numpy()
    if lr is not None:
        d = np.concatenate([np.full(s, np.sqrt(float(lr[k][e]))) for k, s in zip(names, sizes)])
        H = d[:, None] * H * d[None, :]
    return float(np.linalg.eigvalsh(H)[-1])
