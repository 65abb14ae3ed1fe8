"""1-D-data two-layer linear net: closed form vs `flow` for every mechanism, χ, phase boundary, rate."""
import numpy as np
import pytest
import torch

from lazyrich import flow
from lazyrich.errors import LazyrichError
from lazyrich.observe import Data
from lazyrich.theory import laziness, mechanism, mechanism_case, one_d, one_d_inputs, overlay, phase, phase_exponent
from lazyrich.theory.one_d import final_ntk_ratio, ntk_ratio_estimate, rate

from .helpers import ensemble

OBS = ["loss", "output", "zeta", "ntk_ratio", "u_norm", "w_norm", "delta_k", "kernel_distance"]


def _data(d: int, y_star: float, n: int = 9, seed: int = 0) -> Data:
    """x_i = z_i·n with mean z² = 1 and mean(z y) = y_* (plus noise orthogonal to z)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    z /= np.sqrt(np.mean(z * z))
    direction = rng.normal(size=d)
    direction /= np.linalg.norm(direction)
    noise = rng.normal(size=n)
    noise -= z * np.mean(z * noise)
    return Data(torch.tensor(np.outer(z, direction)), torch.tensor((y_star * z + 0.1 * noise)[:, None]))


@pytest.mark.parametrize("name", ["alignment", "disalignment", "rescaling", "kernel"])
def test_closed_form_matches_flow_for_each_mechanism(name):
    """d = 1 inputs so the `balance` observer's zeta is the signed cos∠(u, w); γ enters as the readout
    multiplier and the rates differ."""
    case = mechanism_case(name, h=16, seed=1)
    gamma, lr_u, lr_w = 1.3, 0.7, 1.6
    data = _data(1, case["y_star"] * gamma)
    u0, w0 = case["u0"], case["w0"]
    ens = ensemble((1, 16, 1), {"W1": w0[None, :, None], "W2": u0[None, None, :]}, {"W2": [lr_u], "W1": [lr_w]})
    ens.multipliers["W2"] = torch.tensor([gamma], dtype=torch.float64)
    times = np.linspace(0, 12, 25)
    run = flow(ens, data, times, observers=("loss", "one_d", "balance", "ntk_ratio", "conserved", "kernel_distance"),
               rtol=1e-14, atol=1e-15)  # the closed form matches scipy's DOP853 to 1e-14; this keeps the engine's error < 1e-9
    ov = overlay(run.records(), one_d(times, **one_d_inputs(ens, data)), OBS)
    assert set(ov.observable) == set(OBS)
    rel = ov.error.abs() / np.maximum(1, ov.predicted.abs())
    assert rel.max() < 1e-8, ov.loc[rel.idxmax(), ["observable", "step", "value", "predicted"]].to_dict()


@pytest.mark.parametrize("name", ["alignment", "disalignment", "rescaling", "kernel"])
def test_named_mechanisms_behave_as_stated(name):
    case = mechanism_case(name, h=64, seed=2)
    assert mechanism(**case) == name
    pred = one_d(np.linspace(0, 30, 61), **case)
    zeta = pred["zeta"]
    if name == "alignment":  # |ζ| rises from O(h^{-1/2}) toward 1
        assert abs(zeta[0]) < 0.5 and abs(zeta[-1]) > 0.9
    if name == "disalignment":  # |ζ| falls
        assert abs(zeta[-1]) < abs(zeta[0]) - 0.2
    if name == "rescaling":  # ζ stays 1 while the norms change
        assert np.abs(zeta - 1).max() < 1e-12 and abs(pred["u_norm"][-1] / pred["u_norm"][0] - 1) > 0.5
    if name == "kernel":  # the NTK barely moves
        assert np.abs(pred["ntk_ratio"] - 1).max() < 0.05
    assert abs(pred["output"][-1] - case["y_star"] * case["gamma"] / case["gamma"]) < 1e-6


def test_rank_one_inputs_in_several_dimensions():
    rng = np.random.default_rng(4)
    h, d = 12, 3
    data = _data(d, -0.8)
    W1, u = 0.3 * rng.normal(size=(h, d)), 0.3 * rng.normal(size=h)
    ens = ensemble((d, h, 1), {"W1": W1[None], "W2": u[None, None]}, {"W2": [1.0], "W1": [2.5]})
    times = np.linspace(0, 10, 11)
    run = flow(ens, data, times, observers=("loss", "one_d"), rtol=1e-13, atol=1e-14)
    ov = overlay(run.records(), one_d(times, **one_d_inputs(ens, data)), ["loss", "output", "u_norm", "w_norm"])
    assert ov.error.abs().max() < 1e-8


def test_late_time_rate():
    case = mechanism_case("alignment", h=16, seed=1)
    t = np.linspace(8, 12, 3)
    pred = one_d(t, **case)
    gap = np.abs(pred["output"] - case["y_star"])
    fitted = -np.diff(np.log(gap)) / np.diff(t)
    lam = rate(case["u0"], case["w0"], case["gamma"], case["y_star"])
    assert np.abs(fitted / lam - 1).max() < 1e-3


def test_laziness_number_predicts_the_ntk_ratio():
    """χ from the init scales alone vs the exact final NTK ratio of random inits (h = 4096)."""
    rng = np.random.default_rng(0)
    h = 4096
    for gamma, su, sw, lu, lw in [(1 / h, 1.0, 1.0, 1.0, 1.0), (0.3 / h, 1.0, 0.5, 1.0, 3.0), (3 / h, 1.0, 1.0, 1.0, 1.0)]:
        u0, w0 = su * rng.normal(size=h), sw * rng.normal(size=h)
        chi = laziness(h, gamma, 1.0, su, sw, lu, lw)
        got = final_ntk_ratio(u0, w0, gamma, 1.0, lu, lw)
        assert abs(got / ntk_ratio_estimate(chi) - 1) < 0.03


@pytest.mark.parametrize("a,b,slope", [(0.5, 0.0, 0.5), (1.0, 0.0, 0.0), (1.0, 1.5, -1.5)])
def test_phase_exponent_matches_chi_over_widths(a, b, slope):
    """χ(h) measured on sampled inits (||u||², ||w||², |p₀| from the draws) scales as h^e."""
    rng = np.random.default_rng(1)
    hs = np.array([64, 256, 1024, 4096])
    chis = []
    for h in hs:
        gamma, s2 = h ** (-a), h ** (-b)
        u, w = np.sqrt(s2) * rng.normal(size=h), np.sqrt(s2) * rng.normal(size=h)
        K = (u @ u + w @ w) ** 2 - 4 * (u @ w) ** 2
        chis.append(np.sqrt(K) * gamma / 2)  # √K/(2|p_*|), p_* = 1/γ
    fit = np.polyfit(np.log(hs), np.log(chis), 1)[0]
    assert abs(fit - phase_exponent(a, b, b)) < 0.05 and phase_exponent(a, b, b) == slope
    assert phase(a, b, b) == {0.5: "kernel", 0.0: "boundary", -1.5: "feature"}[slope]


def test_preconditions():
    rng = np.random.default_rng(0)
    data = Data(torch.tensor(rng.normal(size=(6, 3))), torch.tensor(rng.normal(size=(6, 1))))
    ens = ensemble((3, 4, 1), {"W1": rng.normal(size=(1, 4, 3)), "W2": rng.normal(size=(1, 1, 4))})
    with pytest.raises(LazyrichError, match="1-D data"):
        one_d_inputs(ens, data)
    with pytest.raises(LazyrichError, match="same width"):
        one_d([0.0], np.ones(3), np.ones(4), 1.0, 1.0)
