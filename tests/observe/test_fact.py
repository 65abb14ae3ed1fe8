"""FACT and the AGOP / neural feature ansatz against per-sample autograd references, and the FACT
identity W_lᵀW_l = FACT_l at a converged weight-decayed critical point (theory/experiments.md §8, T6.1)."""
from __future__ import annotations

import numpy as np
import torch

from lazyrich import MLP, Data, build, train
from lazyrich.conventions import mse
from lazyrich.ensemble import predict
from lazyrich.observe import State
from lazyrich.observe.fact import Agop, Fact, agop, matrix_correlation, psd_power

from . import observe_ref as ref

torch.set_num_threads(1)
F64 = torch.float64


def from_layer(net, p, h, l, mult, e):
    """f on a layer-l input h (h = h_{l−1}), one member, one sample."""
    act = ref.act_fn(net.activation)
    for k in range(l, net.depth + 1):
        z = ref.mult_of(mult, e, f"W{k}") * (p[f"W{k}"] @ h)
        if f"b{k}" in p:
            z = z + p[f"b{k}"]
        h = act(z) if k < net.depth else z
    return h


def setup(wd=(0.02, 0.0)):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(10, 4, generator=g, dtype=F64)
    data = Data(x, torch.stack([torch.tanh(x[:, 0] * x[:, 1]), x[:, 2]], 1))
    ens = build(MLP((4, 6, 5, 2), activation="tanh", bias=True),
                [{"seed": 0, "weight_decay": wd[0], "lr": 0.2}, {"seed": 9, "weight_decay": wd[1], "lr": 0.1}], scheme="ntp")
    return train(ens, data, 20, record=[], observers=()).ens, data


def observe(ens, data, observer):
    st = State(ens, ens.params, data, 0, torch.zeros(ens.size, dtype=F64))
    return {(o.observable, o.layer): o.value for o in observer(st)}


def test_fact_matches_the_per_sample_formula_and_is_nan_without_weight_decay():
    ens, data = setup()
    got = observe(ens, data, Fact())
    e, kappa, n = 0, 0.02, data.x.shape[0]
    p = {k: v.requires_grad_(False) for k, v in ref.member(ens.params, e).items()}
    for l, name in enumerate(ens.net.names, start=1):
        hs = ref.layer_inputs(ens.net, ens.params, data.x, ens.multipliers, e)[l - 1]
        fact = np.zeros((hs.shape[1], hs.shape[1]))
        for i in range(n):  # −(1/(nκ)) Σ_i ∇_h ℓ_i h_iᵀ with ℓ_i = s‖f_i − y_i‖²
            h = torch.tensor(hs[i], requires_grad=True)
            loss_i = ens.loss_scale * ((from_layer(ens.net, p, h, l, ens.multipliers, e) - data.y[i]) ** 2).sum()
            (gh,) = torch.autograd.grad(loss_i, h)
            fact -= np.outer(gh.numpy(), hs[i]) / (n * kappa)
        w = ens.params[name][e].numpy()
        gram = w.T @ w
        assert abs(float(got["fact_residual", name][e]) - np.linalg.norm(gram - fact) / np.linalg.norm(gram)) < 1e-12
        assert abs(float(got["fact_asymmetry", name][e]) - np.linalg.norm(fact - fact.T) / np.linalg.norm(fact)) < 1e-12
        assert abs(float(got["fact_correlation", name][e]) - np.corrcoef(gram.ravel(), fact.ravel())[0, 1]) < 1e-12
        assert torch.isnan(got["fact_residual", name][1])  # member 1 has κ = 0: FACT is undefined


