"""A-priori regime predictor vs the measured kernel distance on τ×δ grids of two-layer ReLU students.

Three grids, all Kunin et al.'s Fig. 1 student (symmetric init, f₀ ≡ 0, inputs on the sphere) at small
size, measured band lazy S(0,T) < 0.05, rich S > 0.3, mixed in between:
  one    d=5,  m=20, n=50,  1 teacher neuron,  τ ∈ 10^[−2, 0.5], lr 0.01/max(κ, 0.1), 8000 steps, ½·MSE
  three  the same with Kunin's 3-neuron teacher
  paper  d=20, m=20, n=200, 3 teacher neurons, the paper's ranges τ ∈ 10^[−1, 0.3] and lr 5e-3/τ²,
         10⁴ steps (its panel), loss without ½ (the authors' code)
Seeds: data seed s, student seed s + 1. The log-time relinearization was designed on s = 0…3; s = 4…7
were run once afterwards as a held-out check (docs/theory/regime.md has every grid's agreement).
"""
import functools

import numpy as np
import pytest
import torch

from lazyrich import MLP, build, train
from lazyrich.errors import LazyrichError
from lazyrich.param.init import kunin_scales
from lazyrich.tasks import teacher_student
from lazyrich.theory import (predict_regime, predict_regime_from_table, predict_regime_on_data,
                             relinearized_kernel_distance)
from lazyrich.theory.relinearized import jacobian, linearized_step, relinearized_kernel_distance_layers

GRIDS = {  # d, m, n, teacher neurons, taus, steps, lr(τ, κ), loss_scale
    "one": (5, 20, 50, 1, np.logspace(-2, 0.5, 5), 8000, lambda tau, kappa: 0.01 / max(kappa, 0.1), 0.5),
    "three": (5, 20, 50, 3, np.logspace(-2, 0.5, 5), 8000, lambda tau, kappa: 0.01 / max(kappa, 0.1), 0.5),
    "paper": (20, 20, 200, 3, np.logspace(-1, 0.3, 5), 10_000, lambda tau, kappa: 5e-3 / tau**2, 1.0),
    "tanh": (5, 20, 30, 3, np.array([0.1, 0.3, 1.0]), 20_000, lambda tau, kappa: 0.01, 0.5),  # convergence check
}
DELTAS = np.linspace(-1, 1, 5)


