"""The linearized baseline against a flat-parameter GD reference built from a brute-force Jacobian, and
against kernel regression with the lr-weighted NTK at init (f_{k+1} − y = (I − (2s/n)K₀)(f_k − y))."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lazyrich import MLP, Data, build, flow, train
from lazyrich.errors import LazyrichError
from lazyrich.observe.kernel import ensemble_ntk
from lazyrich.observe.linearized import linearize

from . import observe_ref as ref

torch.set_num_threads(1)
F64 = torch.float64


def setup(wd=0.0, bias=True, center=False):
    g = torch.Generator().manual_seed(6)
    x, xt = torch.randn(9, 3, generator=g, dtype=F64), torch.randn(5, 3, generator=g, dtype=F64)
    f = lambda z: torch.stack([torch.sin(z[:, 0]), z[:, 1] * z[:, 2]], 1)  # noqa: E731
    data = Data(x, f(x), xt, f(xt))
    ens = build(MLP((3, 5, 4, 2), activation="tanh", bias=bias),
                [{"seed": 0, "lr": 0.2}, {"seed": 4, "lr": 0.05}], scheme="mup", weight_decay=wd)
    return (ens.centered() if center else ens), data


def flat_reference(ens, data, steps, e):
    """GD on f0 + J0Δ in flat parameter space for member e, with coupled weight decay; returns
    the linearized predictions on train and test after `steps`."""
    names = list(ens.params)
    J, Jt = (ref.jacobian(ens.net, ens.params, x, ens.multipliers, e, names).numpy() for x in (data.x, data.x_test))
    f0, f0t = (ref_predict(ens, x, e) for x in (data.x, data.x_test))
    theta0 = np.concatenate([ens.params[k][e].numpy().ravel() for k in names])
    eta = np.concatenate([np.full(ens.params[k][e].numel(), float(ens.lr[k][e])) for k in names])
    kappa = np.concatenate([np.full(ens.params[k][e].numel(), float(ens.weight_decay[k][e])) for k in names])
    y, n = data.y.numpy().ravel(), data.x.shape[0]
    delta = np.zeros_like(theta0)
    for _ in range(steps):
        r = 2 * ens.loss_scale / n * (f0 + J @ delta - y)
        delta = delta - eta * (J.T @ r + kappa * (theta0 + delta))
    return f0 + J @ delta, f0t + Jt @ delta


def ref_predict(ens, x, e):
    out = np.stack([ref.forward_one(ens.net, ref.member(ens.params, e), xi, ens.multipliers, e)[-1].detach().numpy()
                    for xi in x]).ravel()
    if ens.center is not None:
        out -= np.stack([ref.forward_one(ens.net, ref.member(ens.center, e), xi, ens.multipliers, e)[-1].detach().numpy()
                         for xi in x]).ravel()
    return out


@pytest.mark.parametrize("wd,center", [(0.0, False), (0.03, True)])
def test_linearized_observer_matches_flat_parameter_gd(wd, center):
    ens, data = setup(wd=wd, center=center)
    run = train(ens, data, 40, record=[0, 7, 40], observers=["linearized"])
    r = run.records()
    get = lambda obs, step: r[(r.observable == obs) & (r.step == step)].sort_values("member").value.to_numpy()  # noqa: E731
    assert np.all(get("linear_distance", 0) == 0)
    for e in range(2):
        f_lin, f_lin_t = flat_reference(ens, data, 40, e)
        f_net = ref_predict(run.ens, data.x, e)
        y, yt = data.y.numpy().ravel(), data.y_test.numpy().ravel()
        assert abs(get("linear_loss", 40)[e] - ens.loss_scale * np.sum((f_lin - y) ** 2) / 9) < 1e-12
        assert abs(get("linear_test_loss", 40)[e] - ens.loss_scale * np.sum((f_lin_t - yt) ** 2) / 5) < 1e-12
        assert abs(get("linear_distance", 40)[e] - np.sqrt(np.sum((f_net - f_lin) ** 2) / 9)) < 1e-12
        f_net_t = ref_predict(run.ens, data.x_test, e)
        assert abs(get("linear_test_distance", 40)[e] - np.sqrt(np.sum((f_net_t - f_lin_t) ** 2) / 5)) < 1e-12


def test_linearized_gd_is_kernel_regression_with_the_init_ntk():
    ens, data = setup(wd=0.0, bias=False)
    run = train(ens, data, 25, record=[25], observers=["linearized"])
    K0 = ensemble_ntk(ens, ens.params, data.x, "lr").numpy()  # lr-weighted, [E, n·c, n·c]
    r = run.records()
    got = r[(r.observable == "linear_loss")].sort_values("member").value.to_numpy()
    for e in range(2):
        f, y = ref_predict(ens, data.x, e), data.y.numpy().ravel()
        step = np.eye(18) - 2 * ens.loss_scale / 9 * K0[e]
        for _ in range(25):
            f = y + step @ (f - y)
        assert abs(got[e] - ens.loss_scale * np.sum((f - y) ** 2) / 9) < 1e-12


def test_linearization_tangent_and_gradient_match_the_jacobian():
    ens, data = setup()
    g = torch.Generator().manual_seed(1)
    delta = {k: torch.randn(v.shape, generator=g, dtype=F64) for k, v in ens.params.items()}
    r = torch.randn(2, 9, 2, generator=g, dtype=F64)
    lin = linearize(ens, ens.params, data.x)
    f, grads = lin.predict(delta).numpy(), lin.gradient(r)
    names = list(ens.params)
    for e in range(2):
        J = ref.jacobian(ens.net, ens.params, data.x, ens.multipliers, e, names).numpy()
        d = np.concatenate([delta[k][e].numpy().ravel() for k in names])
        np.testing.assert_allclose(f[e].ravel(), ref_predict(ens, data.x, e) + J @ d, rtol=0, atol=1e-13)
        want = J.T @ r[e].numpy().ravel()
        got = np.concatenate([grads[k][e].numpy().ravel() for k in names])
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-13)


def test_lazy_training_stays_on_the_linearization_and_rich_does_not():
    """Kunin init at τ = 3 (lazy) vs τ = 0.1 (rich), balanced (δ = 0), lr ∝ 1/τ² as in Kunin Fig. 1."""
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(30, 5, generator=g, dtype=F64), dim=1)
    data = Data(x, torch.relu(x[:, :1]) - torch.relu(-x[:, 1:2]))
    rows = [{"seed": 1, "tau": tau, "delta": 0.0, "lr": 0.1 / tau**2} for tau in (3.0, 0.1)]
    ens = build(MLP((5, 20, 1), activation="relu"), rows, init="kunin")
    run = train(ens, data, 400, record=[400], observers=["loss", "linearized"])
    r = run.records().set_index(["observable", "member"]).value
    rel = [r["linear_distance", e] / np.sqrt(np.mean(data.y.numpy() ** 2)) for e in range(2)]
    assert rel[0] < 1e-3 and rel[1] > 0.05 and rel[1] > 100 * rel[0], rel  # lazy tracks f_lin, rich leaves it


def test_linearized_observer_refuses_gradient_flow():
    ens, data = setup()
    with pytest.raises(LazyrichError, match="constant schedule"):
        flow(ens, data, [0.0, 0.37], observers=["linearized"])
