"""Single neuron (Kunin et al.): closed form vs `lazyrich.flow`, the Fig. 3 table, basins, implicit bias."""
import numpy as np
import pytest
import torch

from lazyrich import flow
from lazyrich.errors import LazyrichError
from lazyrich.observe import Data
from lazyrich.tasks import whitened_regression
from lazyrich.theory import (basin, interpolating_limit, interpolating_solution, overlay, regime, single_neuron,
                             single_neuron_inputs)
from lazyrich.theory.single_neuron import kernel_distance_from_weights, solve

from .helpers import ensemble, series

DELTAS = (-5.0, -1.0, 0.0, 1.0, 5.0)
RATES = ((1.0, 1.0), (0.5, 2.0))  # (η_a, η_w)


def _init(delta: float, lr_a: float, lr_w: float, rng: np.random.Generator, d: int) -> tuple[float, np.ndarray]:
    w = rng.normal(size=d)
    w *= np.sqrt((max(0.0, -delta) + 0.7) / lr_a) / np.linalg.norm(w)  # room for any δ
    a = np.sqrt((delta + lr_a * w @ w) / lr_w) * rng.choice([-1, 1])
    return float(a), w


def _slow_ntk(a: float, w: np.ndarray, x: np.ndarray, lr_a: float, lr_w: float) -> np.ndarray:
    """Σ_p η_p ∂f/∂θ_p ∂f/∂θ_pᵀ by autograd Jacobians, one sample at a time (reference)."""
    rows = []
    for xi in torch.tensor(x):
        at = torch.tensor(a, requires_grad=True)
        wt = torch.tensor(w, requires_grad=True)
        ga, gw = torch.autograd.grad(at * (wt @ xi), (at, wt))
        rows.append(np.concatenate([[np.sqrt(lr_a) * float(ga)], np.sqrt(lr_w) * gw.numpy()]))
    J = np.array(rows)
    return J @ J.T


@pytest.fixture(scope="module")
def simulated():
    rng = np.random.default_rng(0)
    d = 3
    data = whitened_regression(d, 1, n=7, seed=2, noise=0.3)
    cfg = [(dl, la, lw) for la, lw in RATES for dl in DELTAS]
    inits = [_init(dl, la, lw, rng, d) for dl, la, lw in cfg]
    ens = ensemble((d, 1, 1), {"W1": np.stack([w[None] for _, w in inits]), "W2": np.array([[[a]] for a, _ in inits])},
                   {"W2": [c[1] for c in cfg], "W1": [c[2] for c in cfg]})
    times = np.linspace(0, 8, 33)
    run = flow(ens, data, times, observers=("loss", "single_neuron", "linear_map", "kernel_distance", "conserved"),
               rtol=1e-12, atol=1e-13)
    return ens, data, run, times, cfg


def test_closed_form_matches_flow_for_every_delta_and_rates(simulated):
    ens, data, run, times, cfg = simulated
    recs = run.records()
    names = ["loss", "a", "w", "beta", "mu", "phi", "kernel_distance", "delta_k"]
    for e in range(len(cfg)):
        pred = single_neuron(times, **single_neuron_inputs(ens, data, e))
        ov = overlay(recs[recs.member == e], pred, names)
        assert set(ov.observable) == set(names)
        worst = ov.groupby("observable").error.apply(lambda v: v.abs().max())
        assert worst.max() < 1e-6, (cfg[e], worst.to_dict())


def test_kernel_distance_against_slow_ntk_reference(simulated):
    ens, data, run, times, cfg = simulated
    recs = run.records()
    x = data.x.numpy()
    for e in (0, 2, 7):  # δ = −5 and 0 at unit rates, δ = 0 at (0.5, 2)
        lr_a, lr_w = cfg[e][1], cfg[e][2]
        a, w = series(recs, "a", e)[:, 0], series(recs, "w", e)
        K0 = _slow_ntk(a[0], w[0], x, lr_a, lr_w)
        for k in (4, 16, 32):
            Kt = _slow_ntk(a[k], w[k], x, lr_a, lr_w)
            S = 1 - (K0 * Kt).sum() / (np.linalg.norm(K0) * np.linalg.norm(Kt))
            got = kernel_distance_from_weights(a[0], w[0], a[k:k + 1], w[k:k + 1], lr_a, lr_w)[0]
            assert abs(S - got) < 1e-12


