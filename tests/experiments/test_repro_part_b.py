"""Quick-size runs of the gamma-lr and fact reproductions (exit code, claims.json schema, outputs) and
checks of their helpers against independent computations."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lazyrich.ensemble import build
from lazyrich.experiments import fact as fact_mod
from lazyrich.experiments import gamma_lr
from lazyrich.experiments.base import get
from lazyrich.experiments.runner import reproduce
from lazyrich.models import MLP

from .quick_checks import check_quick_outcome

NAMES = ["gamma-lr", "fact"]


@pytest.fixture(scope="module", params=NAMES)
def outcome(request, tmp_path_factory):
    torch.set_num_threads(1)
    return reproduce(request.param, quick=True, out=tmp_path_factory.mktemp(request.param))


@pytest.mark.quick_repro
def test_quick_run_passes_with_schema(outcome):
    check_quick_outcome(outcome)


def test_registered_with_sizes():
    for name in NAMES:
        exp = get(name)
        assert set(exp.sizes) == {"quick", "full"} and set(exp.runtime) == {"quick", "full"}


def test_escape_steps_matches_euler_integration():
    """The quadrature of the plateau length equals a fine explicit-Euler integration of dv/dt = (y − v^L)v^{L−1}."""
    L, y, gamma, eta0 = 3, 1.0, 1e3, 0.05
    v, t, dt = gamma ** (-1 / L), 0.0, 1e-4
    while (y - v**L) ** 2 > y**2 / 2:
        v += dt * (y - v**L) * v ** (L - 1)
        t += dt
    assert gamma_lr.escape_steps(gamma, L, y, eta0) == pytest.approx(t / eta0, rel=1e-3)


def test_crossing_interpolates():
    step = np.arange(5.0)
    loss = np.array([1.0, 0.9, 0.7, 0.3, 0.1])
    assert gamma_lr.crossing(step, loss, 0.5) == pytest.approx(2.5)
    assert math.isnan(gamma_lr.crossing(step, loss, 0.01))


def test_fact_residual_is_regularised_gradient_ratio():
    """FACT residual = ‖Wᵀ(∇L + κW)‖/(κ‖WᵀW‖), computed here with autograd from scratch."""
    x, y = fact_mod.diabetes(16, "cpu")
    ens = build(MLP((10, 8, 1), "tanh"), [{"seed": 3}], scheme="sp", lr=1.0)
    kappa = 0.03
    _, res = fact_mod.measure(ens, ens.params, x, y, kappa)
    w1 = ens.params["W1"][0].clone().requires_grad_(True)
    w2 = ens.params["W2"][0].clone().requires_grad_(True)
    m = ens.multipliers
    f = (m["W2"][0] * torch.tanh(m["W1"][0] * x @ w1.T) @ w2.T)
    loss = 0.5 * ((f - y) ** 2).sum(-1).mean()
    g1, g2 = torch.autograd.grad(loss, [w1, w2])
    for w, g, name in ((w1, g1, "W1"), (w2, g2, "W2")):
        w = w.detach()
        want = torch.linalg.matrix_norm(w.T @ (g + kappa * w)) / (kappa * torch.linalg.matrix_norm(w.T @ w))
        assert res[name][0] == pytest.approx(float(want), rel=1e-10)
