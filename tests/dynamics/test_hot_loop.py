"""The lean training loop keeps the old per-step semantics: divergence checked in bulk (with an exact
replay) freezes members at exactly the step they diverged; the prepared fused pass and the default
kernel give the numbers they did before."""
import numpy as np
import pytest
import torch

from lazyrich import MLP, OptimizerSpec, build, train
from lazyrich.dynamics import fused, optim
from lazyrich.dynamics.train import loss_and_grads
from lazyrich.tasks import teacher_student

SPECS = {"gd": OptimizerSpec(), "momentum": OptimizerSpec(kind="momentum"), "sgd": OptimizerSpec(kind="sgd", batch_size=8)}


@pytest.fixture(scope="module")
def setting():
    data = teacher_student(d=5, k=2, n=24, n_test=10, seed=0)
    # lrs 4-30 diverge at steps 3-10 (different steps, inside the first windows); 0.05 and 0.1 do not
    rows = [{"seed": s, "lr": lr} for s, lr in enumerate([0.05, 4, 6, 8, 12, 20, 0.1, 30])]
    return data, build(MLP((5, 12, 1)), rows, scheme="sp")


def reference(ens, data, steps, spec, record, divergence=1e8):
    """The obvious loop: check every step, freeze a member where its loss is non-finite or above the bound."""
    params, state = dict(ens.params), optim.init_state(spec, dict(ens.params))
    active = torch.ones(ens.size, dtype=torch.bool)
    diverged, losses, bound = np.full(ens.size, -1), {}, None
    gen = torch.Generator().manual_seed(0)
    n = data.x.shape[0]
    for k in range(steps + 1):
        x, y = data.x, data.y
        if spec.kind == "sgd":
            idx = torch.randperm(n, generator=gen)[: spec.batch_size]
            x, y = x[idx], y[idx]
        loss, grads = loss_and_grads(ens, params, x, y, active)
        bound = divergence * torch.clamp(loss, min=1e-8) if bound is None else bound
        bad = active & (~torch.isfinite(loss) | (loss > bound))
        diverged[bad.numpy()] = k
        active = active & ~bad
        if k in record:
            losses[k] = loss.clone()
        if k == steps:
            return params, diverged, losses
        new_p, new_s = optim.step(spec, params, grads, state, ens.lr, {})
        m = active.reshape(-1, 1, 1)
        params = {p: torch.where(m, new_p[p], params[p]) for p in params}
        state = {p: {s: torch.where(m, v, state[p][s]) for s, v in st.items()} for p, st in new_s.items()}


@pytest.mark.parametrize("kind", sorted(SPECS))
@pytest.mark.parametrize("check_every", [1, 4, 64])
def test_bulk_divergence_check_equals_a_check_every_step(setting, kind, check_every):
    data, ens = setting
    record = [0, 7, 30, 40]
    ref_params, ref_diverged, ref_losses = reference(ens, data, 40, SPECS[kind], record)
    run = train(ens, data, 40, SPECS[kind], record=record, observers=("loss",), kernel="batched", check_every=check_every)
    assert len(set(ref_diverged[ref_diverged >= 0])) >= 3 and (ref_diverged == -1).sum() >= 2  # the case is tested
    np.testing.assert_array_equal(run.diverged_step, ref_diverged)
    for p in ens.params:
        assert torch.equal(run.ens.params[p], ref_params[p]), p
    if kind != "sgd":  # full batch: the recorded loss is the step's loss
        r = run.records(config=False)
        for k in record:
            got = r[(r.step == k) & (r.observable == "loss")].sort_values("member")["value"].to_numpy()
            np.testing.assert_array_equal(got, ref_losses[k].numpy())


def test_fused_default_freezes_at_the_same_steps_with_any_window(setting):
    data, ens = setting
    runs = [train(ens, data, 40, SPECS["momentum"], record=[0, 40], check_every=c) for c in (1, 3, 64)]
    for run in runs[1:]:
        np.testing.assert_array_equal(run.diverged_step, runs[0].diverged_step)
        for p in ens.params:
            assert torch.equal(run.ens.params[p], runs[0].ens.params[p])


def test_default_kernel_is_fused_where_it_applies_else_batched(setting):
    data, ens = setting
    auto = train(ens, data, 20, "gd", record=[20])
    assert torch.equal(auto.ens.params["W1"], train(ens, data, 20, "gd", record=[20], kernel="fused").ens.params["W1"])
    batched = train(ens, data, 20, "gd", record=[20], kernel="batched")
    ok = torch.from_numpy(auto.diverged_step == -1)
    torch.testing.assert_close(auto.ens.params["W1"][ok], batched.ens.params["W1"][ok], rtol=1e-12, atol=1e-13)
    biased = build(MLP((5, 12, 1), bias=True), [{"seed": 0, "lr": 0.05}], scheme="sp")
    auto_b = train(biased, data, 20, "gd", record=[20]).ens.params["W1"]  # biased and deep nets: fused too (issue 22)
    assert torch.equal(auto_b, train(biased, data, 20, "gd", record=[20], kernel="fused").ens.params["W1"])
    torch.testing.assert_close(auto_b, train(biased, data, 20, "gd", record=[20], kernel="batched").ens.params["W1"],
                               rtol=1e-12, atol=1e-13)
    centred = biased.centered()  # centred models keep the batched kernel
    assert torch.equal(train(centred, data, 20, "gd", record=[20]).ens.params["W1"],
                       train(centred, data, 20, "gd", record=[20], kernel="batched").ens.params["W1"])


@pytest.mark.parametrize("members", [1, 3])
def test_prepared_pass_equals_the_plain_fused_pass_bitwise(members):
    data = teacher_student(d=6, k=2, n=30, n_test=10, seed=1)
    ens = build(MLP((6, 9, 1)), [{"seed": s, "lr": 0.1} for s in range(members)], scheme="mup")
    grads_of = fused.prepare(ens, data.x, data.y)
    active = torch.tensor([True, False, True][:members])
    for act in (None, active):
        loss, grads = grads_of(ens, ens.params, data.x, data.y, act)
        loss0, grads0 = fused.two_layer_loss_and_grads(ens.params, data.x, data.y, ens.multipliers, "relu",
                                                       ens.loss_scale, act)
        assert torch.equal(loss, loss0) and all(torch.equal(grads[k], grads0[k]) for k in grads0)


def test_check_every_must_be_positive(setting):
    data, ens = setting
    from lazyrich.errors import LazyrichError
    with pytest.raises(LazyrichError, match="check_every"):
        train(ens, data, 5, check_every=0)
