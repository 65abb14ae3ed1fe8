"""Two-layer linear nets: Dominé et al.'s λ-balanced solution and Kunin's isotropic dynamics vs `flow`."""
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from lazyrich import MLP, build, flow
from lazyrich.errors import LazyrichError
from lazyrich.observe.kernel import ensemble_ntk
from lazyrich.tasks import whitened_regression
from lazyrich.theory import aligned_mode, isotropic, lambda_balanced, linear_inputs, linear_ntk, overlay
from lazyrich.theory.saxe import mode_strength

from .helpers import ensemble

OBS = ["loss", "beta", "input_gram", "output_gram"]
CASES = [  # widths, λ, (rate W1, rate W2), init
    ((3, 3, 3), 0.5, (1.0, 1.0), "lambda_balanced"),
    ((3, 3, 3), -2.0, (1.0, 1.0), "lambda_balanced"),
    ((3, 3, 3), 0.0, (1.0, 1.0), "lambda_balanced"),
    ((4, 3, 3), -0.7, (1.0, 1.0), "lambda_balanced"),
    ((3, 4, 5), 1.0, (0.5, 2.0), "lambda_balanced"),
    ((5, 4, 3), -1.0, (2.0, 0.7), "lambda_balanced"),
    ((3, 2, 3), 0.6, (1.0, 1.0), "balanced_chain"),  # h < min(d, c): beyond Dominé's no-bottleneck condition
]


def _run(widths, lam, rates, init, T=10.0):
    d, h, c = widths
    data = whitened_regression(d, c, n=2 * d + 3, seed=1, noise=0.1)
    ens = build(MLP(widths, "linear"), [{"seed": 3, "lam": lam}], scheme="sp", lr=1.0, init=init,
                overrides={"W1": {"lr_scale": rates[0]}, "W2": {"lr_scale": rates[1]}})
    times = np.linspace(0, T, 11)
    run = flow(ens, data, times, observers=("loss", "linear_map"), rtol=1e-13, atol=1e-14)
    return ens, data, run, times


@pytest.mark.parametrize("widths,lam,rates,init", CASES)
def test_lambda_balanced_solution_matches_gradient_flow(widths, lam, rates, init):
    ens, data, run, times = _run(widths, lam, rates, init)
    pred = lambda_balanced(times, **linear_inputs(ens, data))
    ov = overlay(run.records(), pred, OBS)
    assert set(ov.observable) == set(OBS)
    assert ov.error.abs().max() < 1e-8
    assert np.allclose(pred["conserved_norm"], abs(lam) * np.sqrt(widths[1]))


def test_ntk_over_time_matches_the_engine_kernel():
    d, h, c = 3, 4, 5
    data = whitened_regression(d, c, n=9, seed=1, noise=0.1)
    ens = build(MLP((d, h, c), "linear"), [{"seed": 3, "lam": 1.0}], scheme="sp", lr=1.0, init="lambda_balanced",
                std_scale=0.1, overrides={"W1": {"lr_scale": 0.5}, "W2": {"lr_scale": 2.0}})
    times = np.linspace(0, 4, 9)
    run = flow(ens, data, times, observers=("kernel_distance", "ntk_ratio"), rtol=1e-13, atol=1e-14)
    kw = linear_inputs(ens, data)
    pred = lambda_balanced(times, **kw, x=data.x)
    ov = overlay(run.records(), pred, ["kernel_distance", "ntk_ratio"])
    assert set(ov.observable) == {"kernel_distance", "ntk_ratio"} and ov.error.abs().max() < 1e-8
    assert pred["kernel_distance"][-1] > 0.05  # the kernel does move here
    K = linear_ntk(pred["input_gram"][-1].reshape(d, d), pred["output_gram"][-1].reshape(c, c), data.x,
                   kw["lr1"], kw["lr2"])
    want = ensemble_ntk(run.ens, run.ens.params, data.x, "lr")[0].numpy()
    assert np.abs(K - want).max() / np.abs(want).max() < 1e-8


@pytest.mark.parametrize("widths,lam,rates,init", [CASES[1], ((5, 3, 3), 0.5, (0.7, 1.4), "lambda_balanced"), CASES[-1]])
def test_isotropic_self_consistent_dynamics_match_gradient_flow(widths, lam, rates, init):
    ens, data, run, times = _run(widths, lam, rates, init)
    ov = overlay(run.records(), isotropic(times, **linear_inputs(ens, data)), OBS)
    assert ov.error.abs().max() < 1e-8


def test_isotropic_refuses_when_a_mode_crosses_zero():
    ens, data, run, times = _run((4, 3, 3), -0.7, (1.0, 1.0), "lambda_balanced")
    with pytest.raises(LazyrichError, match="rank P = h"):
        isotropic(times, **linear_inputs(ens, data))
    lambda_balanced(times, **linear_inputs(ens, data))  # the QQᵀ solution has no such condition


def test_preconditions():
    rng = np.random.default_rng(0)
    W1, W2 = rng.normal(size=(3, 3)), rng.normal(size=(3, 3))
    with pytest.raises(LazyrichError, match="λ-balanced init"):
        lambda_balanced([0.0, 1.0], W1, W2, np.eye(3))
    data = whitened_regression(3, 3, n=9, seed=0)
    bad = type(data)(data.x * 1.1, data.y)
    ens = ensemble((3, 3, 3), {"W1": W1[None], "W2": W2[None]})
    with pytest.raises(LazyrichError, match="whitened"):
        linear_inputs(ens, bad)


@pytest.mark.parametrize("lam,want", [(0.3, 1.51083), (-0.3, 1.51083), (3.0, 1.97331), (-3.0, 1.97331)])
def test_aligned_mode_reference_values_and_ode(lam, want):
    t = np.linspace(0, 5, 26)
    a = aligned_mode(t, 2.0, 0.05, lam)
    assert abs(aligned_mode([1.0], 2.0, 0.05, lam)[0] - want) < 1e-5
    sol = solve_ivp(lambda _t, y: np.sqrt(lam**2 + 4 * y**2) * (2.0 - y), (0, 5), [0.05], t_eval=t, method="DOP853",
                    rtol=1e-13, atol=1e-14)
    assert np.abs(sol.y[0] - a).max() < 1e-10
    assert np.allclose(aligned_mode(t, 2.0, 0.05, 0.0), mode_strength(t, 2.0, 0.05)[:, 0], rtol=1e-13)


def test_aligned_modes_inside_the_full_solution():
    """A task-aligned λ-balanced init evolves mode by mode as `aligned_mode` (Thm 5.1 ⊂ Thm 4.3)."""
    s, a0, lam = np.array([2.0, 1.0, 0.5]), 0.05, 0.8
    S2 = np.sqrt((np.sqrt(lam**2 + 4 * a0**2) + lam) / 2)
    S1 = np.sqrt((np.sqrt(lam**2 + 4 * a0**2) - lam) / 2)
    rng = np.random.default_rng(1)
    U, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    V, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    R, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    W1, W2 = R @ (S1 * np.eye(3)) @ V.T, U @ (S2 * np.eye(3)) @ R.T
    t = np.linspace(0, 4, 9)
    P = lambda_balanced(t, W1, W2, U @ np.diag(s) @ V.T)["beta"].reshape(len(t), 3, 3)
    modes = np.einsum("ia,tij,jb->tab", U, P, V)
    want = np.stack([aligned_mode(t, si, a0, lam) for si in s], 1)
    assert np.abs(np.diagonal(modes, axis1=1, axis2=2) - want).max() < 1e-9
    assert np.abs(modes - np.einsum("tk,kl->tkl", want, np.eye(3))).max() < 1e-9