def _kunin_params(gen: torch.Generator, d: int, m: int, taus, lr) -> tuple[torch.Tensor, torch.Tensor, list[dict]]:
    """Kunin et al.'s symmetric init (f₀ ≡ 0) at every (τ, δ), one direction set for all cells."""
    w = torch.randn(m // 2, d, generator=gen, dtype=torch.float64)
    w = torch.cat([w, w]) / w.norm(dim=1).repeat(2)[:, None]
    a = torch.sign(torch.randn(m // 2, generator=gen, dtype=torch.float64))
    a = torch.cat([a, -a])
    tau, delta = (torch.tensor(v, dtype=torch.float64).reshape(-1) for v in np.meshgrid(taus, DELTAS, indexing="ij"))
    a_norm, w_norm = kunin_scales(tau, delta)
    kappa = torch.sqrt(delta**2 + 4 * tau**4)
    rows = [{"tau": float(t), "delta": float(dl), "lr": lr(float(t), float(kap))} for t, dl, kap in zip(tau, delta, kappa)]
    return w * w_norm[:, None, None], (a * a_norm[:, None])[:, None, :], rows


def _band(s: float) -> str:
    return "lazy" if s < 0.05 else ("rich" if s > 0.3 else "mixed")


def _agrees(measured: str, predicted: str) -> bool:
    return measured == predicted or (measured == "rich" and predicted == "ultra-rich")


def _train(name: str, data_seed: int, student_seed: int, act: str = "relu"):
    """GD (the engine, float64, one batch) on the grid's τ×δ cells: data, W1 [E, m, d], W2 [E, 1, m], rows, S(0, T)."""
    d, m, n, k, taus, steps, lr, loss_scale = GRIDS[name]
    data = teacher_student(d=d, k=k, n=n, n_test=10, seed=data_seed)
    W1, W2, rows = _kunin_params(torch.Generator().manual_seed(student_seed), d, m, taus, lr)
    ens = build(MLP((d, m, 1), act), rows, scheme="sp", loss_scale=loss_scale)
    ens = ens.with_params({"W1": W1, "W2": W2})
    for p in ens.lr:
        ens.lr[p] = ens.base_lr.clone()
        ens.multipliers[p] = torch.ones(len(rows), dtype=torch.float64)
    run = train(ens, data, steps, record=[0, steps], observers=("loss", "kernel_distance"), kernel="fused")
    assert (run.diverged_step < 0).all()
    return data, W1, W2, rows, run.final("kernel_distance")["kernel_distance"].sort_index().to_numpy()


@functools.cache
def _grid(name: str, data_seed: int = 0, student_seed: int = 1) -> dict:
    """Train the grid once; the configuration-only and the on-data predictions per cell."""
    d, m, n, k, taus, steps, lr, loss_scale = GRIDS[name]
    data, W1, W2, rows, S = _train(name, data_seed, student_seed)
    y_scale = float(data.y.pow(2).sum(1).mean().sqrt())
    x_scale = float(data.x.pow(2).sum(1).mean().sqrt())
    cells = []
    for i, (row, s) in enumerate(zip(rows, S)):
        config = predict_regime((d, m, 1), row["tau"], row["delta"], y_scale, x_scale)
        on_data = predict_regime_on_data(data.x, data.y, W1[i], W2[i], steps, row["lr"], row["lr"], "relu", loss_scale)
        cells.append({"tau": row["tau"], "delta": row["delta"], "S": float(s), "S_hat": on_data.kernel_distance,
                      "config": config.regime, "on_data": on_data.regime, "measured": _band(float(s))})
    frac = {key: float(np.mean([_agrees(c["measured"], c[key]) for c in cells])) for key in ("config", "on_data")}
    return {"cells": cells, **frac}


def _show(g: dict) -> str:
    return "; ".join(f"τ={c['tau']:.3g} δ={c['delta']:+.1f} S={c['S']:.3f} Ŝ={c['S_hat']:.3f} "
                     f"config={c['config']} data={c['on_data']}" for c in g["cells"])


def test_predictor_agrees_with_measured_kernel_distance_on_a_5x5_grid():
    """One teacher neuron: both predictors agree on ≥ 90% of the cells (measured: 25/25 each)."""
    g = _grid("one")
    assert g["config"] >= 0.9 and g["on_data"] >= 0.9, _show(g)
    assert max(c["S"] for c in g["cells"] if c["tau"] > 0.5) < 0.05  # large scale: lazy at every δ


@pytest.mark.parametrize("name", ["three", "paper"])
def test_horizon_aware_predictor_beats_configuration_alone_on_kunin_teacher(name):
    """With Kunin's three-neuron teacher the configuration alone is horizon-blind both ways (downstream
    cells turn delayed-rich, tiny inits still sit on the plateau: measured 17/25 and 18/25 agreement on
    seed 0); the on-data predictor sees both (25/25, 24/25)."""
    g = _grid(name)
    assert g["on_data"] >= g["config"] + 0.2, _show(g)


@pytest.mark.parametrize("name,seed", [("three", s) for s in range(8)] + [("paper", 0), ("paper", 7)])
def test_predictor_on_kunin_three_neuron_teacher(name, seed):
    """The issue's bar, ≥ 90% of a 5×5 τ×δ grid, on Kunin's Fig. 1 setup (3 teacher neurons): measured
    92-100% on every seed (the held-out s = 4…7 included); the weakest is three seed 7 (23/25)."""
    g = _grid(name, seed, seed + 1)
    assert g["on_data"] >= 0.9, _show(g)


def test_relinearized_prediction_tracks_measured_kernel_distance():
    """Ŝ/S on all three grids at seed 0 wherever S > 0.02: within 15% outside the tiny-init upstream corner
    (τ < 0.05, δ ≥ 0: abrupt saddle escapes), within [0.65, 1.5] inside it (measured over seeds 0…7 and
    357 cells: 0.89-1.08 outside, 0.71-1.31 inside)."""
    for name in ("one", "three", "paper"):
        for c in _grid(name)["cells"]:
            if c["S"] > 0.02:
                lo, hi = (0.65, 1.5) if (c["tau"] < 0.05 and c["delta"] >= 0) else (0.85, 1.15)
                assert lo <= c["S_hat"] / c["S"] <= hi, (name, c)


def test_configuration_alone_cannot_reach_the_bar_on_both_teachers():
    """The 'one' and 'three' grids share every configuration item the issue lists (widths, init scales τ/δ,
    learning rates, horizon); only the teacher differs. Cells whose measured band differs between them
    cannot both be right for any configuration-only predictor, which bounds its mean agreement over the two
    grids: measured 6, 12, 10, 9 differing cells on seeds 0…3 → at most 81.5% (< 90%): the data must enter."""
    differ = [sum(c["measured"] != e["measured"] for c, e in zip(_grid("one", s, s + 1)["cells"], _grid("three", s, s + 1)["cells"]))
              for s in range(4)]
    assert 1 - sum(differ) / (2 * 25 * 4) < 0.9, differ


def test_log_time_relinearization_converges_to_gradient_descent():
    """On a smooth (tanh) student the log-time phases are a consistent integrator of the training dynamics:
    Ŝ approaches the engine's GD kernel distance as the phases per decade grow, at first order (4× the
    phases, ≈ 4× less error), over 15 τ×δ cells from lazy to small-init upstream and downstream (measured
    max relative error: 7.4 at one linearization, 0.23, 0.068, 0.017 at 4, 16, 64 per decade)."""
    data, W1, W2, rows, S = _train("tanh", 0, 1, act="tanh")
    steps, s = GRIDS["tanh"][5], GRIDS["tanh"][7]
    err = {}
    for q in (0, 4, 16, 64):
        s_hat = np.array([relinearized_kernel_distance(data.x, data.y, W1[i], W2[i], steps, r["lr"], r["lr"], "tanh", s, q)
                          for i, r in enumerate(rows)])
        err[q] = float(np.max(np.abs(s_hat - S) / np.maximum(S, 1e-3)))
    assert err[0] > 1 and err[4] / err[16] > 2.5 and err[16] / err[64] > 2.5 and err[64] < 0.03, err


def test_linearized_step_matches_autograd_linearized_flow():
    """The closed form (eigenbasis of the n·c × n·c kernel) equals the matrix exponential of gradient flow
    on the autograd-linearized net in parameter space (float64), and its Jacobian equals autograd's."""
    from scipy.linalg import expm

    gen = torch.Generator().manual_seed(3)
    n, d, m, c = 12, 4, 6, 2
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    y = torch.randn(n, c, generator=gen, dtype=torch.float64)
    W = torch.randn(m, d, generator=gen, dtype=torch.float64) * 0.7
    A = torch.randn(c, m, generator=gen, dtype=torch.float64) * 0.3
    lr_w, lr_a, steps, s = 0.05, 0.2, 40, 0.5

    def f(theta):
        Wt, At = theta[: m * d].reshape(m, d), theta[m * d:].reshape(c, m)
        return (torch.tanh(x @ Wt.T) @ At.T).reshape(-1)

    theta0 = torch.cat([W.reshape(-1), A.reshape(-1)])
    J = torch.autograd.functional.jacobian(f, theta0)  # [n·c, m·d + c·m]
    j_a, j_w = jacobian(x, W, A, "tanh")
    assert torch.allclose(J[:, : m * d], j_w, atol=1e-14) and torch.allclose(J[:, m * d:], j_a, atol=1e-14)
    eta = np.concatenate([np.full(m * d, lr_w), np.full(c * m, lr_a)])
    Jn, r0 = J.numpy(), (y.reshape(-1) - f(theta0)).numpy()
    # dΔθ/dk = η (2s/n) Jᵀ (r₀ − J Δθ), Δθ(0) = 0: affine ODE → one augmented matrix exponential
    P = len(eta)
    M = np.zeros((P + 1, P + 1))
    M[:P, :P] = -(eta[:, None] * (2 * s / n)) * (Jn.T @ Jn)
    M[:P, P] = eta * (2 * s / n) * (Jn.T @ r0)
    ref = theta0 + torch.from_numpy((expm(M * steps) @ np.r_[np.zeros(P), 1.0])[:P])
    W1, A1 = linearized_step(x, y, W, A, steps, lr_w, lr_a, "tanh", s)
    assert float((torch.cat([W1.reshape(-1), A1.reshape(-1)]) - ref).abs().max()) < 1e-12
    S1 = relinearized_kernel_distance(x, y, W, A, steps, lr_w, lr_a, "tanh", s, per_decade=0)
    J1 = torch.autograd.functional.jacobian(f, ref)
    K0 = lr_w * J[:, : m * d] @ J[:, : m * d].T + lr_a * J[:, m * d:] @ J[:, m * d:].T
    K1 = lr_w * J1[:, : m * d] @ J1[:, : m * d].T + lr_a * J1[:, m * d:] @ J1[:, m * d:].T
    assert S1 == pytest.approx(float(1 - (K0 * K1).sum() / (K0.norm() * K1.norm())), abs=1e-12)
    with pytest.raises(LazyrichError, match="do not chain"):
        relinearized_kernel_distance(x, y, W.T, A, steps, lr_w, lr_a)


def test_predictor_numbers_and_limits():
    p = predict_regime((10, 100, 1), 1.0, 0.0, y_scale=1.0)
    assert p.regime == "lazy" and p.fit_ratio == pytest.approx(0.01) and p.first_layer_share == pytest.approx(0.5)
    up, down = predict_regime((10, 100, 1), 0.05, 5.0), predict_regime((10, 100, 1), 0.05, -5.0)
    assert up.regime in ("rich", "ultra-rich") and down.regime == "lazy"  # get rich quick vs delayed rich
    assert predict_regime((10, 100, 1), 0.001, 0.0).regime == "ultra-rich"
    lin = predict_regime((10, 100, 1), 0.05, 5.0, activation="linear")  # linear nets: upstream is lazy too
    assert lin.regime == "lazy" and lin.ntk_ratio == pytest.approx(np.sqrt(1 + lin.chi**-2))
    with pytest.raises(LazyrichError, match="two-layer"):
        predict_regime((10, 20, 20, 1), 1.0, 0.0)


def test_predictor_from_parametrization_tables():
    """NTP with a small output multiplier → lazy at width; γ ≫ 1 in μP → rich; a tiny init → ultra-rich."""
    widths = (10, 4096, 1)
    ntp = predict_regime_from_table(widths, "ntp", lr=1.0)
    assert ntp.regime == "lazy"
    assert predict_regime_from_table(widths, "mup", gamma=1e3).regime in ("rich", "ultra-rich")
    assert predict_regime_from_table((10, 256, 1), "sp", std_scale=1e-4).regime == "ultra-rich"
    assert predict_regime_from_table(widths, "mup", gamma=1e3).fit_ratio > predict_regime_from_table(widths, "mup").fit_ratio


def _linearized_flow_reference(f, theta0: torch.Tensor, eta: np.ndarray, y: torch.Tensor, steps: float, s: float):
    """θ after `steps` of gradient flow on the autograd-linearized net: dΔθ/dk = η(2s/n)Jᵀ(r₀ − JΔθ),
    an affine ODE solved by one augmented matrix exponential (scipy, float64)."""
    from scipy.linalg import expm

    J = torch.autograd.functional.jacobian(f, theta0).numpy()
    r0 = (y.reshape(-1) - f(theta0)).numpy()
    n, P = y.shape[0], len(eta)
    M = np.zeros((P + 1, P + 1))
    M[:P, :P] = -(eta[:, None] * (2 * s / n)) * (J.T @ J)
    M[:P, P] = eta * (2 * s / n) * (J.T @ r0)
    return theta0 + torch.from_numpy((expm(M * steps) @ np.r_[np.zeros(P), 1.0])[:P])


def test_any_depth_step_matches_autograd_linearized_flow():
    """`layers_step` (analytic NTK + backpropagated Jᵀv, any depth, one rate per layer) equals the matrix
    exponential of the autograd-linearized flow of a three-layer tanh net (c = 2) to 1e-12, and equals
    the two-layer `linearized_step` (explicit Jacobian) on a ReLU net to rounding."""
    from lazyrich.theory.relinearized import layers_ntk, layers_step

    gen = torch.Generator().manual_seed(5)
    n, d, h1, h2, c = 10, 3, 5, 4, 2
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    y = torch.randn(n, c, generator=gen, dtype=torch.float64)
    shapes = [(h1, d), (h2, h1), (c, h2)]
    Ws = [torch.randn(*sh, generator=gen, dtype=torch.float64) * g / np.sqrt(sh[1]) for sh, g in zip(shapes, (1.2, 0.9, 0.5))]
    lrs, steps, s = [0.03, 0.07, 0.2], 25.0, 0.5
    sizes = [a * b for a, b in shapes]

    def f(theta):
        parts = torch.split(theta, sizes)
        h = x
        for l, (p, sh) in enumerate(zip(parts, shapes)):
            h = h @ p.reshape(sh).T
            h = torch.tanh(h) if l < 2 else h
        return h.reshape(-1)

    theta0 = torch.cat([w.reshape(-1) for w in Ws])
    eta = np.concatenate([np.full(k, r) for k, r in zip(sizes, lrs)])
    ref = _linearized_flow_reference(f, theta0, eta, y, steps, s)
    got = torch.cat([w.reshape(-1) for w in layers_step(x, y, Ws, lrs, steps, "tanh", s)])
    assert float((got - ref).abs().max()) < 1e-12
    J = torch.autograd.functional.jacobian(f, theta0)
    K = sum(r * Jl @ Jl.T for r, Jl in zip(lrs, torch.split(J, sizes, dim=1)))
    assert torch.allclose(layers_ntk(x, Ws, lrs, "tanh"), K, atol=1e-13)
    W, A = Ws[0], torch.randn(c, h1, generator=gen, dtype=torch.float64)
    W1, A1 = linearized_step(x, y, W, A, steps, 0.05, 0.2, "relu", s)
    W2_, A2_ = layers_step(x, y, [W, A], [0.05, 0.2], steps, "relu", s)
    assert torch.allclose(W1, W2_, atol=1e-13) and torch.allclose(A1, A2_, atol=1e-13)
    with pytest.raises(LazyrichError, match="one rate per layer"):
        relinearized_kernel_distance_layers(x, y, Ws, lrs[:2], steps)
    with pytest.raises(LazyrichError, match="do not chain"):
        relinearized_kernel_distance_layers(x, y, [Ws[0], Ws[2]], lrs[:2], steps)
    with pytest.raises(LazyrichError, match="at least one sample"):
        relinearized_kernel_distance_layers(x, y, Ws, lrs, steps, max_samples=0)


def test_cheap_approximation_agrees_with_full_predictor():
    """The cheap options against the full predictor (q = 16, all samples) on five cells of the `three` grid
    (seed 0, lazy to tiny-init up/downstream): q = 4 phases per decade within 0.03 of Ŝ (measured ≤ 0.020
    over the 25 cells of `three` and 3 of `paper`), q = 4 on a random half of the samples within 0.08
    (measured ≤ 0.074: the subset's own lazy fit reaches further, the Ŝ of a smaller problem). No training."""
    d, m, n, k, taus, steps, lr, s = GRIDS["three"]
    data = teacher_student(d=d, k=k, n=n, n_test=10, seed=0)
    W1, W2, rows = _kunin_params(torch.Generator().manual_seed(1), d, m, taus, lr)
    for i in (1, 6, 7, 13, 19):
        r = rows[i]
        full, q4, half = (relinearized_kernel_distance(data.x, data.y, W1[i], W2[i], steps, r["lr"], r["lr"], "relu", s,
                                                       q, ns) for q, ns in ((16, None), (4, None), (4, n // 2)))
        assert abs(q4 - full) <= 0.03 and abs(half - full) <= 0.08, (i, full, q4, half)
