"""The fused two-layer pass equals autograd (1e-12, float64) for every activation, scheme, output
count, shared or per-member inputs and inactive members (zero gradients even when their residual is
NaN); GD trajectories agree with the core path."""
import importlib

import pytest
import torch

import lazyrich
from lazyrich.dynamics import fused
train_module = importlib.import_module("lazyrich.dynamics.train")  # the module (the package re-exports train())
from lazyrich.models.activations import NAMES


def _ensemble(act, c, scheme="mup", gamma=2.0, E=5, d=7, h=6):
    net = lazyrich.MLP((d, h, c), act)
    rows = [{"seed": s, "gamma": gamma * (1 + s), "lr": 0.1} for s in range(E)]
    return lazyrich.build(net, rows, scheme=scheme)


def _close(got, want, what):
    scale = want.abs().max().clamp(min=1e-300)
    err = float((got - want).abs().max() / scale)
    assert err <= 1e-12, f"{what}: relative error {err:.2e}"


def _blocks(monkeypatch, per: int | None, h: int = 6, n: int = 11) -> None:
    """Force `per` members per cache block (None: the default, one block for these sizes)."""
    if per is not None:
        monkeypatch.setattr(fused, "BLOCK_BYTES", per * h * n * 8)
        assert torch.get_num_threads() == 1  # blocks are used on one thread (conftest pins it)


@pytest.mark.parametrize("act", NAMES)
@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("per", [None, 1, 2])
def test_matches_autograd_shared_inputs(act, c, per, monkeypatch):
    _blocks(monkeypatch, per)
    ens = _ensemble(act, c)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(11, 7, generator=gen, dtype=torch.float64), torch.randn(11, c, generator=gen, dtype=torch.float64)
    active = torch.tensor([True, False, True, True, False])
    want_loss, want = train_module.loss_and_grads(ens, ens.params, x, y, active, autograd=True)
    assert fused.supports(ens, x)
    loss, got = fused.loss_and_grads(ens, ens.params, x, y, active)
    _close(loss, want_loss, "loss")
    for k in ("W1", "W2"):
        _close(got[k], want[k], k)
        assert (got[k][~active] == 0).all()


@pytest.mark.parametrize("scheme", ["sp", "ntp", "mf"])
@pytest.mark.parametrize("per", [None, 2])
def test_matches_autograd_per_member_inputs(scheme, per, monkeypatch):
    _blocks(monkeypatch, per, n=9)
    ens = _ensemble("tanh", 2, scheme=scheme, gamma=0.5)
    gen = torch.Generator().manual_seed(2)
    x, y = torch.randn(5, 9, 7, generator=gen, dtype=torch.float64), torch.randn(5, 9, 2, generator=gen, dtype=torch.float64)
    ens.loss_scale = 1.0
    active = torch.ones(5, dtype=torch.bool)
    want_loss, want = train_module.loss_and_grads(ens, ens.params, x, y, active, autograd=True)
    loss, got = fused.loss_and_grads(ens, ens.params, x, y, active)
    _close(loss, want_loss, "loss")
    for k in ("W1", "W2"):
        _close(got[k], want[k], k)


def test_gd_trajectory_matches_the_core_path(monkeypatch):
    from lazyrich.tasks import teacher_student
    data = teacher_student(6, 2, 30, 10, seed=0)
    net = lazyrich.MLP((6, 8, 1))
    ens = lazyrich.build(net, [{"seed": s, "tau": t, "delta": dl, "lr": 0.05 / t**2} for s, t, dl in
                               [(0, 0.3, -0.5), (1, 1.0, 0.0), (2, 2.0, 0.9)]], init="kunin", loss_scale=1.0)
    want = lazyrich.train(ens, data, 200, record=[0, 50, 200]).records()
    monkeypatch.setattr(train_module, "loss_and_grads", fused.loss_and_grads)
    got = lazyrich.train(ens, data, 200, record=[0, 50, 200]).records()
    loss = want.observable.isin(["loss", "test_loss"])
    _close(torch.tensor(got.value[loss].to_numpy()), torch.tensor(want.value[loss].to_numpy()), "loss records")


def test_frozen_member_with_nan_gets_zero_gradients():
    ens = _ensemble("relu", 1)
    x, y = torch.randn(4, 7, dtype=torch.float64), torch.randn(4, 1, dtype=torch.float64)
    ens.params["W2"][2] = float("nan")
    active = torch.tensor([True, True, False, True, True])
    loss, got = fused.loss_and_grads(ens, ens.params, x, y, active)
    assert torch.isnan(loss[2]) and torch.isfinite(loss[[0, 1, 3, 4]]).all()
    assert (got["W1"][2] == 0).all() and (got["W2"][2] == 0).all()
    finite = {k: v.clone() for k, v in ens.params.items()}
    finite["W2"][2] = 0.3
    _, other = fused.loss_and_grads(ens, finite, x, y, active)
    for k in ("W1", "W2"):  # the others are bitwise what they are next to a finite member
        assert torch.equal(got[k][[0, 1, 3, 4]], other[k][[0, 1, 3, 4]])


def test_supports_any_depth_and_biases_but_not_centred():  # deeper nets and biases: test_fused_deep.py
    x = torch.zeros(3, 4)
    assert fused.supports(lazyrich.build(lazyrich.MLP((4, 5, 5, 1)), [{}]), x)
    assert fused.supports(lazyrich.build(lazyrich.MLP((4, 5, 1), bias=True), [{}]), x)
    assert not fused.supports(lazyrich.build(lazyrich.MLP((4, 5, 1)), [{}]).centered(), x)
