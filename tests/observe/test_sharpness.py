"""Sharpness against the full Hessian (torch.autograd.functional.hessian, eigvalsh) and against the
closed form of a linear model, where H = (2s/n) XᵀX ⊗ I_c."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lazyrich import MLP, Data, build, train
from lazyrich.errors import LazyrichError
from lazyrich.observe.sharpness import hessian_vector_product, sharpness

from . import observe_ref as ref

torch.set_num_threads(1)
F64 = torch.float64


def small():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(8, 3, generator=g, dtype=F64)
    data = Data(x, torch.sin(x[:, :2]))
    ens = build(MLP((3, 4, 2), activation="tanh", bias=True), [{"seed": 0, "lr": 0.3}, {"seed": 7, "lr": 0.1}],
                scheme="mup", loss_scale=0.5)
    run = train(ens, data, 30, record=[], observers=())
    return run.ens, data


def test_lanczos_with_full_krylov_space_is_exact_and_batched_over_members():
    ens, data = small()
    P = sum(v[0].numel() for v in ens.params.values())  # 3·4 + 4 + 4·2 = 24
    for pre in (False, True):
        got = sharpness(ens, ens.params, data.x, data.y, iters=P, preconditioned=pre)
        for e in range(2):
            want = ref.hessian_top(ens.net, ens.params, data.x, data.y, ens.multipliers, e, 0.5, ens.lr if pre else None)
            assert abs(float(got[e]) - want) < 1e-10 * max(1.0, abs(want)), (pre, e)


def test_hvp_matches_finite_differences_and_short_runs_converge():
    ens, data = small()
    v = torch.randn(2, 24, generator=torch.Generator().manual_seed(0), dtype=F64)
    hv = hessian_vector_product(ens, ens.params, data.x, data.y)(v)
    for e in range(2):  # H v by finite differences of the member's gradient (central, h = 1e-5)
        from lazyrich.dynamics import loss_and_grads
        names, sizes = list(ens.params), [t[0].numel() for t in ens.params.values()]

        def grad_at(step):
            parts = torch.split(step, sizes)
            p = {k: ens.params[k].clone() for k in names}
            for k, d in zip(names, parts):
                p[k][e] += d.reshape(p[k][e].shape)
            g = loss_and_grads(ens, p, data.x, data.y, torch.ones(2, dtype=torch.bool))[1]
            return torch.cat([g[k][e].reshape(-1) for k in names])
        fd = (grad_at(1e-5 * v[e]) - grad_at(-1e-5 * v[e])) / 2e-5
        assert torch.allclose(hv[e], fd, atol=1e-8)
    exact = sharpness(ens, ens.params, data.x, data.y, iters=24)
    assert torch.allclose(sharpness(ens, ens.params, data.x, data.y, iters=12), exact, rtol=1e-6)
    assert torch.allclose(sharpness(ens, ens.params, data.x, data.y, iters=300, method="power"), exact, rtol=1e-6)


def test_linear_model_sharpness_is_the_top_eigenvalue_of_the_input_covariance():
    g = torch.Generator().manual_seed(5)
    n, d, c, s = 20, 6, 3, 0.5
    x = torch.randn(n, d, generator=g, dtype=F64) * torch.linspace(0.5, 2.0, d, dtype=F64)
    ens = build(MLP((d, c), activation="linear"), [{"seed": 0}, {"seed": 1}], loss_scale=s)
    want = float(torch.linalg.eigvalsh(2 * s / n * x.T @ x)[-1])  # H = (2s/n) XᵀX ⊗ I_c
    run = train(ens, Data(x, torch.zeros(n, c, dtype=F64)), 0, record=[0], observers=["sharpness"])
    got = run.records().value.to_numpy()
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_sharpness_rejects_bad_options():
    ens, data = small()
    with pytest.raises(LazyrichError, match="method"):
        sharpness(ens, ens.params, data.x, data.y, method="arnoldi")
    with pytest.raises(LazyrichError, match="iters"):
        sharpness(ens, ens.params, data.x, data.y, iters=0)