FIG3 = {4: (0.50, 0.0015), 2: (0.95, 0.0124), 1: (1.45, 0.0501), 0: (2.65, 0.2000), -1: (5.25, 0.4864),
        -2: (9.35, 0.7133), -4: (None, 0.8713)}


def _fig3_init(delta: float) -> tuple[float, np.ndarray]:
    a0 = np.sqrt((delta + np.sqrt(delta**2 + 4)) / 2)
    return a0, np.array([-1.0, 0.0]) / a0


@pytest.mark.parametrize("delta", sorted(FIG3))
def test_fig3_table_of_kunin_et_al(delta):
    a0, w0 = _fig3_init(delta)
    t = np.round(np.arange(0, 401) * 0.05, 10)
    tr = single_neuron(t, a0, w0, [0.0, 1.0])
    first, s20 = FIG3[delta]
    hit = np.nonzero(tr["phi"] > 0.99)[0]
    assert (t[hit[0]] if len(hit) else None) == first
    assert abs(tr["kernel_distance"][-1] - s20) < 1e-4
    assert np.all(np.diff(tr["kernel_distance"]) > -1e-12)  # S grows monotonically
    if delta == -4:
        assert abs(tr["phi"][-1] - 0.9861) < 1e-4


def test_fig3_balanced_value_by_simulation_and_the_authors_bug():
    """S(0,20) = 0.2000 at δ = 0 from the engine too; the authors' notebook formula (a₀² in ||K_t||)
    would give a visibly different number, so a copied bug could not pass this test."""
    a0, w0 = _fig3_init(0.0)
    data = Data(torch.tensor(np.sqrt(2) * np.eye(2)), torch.tensor([[0.0], [np.sqrt(2)]]))  # β* = (0, 1)
    ens = ensemble((2, 1, 1), {"W1": w0[None, None], "W2": np.array([[[a0]]])})
    run = flow(ens, data, [0.0, 20.0], observers=("kernel_distance",), rtol=1e-12, atol=1e-13)
    assert abs(float(run.final("kernel_distance")["kernel_distance"][0]) - 0.2000) < 1e-4
    t = np.linspace(0, 20, 201)
    a, w = solve(t, a0, w0, [0.0, 1.0])
    ww = (w * w).sum(1)
    cross = 2 * a0**2 * a**2 + a0**2 * ww + a**2 * float(w0 @ w0) + (w @ w0) ** 2
    buggy = 1 - cross / (np.sqrt(2 * a0**4 + 2 * a0**2 * w0 @ w0 + (w0 @ w0) ** 2)
                         * np.sqrt(2 * a**4 + 2 * a0**2 * ww + ww**2))
    gap = np.abs(buggy - single_neuron(t, a0, w0, [0.0, 1.0])["kernel_distance"]).max()
    assert gap > 0.1  # the digest's 0.11 at δ = 0


def test_regime_labels():
    assert regime(2.0) == "upstream" and regime(0.0) == "balanced" and regime(-0.1) == "downstream"


def test_basin_prediction_matches_simulation_near_the_separatrix():
    """Kunin Fig. 7: β* = (1, 0.25); inits 1e-3 on either side of the separating surface."""
    bstar = np.array([1.0, 0.25])
    data = Data(torch.tensor(np.sqrt(2) * np.eye(2)), torch.tensor((np.sqrt(2) * bstar)[:, None]))
    rng = np.random.default_rng(3)
    a0s, w0s, want = [], [], []
    for delta in (0.0, -2.0, -10.0):
        for _ in range(2):
            w = rng.normal(size=2)
            w *= np.sqrt(abs(delta) + 1.0) / np.linalg.norm(w)
            # a on the separatrix: η_a wᵀβ* + a(δ + √(δ² + 4s²))/2 = 0, δ evaluated at that a (solve by iteration)
            a = 0.0
            for _ in range(200):
                dl = a * a - w @ w
                a = -2 * (w @ bstar) / (dl + np.sqrt(dl * dl + 4 * bstar @ bstar))
            for shift in (-1e-3, 1e-3):
                a0s.append(a + shift)
                w0s.append(w)
                want.append(basin(a + shift, w, bstar))
    ens = ensemble((2, 1, 1), {"W1": np.array(w0s)[:, None, :], "W2": np.array(a0s)[:, None, None]})
    run = flow(ens, data, [0.0, 200.0], observers=("single_neuron",), rtol=1e-8, atol=1e-10)
    got = np.sign(run.final("a", "W2")["a"].sort_index().to_numpy())
    assert 0 not in want
    assert list(got) == want


