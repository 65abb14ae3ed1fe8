"""Balance instruments against numpy and against balance theory: a balanced chain (Q_l = 0) has equal
lr-scaled singular values and ζ = 1, at init and along gradient flow (theory/balancedness.md)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lazyrich import MLP, Data, build, flow, train
from lazyrich.errors import LazyrichError
from lazyrich.observe.balance import zeta

torch.set_num_threads(1)
F64 = torch.float64


def table(run):
    r = run.records()
    return lambda obs, layer, step: r[(r.observable == obs) & (r.layer == layer) & (r.step == step)].sort_values(
        ["member", "index"]).value.to_numpy()


def test_scaled_singular_values_and_zeta_against_numpy():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(10, 4, generator=g, dtype=F64)
    ens = build(MLP((4, 6, 5, 2), activation="tanh"), [{"seed": 1, "lr": 0.2}, {"seed": 2, "lr": 0.05}], scheme="mup")
    run = train(ens, Data(x, torch.cos(x[:, :2])), 10, record=[10], observers=[__import__(
        "lazyrich.observe.balance", fromlist=["Balance"]).Balance(k=2)])
    get = table(run)
    for e in range(2):
        svs = {}
        for name in ens.net.names:
            w = run.ens.params[name][e].numpy()
            svs[name] = np.linalg.svd(w, compute_uv=False) / math.sqrt(float(ens.lr[name][e]))
            got = get("scaled_singular_values", name, 10).reshape(2, -1)[e]
            np.testing.assert_allclose(got, svs[name], rtol=1e-12, atol=0)
        for l in (1, 2):
            lo, up = run.ens.params[f"W{l}"][e].numpy(), run.ens.params[f"W{l + 1}"][e].numpy()
            u = np.linalg.svd(lo)[0][:, :2]
            v = np.linalg.svd(up)[2][:2].T
            overlap = sum((u[:, i] @ v[:, j]) ** 2 for i in range(2) for j in range(2))
            assert abs(get("zeta", f"W{l}-W{l + 1}", 10)[e] - math.sqrt(overlap / 2)) < 1e-12
            a, b = svs[f"W{l}"], svs[f"W{l + 1}"]
            r = min(a.size, b.size)
            gap = np.max(np.abs(a[:r] - b[:r])) / max(a[0], b[0])
            assert abs(get("singular_value_gap", f"W{l}-W{l + 1}", 10)[e] - gap) < 1e-12


def test_balanced_chain_stays_balanced_and_aligned_under_gradient_flow():
    widths = (5, 3, 3, 3)  # k = 2 of 3 directions: ζ = 1 is a real alignment, not the whole space
    ens = build(MLP(widths, activation="linear"), [{"seed": 0, "lam": 0.0}, {"seed": 1, "lam": 0.0}],
                init="balanced_chain", scheme="mup", lr=0.5)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(12, 5, generator=g, dtype=F64)
    data = Data(x, x[:, :3] @ torch.randn(3, 3, generator=g, dtype=F64))
    from lazyrich.observe.balance import Balance
    run = flow(ens, data, [0.0, 0.5, 2.0], observers=[Balance(k=2)], rtol=1e-11, atol=1e-13)
    get = table(run)
    for step in (0, 1, 2):
        for pair in ("W1-W2", "W2-W3"):
            assert np.all(get("singular_value_gap", pair, step) < 1e-8), (step, pair)
            assert np.allclose(get("zeta", pair, step), 1.0, atol=1e-8), (step, pair)
    # an unbalanced Gaussian init has neither property
    rough = train(build(MLP(widths, activation="linear"), [{"seed": 0}], scheme="sp"), data, 0, record=[0],
                  observers=[Balance(k=2)])
    get = table(rough)
    assert get("singular_value_gap", "W1-W2", 0)[0] > 0.05 and get("zeta", "W1-W2", 0)[0] < 0.99


def test_zeta_of_the_one_dimensional_model_is_the_signed_cosine():
    w = torch.tensor([[[1.0], [2.0], [-1.0]]], dtype=F64)  # W1: [1, h=3, d=1]
    u = torch.tensor([[[-2.0, 1.0, 0.5]]], dtype=F64)  # W2: [1, c=1, h=3]
    want = float((w[0, :, 0] @ u[0, 0]) / (w.norm() * u.norm()))
    assert abs(float(zeta(w, u)) - want) < 1e-15 and want < 0
    with pytest.raises(LazyrichError, match="positive"):
        zeta(w, u, k=0)
    with pytest.raises(LazyrichError, match="do not chain"):
        zeta(w, torch.ones(1, 1, 2, dtype=F64))
