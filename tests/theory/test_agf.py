"""Alternating Gradient Flows vs GD from small initialisation: loss-drop times, plateau levels, order."""
import numpy as np
import torch

from lazyrich import train
from lazyrich.observe import Data
from lazyrich.theory import agf, linear_agf
from lazyrich.theory.checks import regression_moments

from .helpers import agf_task, ensemble, series


def _drop_times(times: np.ndarray, loss: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """First time the loss crosses midway between consecutive predicted plateaus."""
    mids = 0.5 * (levels[:-1] + levels[1:])
    return np.array([times[np.argmax(loss < m)] if (loss < m).any() else np.nan for m in mids])


def _gd(widths, W1, W2, data, lr, steps, activation, every=4, observers=("loss",)):
    ens = ensemble(widths, {"W1": W1[None], "W2": W2[None]}, activation=activation, base_lr=lr)
    run = train(ens, data, steps, record=list(range(0, steps + 1, every)), observers=observers)
    recs = run.records()
    loss = series(recs, "loss", 0)[:, 0]
    return np.unique(recs.time), loss, recs


def test_linear_network_drop_times_levels_and_order():
    rng = np.random.default_rng(0)
    d, h, c, n = 5, 6, 4, 40
    s = np.array([3.0, 1.5, 0.75, 0.375])
    X, Y = agf_task(rng, d, c, n, tuple(s))
    data = Data(torch.tensor(X), torch.tensor(Y))
    alpha = 1e-12
    W1, W2 = alpha * rng.normal(size=(h, d)) / np.sqrt(d), alpha * rng.normal(size=(c, h)) / np.sqrt(c)
    t, loss, recs = _gd((d, h, c), W1, W2, data, 0.02, 4000, "linear", observers=("loss", "linear_map"))
    sigma, half_y2 = regression_moments(X, Y)
    pred = linear_agf(sigma, 2 * half_y2, np.sqrt(2) * alpha)  # per-neuron ||θ_i(0)|| ≈ √2 α
    assert np.allclose(pred.jump_times * s, np.log(np.sqrt(s) / (np.sqrt(2) * alpha)), rtol=1e-12)  # τ_k = 1/s_k
    authors = linear_agf(sigma, 2 * half_y2, np.sqrt(2) * alpha, threshold="authors")
    assert np.allclose(authors.jump_times, np.log(1 / (np.sqrt(2) * alpha)) / s, rtol=1e-12)
    measured = _drop_times(t, loss, pred.losses)
    for p in (pred, authors):
        assert np.abs(measured / p.jump_times - 1).max() < 0.10
    plateaus = np.interp(0.5 * (pred.jump_times[:-1] + pred.jump_times[1:]), t, loss)  # mid-plateau losses
    assert np.abs(plateaus / pred.losses[1:-1] - 1).max() < 0.01
    modes = series(recs, "mode_strength", 0)
    for k in range(3):  # on plateau k the top k modes are learned, the others not yet
        i = np.argmin(np.abs(t - 0.5 * (pred.jump_times[k] + pred.jump_times[k + 1])))
        assert np.all(modes[i, : k + 1] > 0.9 * s[: k + 1]) and np.all(np.abs(modes[i, k + 1:]) < 0.1 * s[k + 1:])


def test_relu_network_staircase_within_20_percent():
    """Teacher 2·relu(x₁) − relu(x₂): the stronger feature is learned first (a > 0 neurons), then the
    weaker one by neurons with a < 0."""
    rng = np.random.default_rng(0)
    d, h, n = 3, 10, 200
    X = rng.normal(size=(n, d))
    Y = (2 * np.maximum(X[:, 0], 0) - np.maximum(X[:, 1], 0))[:, None]
    alpha = 1e-10
    W1, W2 = alpha * rng.normal(size=(h, d)) / np.sqrt(d), alpha * rng.normal(size=(1, h))
    pred = agf(X, Y, W1, W2, "relu", t_max=150)
    t, loss, _ = _gd((d, h, 1), W1, W2, Data(torch.tensor(X), torch.tensor(Y)), 0.05, 2000, "relu")
    assert len(pred.jump_times) == 2 and pred.losses[-1] < 1e-10
    measured = _drop_times(t, loss, pred.losses)
    assert np.abs(measured / pred.jump_times - 1).max() < 0.20
    (w_first, a_first), (w_second, a_second) = [(pred.weights[k][0][i], pred.weights[k][1][0, i])
                                                for k, i in enumerate(pred.order)]
    assert w_first[0] / np.linalg.norm(w_first) > 0.9 and a_first > 0  # 2·relu(x₁) first
    assert w_second[1] / np.linalg.norm(w_second) > 0.9 and a_second < 0  # then −relu(x₂)
    plateau = np.interp(0.5 * sum(pred.jump_times), t, loss)
    assert abs(plateau / pred.losses[1] - 1) < 0.1


def test_quadratic_neuron_jump_time_closed_form():
    """κ = 3: one neuron f = a(wx)² on x = y = 1 from w₀ = √2·a₀ (the invariant ray w² = 2a², which is the
    utility-maximising direction u* = (√(2/3), √(1/3))) follows ȧ = 2a², a(t) = a₀/(1 − 2a₀t), and
    activates at ‖θ‖³ = ½U(u*)/f(u*)² = 9/(4√3), i.e. at t* = 1/(2a₀) − 1/(2a*), a* = ‖θ*‖/√3."""
    a0 = 1e-3
    n_star = (9 / (4 * np.sqrt(3))) ** (1 / 3)
    t_star = 1 / (2 * a0) - np.sqrt(3) / (2 * n_star)
    pred = agf(np.ones((1, 1)), np.ones((1, 1)), np.array([[np.sqrt(2) * a0]]), np.array([[a0]]), "quadratic",
               t_max=1e4, step_tol=1e-3)
    assert len(pred.jump_times) == 1 and pred.losses[-1] < 1e-12
    assert abs(pred.jump_times[0] / t_star - 1) < 1e-4
    assert abs(pred.jump_norms[0] / n_star - 1) < 1e-3
    # against GD at a small rate, the loss-drop midpoint comes right after the activation (finite-time blow-up)
    t, loss, _ = _gd((1, 1, 1), np.array([[np.sqrt(2) * a0]]), np.array([[a0]]),
                     Data(torch.ones(1, 1, dtype=torch.float64), torch.ones(1, 1, dtype=torch.float64)), 0.05, 10_400,
                     "quadratic", every=1)
    measured = _drop_times(t, loss, pred.losses)
    assert abs(measured[0] / pred.jump_times[0] - 1) < 2e-3


def test_max_jumps_and_jump_norms():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    Y = (2 * np.maximum(X[:, 0], 0) - np.maximum(X[:, 1], 0))[:, None]
    W1, W2 = 1e-10 * rng.normal(size=(6, 3)), 1e-10 * rng.normal(size=(1, 6))
    one = agf(X, Y, W1, W2, "relu", t_max=150, max_jumps=1)
    full = agf(X, Y, W1, W2, "relu", t_max=150)
    assert len(one.jump_times) == 1 and len(full.jump_times) == 2
    assert one.jump_times[0] == full.jump_times[0] and one.order[0] == full.order[0]
    assert len(full.jump_norms) == 2 and np.all(full.jump_norms > 1e-3)
