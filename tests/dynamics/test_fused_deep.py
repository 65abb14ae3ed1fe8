"""The fused pass for MLPs of any depth, with biases: gradients equal autograd and the batched
reference (float64: 1e-12; float32: 1e-5 relative), 20-step trajectories equal `kernel="batched"`
(float64: 1e-10; float32: 2e-4 relative) with minibatches and weight decay, a diverging member is
frozen at the step the batched kernel freezes it without changing any other member's bits, and
`kernel="auto"` takes the fused pass for deep nets. Stored deep-net sweep members changed their last
bits with it: RESULTS_VERSION moved to 2 and a run stored under version 1 is refused on resume."""
import importlib

import pytest
import torch

import lazyrich
from lazyrich.dynamics import fused
from lazyrich.dynamics.optim import OptimizerSpec
from lazyrich.errors import LazyrichError

train_module = importlib.import_module("lazyrich.dynamics.train")

ACTS = ("relu", "tanh", "gelu", "leaky_relu", "quadratic", "linear")


def _ensemble(widths, act, bias, dtype=torch.float64, E=4, wd=0.0):
    net = lazyrich.MLP(widths, act, bias=bias)
    rows = [{"seed": s, "gamma": 0.5 * (1 + s), "lr": 0.05} for s in range(E)]
    ens = lazyrich.build(net, rows, scheme="mup", dtype=dtype, weight_decay=wd)
    gen = torch.Generator().manual_seed(7)
    for k, v in ens.params.items():  # biases start at zero: give them values so their gradients matter
        if k.startswith("b"):
            ens.params[k] = 0.3 * torch.randn(v.shape, generator=gen, dtype=dtype)
    return ens


def _data(d, c, n=13, dtype=torch.float64, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=gen, dtype=dtype), torch.randn(n, c, generator=gen, dtype=dtype)


def _rel(got, want):
    return float((got - want).abs().max() / want.abs().max().clamp(min=1e-30))


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("widths", [(5, 3), (5, 7, 6, 2), (5, 8, 6, 4, 1)])  # depth 1, 3, 4
@pytest.mark.parametrize("bias", [False, True])
def test_gradients_equal_autograd_and_batched(act, widths, bias):
    ens = _ensemble(widths, act, bias)
    x, y = _data(widths[0], widths[-1])
    active = torch.tensor([True, False, True, True])
    assert fused.supports(ens, x)
    ref_loss, ref = train_module.loss_and_grads(ens, ens.params, x, y, active, autograd=True)
    bat_loss, bat = train_module.loss_and_grads(ens, ens.params, x, y, active)
    loss, got = fused.loss_and_grads(ens, ens.params, x, y, active)
    assert list(got) == list(ens.params)  # every parameter, biases included, in the params' order
    assert _rel(loss, ref_loss) <= 1e-12 and _rel(bat_loss, ref_loss) <= 1e-12
    for k in ens.params:
        assert _rel(got[k], ref[k]) <= 1e-12, k
        assert _rel(got[k], bat[k]) <= 1e-12, k
        assert (got[k][~active] == 0).all()


@pytest.mark.parametrize("per", [1, 3])
def test_cache_blocks_and_per_member_inputs(per, monkeypatch):
    """Members in blocks of `per` on one thread, and inputs of shape [E, n, d], give the same gradients."""
    monkeypatch.setattr(fused, "BLOCK_BYTES", per * 8 * 13 * 8)
    assert torch.get_num_threads() == 1  # conftest pins one thread, where blocks are used
    ens = _ensemble((5, 8, 6, 2), "tanh", True)
    gen = torch.Generator().manual_seed(3)
    x, y = torch.randn(4, 13, 5, generator=gen, dtype=torch.float64), torch.randn(4, 13, 2, generator=gen, dtype=torch.float64)
    for xs, ys in ((x, y), (x[0], y[0])):
        ref_loss, ref = train_module.loss_and_grads(ens, ens.params, xs, ys, None, autograd=True)
        loss, got = fused.loss_and_grads(ens, ens.params, xs, ys, None)
        assert _rel(loss, ref_loss) <= 1e-12
        for k in ens.params:
            assert _rel(got[k], ref[k]) <= 1e-12, k


def test_float32_gradients_match_float64():
    ens64 = _ensemble((5, 8, 6, 4, 2), "gelu", True)
    ens32 = _ensemble((5, 8, 6, 4, 2), "gelu", True, dtype=torch.float32)
    ens32.params = {k: v.float() for k, v in ens64.params.items()}  # the same weights, rounded to float32
    x, y = _data(5, 2)
    _, ref = train_module.loss_and_grads(ens64, ens64.params, x, y, None, autograd=True)
    _, got = fused.loss_and_grads(ens32, ens32.params, x.float(), y.float(), None)
    for k in ref:
        assert _rel(got[k].double(), ref[k]) <= 1e-5, k


def _task(d=6, c=2, n=24):
    from lazyrich.tasks import teacher_student
    return teacher_student(d, c, n, 10, seed=0)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 2e-4)])
