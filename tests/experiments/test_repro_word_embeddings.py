"""word-embeddings-stepwise: the quick run (verdicts, schema, outputs), and its batched QWEM trainer against
slow references written here: autograd of the loss written pair by pair, members run alone, the exact flow."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lazyrich.errors import LazyrichError
from lazyrich.experiments import word_embeddings as wx
from lazyrich.experiments.base import get
from lazyrich.theory import word_embeddings as we

from .quick_checks import check_quick_outcome


def small_problem(V: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    C = rng.poisson(3.0, (V, V)).astype(float)
    C = C + C.T + 1.0
    P = C / C.sum()
    return P, we.qwem_target(P)


@pytest.mark.quick_repro
def test_quick_run_passes_with_schema(quick_outcomes):
    out = quick_outcomes("word-embeddings-stepwise")
    check_quick_outcome(out)
    assert (out.out / "step_times.csv").exists() and (out.out / "neighbours.md").read_text().count("|") > 20


def test_registered_with_sizes_and_knobs():
    exp = get("word-embeddings-stepwise")
    assert set(exp.sizes) == {"quick", "full"} and set(exp.knobs) == {"sigma", "seeds"}
    assert {"step-times", "sequential", "final-subspace"} <= set(exp.decisive)


def test_closed_form_gradient_is_autograd_of_the_pair_loss():
    P, M = small_problem()
    pp, mp = we.constant_weights(P, 1.3)
    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    W = torch.randn(3, 10, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0), requires_grad=True)
    loss = wx.contrastive_loss(W, t(P), t(pp), t(mp))
    (grad,) = torch.autograd.grad(loss.sum(), W)
    torch.testing.assert_close(wx.qwem_gradient(W.detach(), t(M), 1.3), grad, rtol=1e-12, atol=1e-13)
    # the pair loss is the factorization form (g/8)(||WWᵀ||² − 2tr(WᵀM*W)) exactly (constants were dropped in both)
    const = loss.detach() - wx.qwem_loss(W.detach(), t(M), 1.3)
    torch.testing.assert_close(const, torch.zeros(3, dtype=torch.float64), atol=1e-12, rtol=0)


def test_members_are_independent_and_padded_columns_stay_zero():
    P, M = small_problem()
    W0 = wx.gaussian_init(10, [2, 4], [0, 1], 1e-3)
    both = wx.train_qwem(M, W0, 0.05, 300, every=50)
    assert np.all(both.W[0, :, 2:] == 0) and np.all(both.W[2, :, 2:] == 0)  # d = 2 members inside d_max = 4
    for e in range(4):
        alone = wx.train_qwem(M, W0[e:e + 1], 0.05, 300, every=50)
        np.testing.assert_allclose(alone.W[0], both.W[e], rtol=0, atol=1e-14 * np.abs(both.W[e]).max())
        np.testing.assert_allclose(alone.eigenvalues[:, 0], both.eigenvalues[:, e], rtol=1e-12, atol=1e-15)


def test_gd_converges_to_the_exact_flow_linearly_in_the_step():
    _, M = small_problem()
    W0 = wx.gaussian_init(10, [3], [0], 0.1)
    T = 6.0
    exact = we.qwem_gram(T, M, W0[0])
    err = []
    for lr in (0.02, 0.01):
        run = wx.train_qwem(M, W0, lr, int(round(T / lr)), every=100)
        err.append(np.abs(run.W[0] @ run.W[0].T - exact).max())
    assert err[1] < 0.6 * err[0] and err[1] < 0.02 * np.abs(exact).max()  # first order in η


def test_crossings_and_neighbours_against_brute_force():
    t = np.linspace(0, 1, 11)
    u = np.stack([t**2, 2 * t, np.full(11, 5.0)], 1)
    # t² reaches 0.3 between records 0.5 (0.25) and 0.6 (0.36): linear interpolation; 2t never reaches 3; 5 ≥ 1 at t = 0
    np.testing.assert_allclose(wx.crossing_times(t, u, np.array([0.3, 3.0, 1.0])), [0.5 + 0.1 * 0.05 / 0.11, np.nan, 0.0])
    rng = np.random.default_rng(0)
    W = rng.normal(size=(8, 3))
    vocab = [f"w{i}" for i in range(8)]
    nn = wx.nearest_neighbours(W, vocab, ["w0", "w5"], 3)
    for q, got in nn.items():
        i = vocab.index(q)
        cos = [(W[i] @ W[j] / np.linalg.norm(W[i]) / np.linalg.norm(W[j]), vocab[j]) for j in range(8) if j != i]
        assert got == [w for _, w in sorted(cos, reverse=True)[:3]]
    with pytest.raises(LazyrichError, match="not in the vocabulary"):
        wx.nearest_neighbours(W, vocab, ["zz"], 3)