def test_fact_holds_at_a_converged_weight_decayed_critical_point():
    """experiments.md T6.1: 2-layer tanh net (n = 20, d = 4, h = 6), κ = 1e-2, minimised to a tiny gradient
    norm: residual < 1e-5 and asymmetry < 1e-5 for every layer (residual ∝ ‖∇L_κ‖/κ)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 4, generator=g, dtype=F64)
    data = Data(x, torch.tanh(x @ torch.randn(4, 1, generator=g, dtype=F64)))
    ens = build(MLP((4, 6, 1), activation="tanh"), [{"seed": 1}], weight_decay=1e-2)
    names, shapes = list(ens.params), [v.shape for v in ens.params.values()]
    sizes = [v.numel() for v in ens.params.values()]

    def objective(flat):  # L + κ/2 ‖θ‖², the loss coupled weight decay descends
        p = {k: t.reshape(sh) for k, t, sh in zip(names, torch.split(flat, sizes), shapes)}
        return mse(predict(ens, p, data.x), data.y, ens.loss_scale).sum() + 0.5e-2 * flat.pow(2).sum()
    flat = train(ens, data, 3000, record=[], observers=()).ens.params  # GD into the basin (lr 0.1)
    flat = torch.cat([flat[k].reshape(-1) for k in names])
    mu = 1e-3
    for _ in range(100):  # then damped Newton (Levenberg–Marquardt: only downhill steps) to machine precision
        grad = torch.autograd.functional.jacobian(objective, flat)
        if float(grad.norm()) < 1e-12:
            break
        hess = torch.autograd.functional.hessian(objective, flat)
        trial = flat - torch.linalg.solve(hess + mu * torch.eye(flat.numel(), dtype=F64), grad)
        if objective(trial) <= objective(flat):
            flat, mu = trial, mu / 10
        else:
            mu *= 10
    grad_norm = float(torch.autograd.functional.jacobian(objective, flat).norm())
    assert grad_norm < 1e-9 and float(flat.norm()) > 1  # a nontrivial minimum, not the saddle θ = 0
    theta = {k: t.reshape(sh) for k, t, sh in zip(names, torch.split(flat, sizes), shapes)}
    got = observe(ens.with_params(theta), data, Fact())
    for name in ("W1", "W2"):
        assert float(got["fact_residual", name]) < 1e-5
        assert float(got["fact_asymmetry", name]) < 1e-5
        assert float(got["fact_correlation", name]) > 1 - 1e-8


def test_agop_matches_per_sample_input_gradients():
    ens, data = setup()
    mats = agop(ens.net, ens.params, data.x, ens.multipliers)
    got = observe(ens, data, Agop(power=0.5))
    assert ("agop_correlation", "W3") not in got  # readout: AGOP = m²WᵀW identically
    for e in range(2):
        p = ref.member(ens.params, e)
        for l in (1, 2, 3):
            hs = ref.layer_inputs(ens.net, ens.params, data.x, ens.multipliers, e)[l - 1]
            want = np.zeros((hs.shape[1], hs.shape[1]))
            for h in hs:
                J = torch.autograd.functional.jacobian(lambda v: from_layer(ens.net, p, v, l, ens.multipliers, e),
                                                       torch.tensor(h)).numpy()  # [c, n_{l−1}]
                want += J.T @ J / len(hs)
            np.testing.assert_allclose(mats[l - 1][e].numpy(), want, rtol=0, atol=1e-13 * np.abs(want).max())
            if l < 3:
                ev, vec = np.linalg.eigh(want)
                root = (vec * np.sqrt(np.clip(ev, 0, None))) @ vec.T
                w = ens.params[f"W{l}"][e].numpy()
                c = np.corrcoef((w.T @ w).ravel(), root.ravel())[0, 1]
                assert abs(float(got["agop_correlation", f"W{l}"][e]) - c) < 1e-10


def test_matrix_correlation_and_psd_power():
    a = torch.tensor([[2.0, 1.0], [1.0, 3.0]], dtype=F64)
    assert abs(float(matrix_correlation(a, 2 * a + 1)) - 1) < 1e-15  # Pearson: affine invariant
    assert abs(float(matrix_correlation(a, a, centered=False)) - 1) < 1e-15
    r = psd_power(a, 0.5)
    assert torch.allclose(r @ r, a, atol=1e-14)
