"""Atanasov et al.: sharpness of the deep-linear toy model at convergence and the lr law in γ."""
import numpy as np
import pytest
import torch

from lazyrich import flow, train
from lazyrich.observe import Data
from lazyrich.theory import lr_law, toy_max_lr, toy_sharpness
from lazyrich.theory.atanasov import lr_exponent, sharpness_exponent

from .helpers import ensemble

Y = 1.5
DATA = Data(torch.tensor([[1.0]], dtype=torch.float64), torch.tensor([[Y]], dtype=torch.float64))


def _chain(depth: int, gamma: float, w0: float, lr: float = 1.0, gd: bool = False):
    """Toy chain f = (1/γ)∏w_l; `lr` is the GD step (gd) or the GF rate of every layer."""
    params = {f"W{l}": np.full((1, 1, 1), w0) for l in range(1, depth + 1)}
    if gd:
        ens = ensemble((1,) * (depth + 1), params, base_lr=lr)
    else:
        ens = ensemble((1,) * (depth + 1), params, {f"W{l}": [lr] for l in range(1, depth + 1)})
    ens.multipliers[f"W{depth}"] = torch.tensor([1 / gamma], dtype=torch.float64)
    return ens


def _sharpness(ens, centred: bool) -> float:
    """Top eigenvalue of the loss Hessian in the raw weights, by autograd (reference)."""
    depth = ens.net.depth
    w = torch.tensor([float(ens.params[f"W{l}"]) for l in range(1, depth + 1)], dtype=torch.float64)
    center = float(torch.prod(torch.tensor([float(ens.center[f"W{l}"]) for l in range(1, depth + 1)]))) if centred else 0.0
    g = float(1 / ens.multipliers[f"W{depth}"][0])

    def loss(v: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((torch.prod(v) - center) / g - Y) ** 2

    return float(torch.linalg.eigvalsh(torch.autograd.functional.hessian(loss, w))[-1])


@pytest.mark.parametrize("depth", [2, 3])
def test_sharpness_at_convergence_large_gamma(depth):
    gammas = np.array([10.0, 100.0, 1000.0])
    got = []
    for g in gammas:
        ens = _chain(depth, g, 0.3 * (g * Y) ** (1 / depth), lr=lr_law(g, depth))  # η ∝ γ^{2/L} keeps the time scale
        run = flow(ens, DATA, [0.0, 15.0], observers=("loss",), rtol=1e-12, atol=1e-14)
        assert float(run.final("loss")["loss"][0]) < 1e-20
        got.append(_sharpness(run.ens, False))
        assert abs(got[-1] / toy_sharpness(g, depth, Y) - 1) < 1e-8
    slope = np.polyfit(np.log(gammas), np.log(got), 1)[0]
    assert abs(slope - sharpness_exponent(100.0, depth)) < 0.02


@pytest.mark.parametrize("depth", [2, 3])
def test_sharpness_small_gamma_needs_the_centred_model(depth):
    gammas = np.array([0.003, 0.01, 0.03])
    got = []
    for g in gammas:
        ens = _chain(depth, g, 1.0, lr=lr_law(g, depth)).centered()
        run = flow(ens, DATA, [0.0, 15.0], observers=("loss",), rtol=1e-12, atol=1e-14)
        assert float(run.final("loss")["loss"][0]) < 1e-20
        got.append(_sharpness(run.ens, True))
        assert abs(got[-1] / toy_sharpness(g, depth, Y, centred=True) - 1) < 1e-8
    slope = np.polyfit(np.log(gammas), np.log(got), 1)[0]
    assert abs(slope - sharpness_exponent(0.01, depth)) < 0.05
    assert lr_exponent(0.01, depth) == 2.0 and lr_exponent(100.0, depth) == 2.0 / depth


def test_gradient_descent_is_stable_below_two_over_sharpness():
    g, depth = 100.0, 2
    w_star = (g * Y) ** (1 / depth)
    eta = toy_max_lr(g, depth, Y)
    finals = {}
    for factor in (0.95, 1.05):
        ens = _chain(depth, g, w_star * (1 + 1e-4), lr=factor * eta, gd=True)
        run = train(ens, DATA, 400, record=[0, 400], observers=("loss",))
        finals[factor] = float(run.final("loss")["loss"][0]) / float(run.records().query("step == 0").value.iloc[0])
    assert finals[0.95] < 1e-3 < 1e3 < finals[1.05]