ALPHA = {-4: -1.242222, -2: -1.033560, -1: -0.836485, 0: -0.562376, 1: -0.406290, 2: -0.364131, 4: -0.344223}
X1, Y1, B0 = np.array([[0.5, 1.0]]), np.array([1.1]), np.array([0.4, 0.05])


def test_implicit_bias_reproduces_the_theorem_table():
    bols = np.array([0.44, 0.88])
    nvec = np.array([-0.88, 0.44]) / np.linalg.norm(bols)
    for delta, alpha in ALPHA.items():
        b = interpolating_solution(X1, Y1, B0, delta)
        assert abs((X1 @ b - Y1).item()) < 1e-12
        assert abs(float((b - bols) @ nvec) - alpha) < 1e-6
    assert np.allclose(interpolating_limit(X1, Y1, B0, True), [0.74, 0.73])
    assert np.allclose(interpolating_limit(X1, Y1, B0, False), [1.76, 0.22])
    assert np.allclose(interpolating_solution(X1, Y1, B0, 1e4), [0.74, 0.73], atol=1e-3)


@pytest.mark.parametrize("delta,lr_a,lr_w", [(-2.0, 1.0, 1.0), (0.0, 1.0, 1.0), (2.0, 1.0, 1.0), (1.0, 0.5, 2.0)])
def test_implicit_bias_matches_long_gradient_flow(delta, lr_a, lr_w):
    """Low-rank X (one data point): the flow's limit is the mirror-flow minimiser (rates included)."""
    # β₀ = a₀w₀ with η_w a₀² − η_a||w₀||² = δ: a₀² solves η_w a⁴ − δa² − η_a||β₀||² = 0
    a0 = np.sqrt((delta + np.sqrt(delta**2 + 4 * lr_a * lr_w * B0 @ B0)) / (2 * lr_w))
    ens = ensemble((2, 1, 1), {"W1": (B0 / a0)[None, None], "W2": np.array([[[a0]]])}, {"W2": [lr_a], "W1": [lr_w]})
    run = flow(ens, Data(torch.tensor(X1), torch.tensor(Y1[:, None])), [0.0, 400.0], observers=("linear_map",),
               rtol=1e-12, atol=1e-14)
    beta = run.records().query("observable == 'beta' and step == 1").sort_values("index").value.to_numpy()
    assert np.abs(beta - interpolating_solution(X1, Y1, B0, delta, lr_a, lr_w)).max() < 1e-6


def test_preconditions_raise_named_errors():
    rng = np.random.default_rng(0)
    ens = ensemble((2, 1, 1), {"W1": rng.normal(size=(1, 1, 2)), "W2": np.ones((1, 1, 1))})
    bad = Data(torch.tensor(rng.normal(size=(5, 2))), torch.tensor(rng.normal(size=(5, 1))))
    with pytest.raises(LazyrichError, match="whitened"):
        single_neuron_inputs(ens, bad)
    with pytest.raises(LazyrichError, match="zero"):
        single_neuron([0.0, 1.0], 1.0, [1.0, 0.0], [0.0, 0.0])
    with pytest.raises(LazyrichError, match="interpolation"):
        interpolating_solution(np.array([[1.0, 0.0], [2.0, 0.0]]), np.array([1.0, 1.0]), B0, 0.0)