@pytest.mark.parametrize("widths,act,bias,opt,wd", [
    ((6, 8, 7, 2), "relu", False, "gd", 0.0),
    ((6, 8, 7, 2), "tanh", True, OptimizerSpec(kind="sgd", batch_size=8), 0.01),
    ((6, 8, 7, 5, 2), "gelu", True, "gd", 0.01),
    ((6, 8, 7, 5, 2), "leaky_relu", False, OptimizerSpec(kind="momentum", batch_size=10), 0.0),
])
def test_trajectories_equal_batched(dtype, tol, widths, act, bias, opt, wd):
    data = _task(widths[0], widths[-1])
    if dtype == torch.float32:
        data = type(data)(**{k: (v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v)
                             for k, v in vars(data).items()})
    ens = _ensemble(widths, act, bias, dtype=dtype, wd=wd)
    record = [0, 5, 20]
    want = lazyrich.train(ens, data, 20, opt, record=record, kernel="batched", observers=["loss"])
    got = lazyrich.train(ens, data, 20, opt, record=record, kernel="fused", observers=["loss"])
    for k in ens.params:
        assert _rel(got.ens.params[k].double(), want.ens.params[k].double()) <= tol, k
    a, b = got.records(config=False), want.records(config=False)
    assert len(a) == len(b) == 3 * ens.size * 2  # loss and test loss at 3 steps
    assert _rel(torch.tensor(a.value.to_numpy()), torch.tensor(b.value.to_numpy())) <= tol


def test_auto_takes_the_fused_pass_for_deep_nets(monkeypatch):
    calls = []
    real = fused._deep_pass
    monkeypatch.setattr(fused, "_deep_pass", lambda *a, **k: calls.append(1) or real(*a, **k))
    ens = _ensemble((6, 8, 7, 2), "relu", True)
    run = lazyrich.train(ens, _task(), 3, record=[3], observers=["loss"])
    assert len(calls) == 4  # steps 0..3, the last one for the record
    ref = lazyrich.train(ens, _task(), 3, record=[3], observers=["loss"], kernel="fused")
    for k in ens.params:
        assert torch.equal(run.ens.params[k], ref.ens.params[k])
    assert not fused.supports(ens.centered(), _task().x)  # centred models keep the batched kernel


def test_diverging_member_is_frozen_and_others_untouched():
    """Member 2 diverges (lr too large); it is frozen at the step the batched kernel freezes it, and
    every other member is bitwise what it is next to a partner that does not diverge."""
    data = _task()
    net = lazyrich.MLP((6, 8, 7, 2), "tanh", bias=True)
    rows = [{"seed": s, "lr": lr} for s, lr in enumerate([0.05, 0.02, 40.0, 0.03])]
    calm = [dict(r, lr=0.01) if r["seed"] == 2 else r for r in rows]
    run = lazyrich.train(lazyrich.build(net, rows, scheme="sp"), data, 40, record=[0, 40], kernel="fused", check_every=16)
    ref = lazyrich.train(lazyrich.build(net, rows, scheme="sp"), data, 40, record=[0, 40], kernel="batched")
    other = lazyrich.train(lazyrich.build(net, calm, scheme="sp"), data, 40, record=[0, 40], kernel="fused", check_every=16)
    assert run.diverged_step[2] >= 1 and list(run.diverged_step) == list(ref.diverged_step)
    assert (run.diverged_step[[0, 1, 3]] == -1).all()
    keep = [0, 1, 3]
    for k in run.ens.params:
        assert torch.equal(run.ens.params[k][keep], other.ens.params[k][keep]), k
        assert torch.isfinite(run.ens.params[k][2]).all()  # frozen at its last finite parameters


def test_results_version_refuses_resuming_runs_stored_before_the_deep_fused_pass(tmp_path, monkeypatch):
    from lazyrich.sweep import execute_chunk, from_dict, identity, run_sweep
    run_module = importlib.import_module("lazyrich.sweep.run")
    assert identity.RESULTS_VERSION >= 2  # 2: deep and biased nets moved to the fused pass (issue 22)
    spec = {"name": "deep", "task": {"name": "teacher_student", "d": 5, "k": 2, "n": 20, "n_test": 10, "seed": 3},
            "model": {"width": 6, "depth": 3, "activation": "relu"}, "optimizer": {"kind": "gd", "lr": 0.05},
            "steps": 10, "record": {"every": 5}, "axes": [{"grid": {"seed": [0, 1]}}], "execution": {"chunk_members": 1}}
    done = []

    def stop_after_one(task):
        if done:
            raise KeyboardInterrupt
        done.append(1)
        return execute_chunk(task)
    store = tmp_path / "s.duckdb"
    with monkeypatch.context() as m:  # a run stored by lazyrich before the bump
        m.setattr(identity, "RESULTS_VERSION", 1)
        m.setattr(run_module, "RESULTS_VERSION", 1)
        with pytest.raises(KeyboardInterrupt):
            run_sweep(from_dict(spec), store, progress=False, runner=stop_after_one)
    before = store.read_bytes()
    with pytest.raises(LazyrichError, match=f"results_version: 1 there, {identity.RESULTS_VERSION} here"):
        run_sweep(from_dict(spec), store, resume=True, progress=False)
    assert store.read_bytes() == before  # nothing written


def test_member_across_ensemble_sizes_agrees_to_the_last_bits():
    """guarantees.md §6 for deep nets: a member alone, in 2 or in 5 agrees to 1e-13 of its scale."""
    data = _task()
    net = lazyrich.MLP((6, 8, 7, 2), "tanh", bias=True)
    rows = [{"seed": s, "lr": 0.05} for s in range(5)]
    runs = [lazyrich.train(lazyrich.build(net, rows[:E], scheme="sp"), data, 30, record=[30], observers=["loss"],
                           kernel="fused") for E in (1, 2, 5)]
    for run in runs[1:]:
        for k in net.shapes():
            assert _rel(run.ens.params[k][0], runs[0].ens.params[k][0]) <= 1e-13, k
