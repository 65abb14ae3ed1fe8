"""Saxe et al. sigmoidal modes: closed form vs ODE, and discrete GD within O(η)."""
import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from lazyrich import train
from lazyrich.errors import LazyrichError
from lazyrich.observe import Data
from lazyrich.theory import decoupled_init, half_time, learning_time, mode_strength, overlay, saxe, saxe_inputs

from .helpers import ensemble, series

S = np.array([3.0, 2.0, 1.0, 0.5])


def test_closed_form_solves_the_mode_ode():
    t = np.linspace(0, 6, 61)
    for s, u0, tau in [(3.0, 1e-3, 1.0), (0.7, 0.2, 2.0), (1.5, 1.4, 0.5)]:
        sol = solve_ivp(lambda _t, u: 2 * u * (s - u) / tau, (0, 6), [u0], t_eval=t, method="DOP853", rtol=1e-13, atol=1e-15)
        assert np.abs(sol.y[0] - mode_strength(t, s, u0, tau)[:, 0]).max() < 1e-10
        th = half_time(s, u0, tau)
        assert abs(mode_strength([th], s, u0, tau)[0, 0] / s - 0.5) < 1e-14
        assert abs(learning_time(s, u0, s / 2, tau) - th) < 1e-12


def _data(seed: int = 0) -> Data:
    rng = np.random.default_rng(seed)
    d, c, n = 6, 4, 12
    U, _ = np.linalg.qr(rng.normal(size=(c, c)))
    V, _ = np.linalg.qr(rng.normal(size=(d, d)))
    sigma = U @ np.diag(S) @ V[:, :c].T
    q, _ = np.linalg.qr(rng.normal(size=(n, d)))
    x = np.sqrt(n) * q
    return Data(torch.tensor(x), torch.tensor(x @ sigma.T))


def _gd_error(eta: float, T: float = 8.0) -> float:
    data = _data()
    sigma = (data.y.T @ data.x).numpy() / data.x.shape[0]
    W1, W2 = decoupled_init(sigma, 5, 1e-3, seed=2)
    ens = ensemble((6, 5, 4), {"W1": W1[None], "W2": W2[None]}, base_lr=eta)
    steps = int(round(T / eta))
    run = train(ens, data, steps, record=list(range(0, steps + 1, 20)), observers=("loss", "linear_map"))
    recs = run.records()
    pred = saxe(np.unique(recs.time), **saxe_inputs(ens, data))
    ov = overlay(recs, pred, ["mode_strength", "loss"])
    beta = series(recs, "beta", 0).reshape(-1, 4, 6)
    u, _, vt = np.linalg.svd(sigma, full_matrices=False)
    modes = np.einsum("ia,tij,bj->tab", u, beta, vt)
    off = np.abs(modes - np.einsum("tk,kl->tkl", np.diagonal(modes, axis1=1, axis2=2), np.eye(4))).max()
    assert off < 1e-8  # decoupling survives discrete GD
    return float(ov[ov.observable == "mode_strength"].error.abs().max())


def test_gradient_descent_follows_the_modes_to_first_order_in_eta():
    errs = {eta: _gd_error(eta) for eta in (4e-3, 2e-3)}
    for eta, err in errs.items():
        assert err < 5 * eta * S.max()
    slope = np.log(errs[4e-3] / errs[2e-3]) / np.log(2)
    assert abs(slope - 1) < 0.1


def test_preconditions():
    data = _data()
    rng = np.random.default_rng(0)
    ens = ensemble((6, 5, 4), {"W1": 1e-2 * rng.normal(size=(1, 5, 6)), "W2": 1e-2 * rng.normal(size=(1, 4, 5))})
    with pytest.raises(LazyrichError, match="decoupled"):
        saxe_inputs(ens, data)
    sigma = (data.y.T @ data.x).numpy() / data.x.shape[0]
    W1, W2 = decoupled_init(sigma, 5, 1e-3)
    ens = ensemble((6, 5, 4), {"W1": W1[None], "W2": 2 * W2[None]})
    with pytest.raises(LazyrichError, match="balanced"):
        saxe_inputs(ens, data)
    with pytest.raises(LazyrichError, match="u₀ > 0"):
        mode_strength([1.0], 1.0, 0.0)
