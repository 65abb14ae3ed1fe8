"""Gradient flow on the fused pass (`flow(kernel="auto")`) against the per-member batched kernel: the same
trajectory to rounding (the solver accepts the same steps), for two-layer and deep nets, biases, several
activations, per-member rates and weight decay. (Freezing a diverged member is kernel-independent code in
`flow`, tested in tests/dynamics with the batched kernel.)"""
from __future__ import annotations

import pytest
import torch

import lazyrich as lr
from lazyrich.errors import LazyrichError
from lazyrich.tasks import teacher_student

TIMES = [0.0, 0.25, 1.0]


def _ens(widths, act, bias=False, E=3, **kw):
    net = lr.MLP(widths, act, bias=bias) if bias else lr.MLP(widths, act)
    rows = [{"seed": s, "lr": 0.1 * (1 + s)} for s in range(E)]
    return lr.build(net, rows, dtype=torch.float64, **kw)


@pytest.mark.parametrize("widths,act,bias", [((6, 16, 1), "tanh", False), ((6, 12, 12, 1), "tanh", True),
                                             ((6, 12, 10, 8, 1), "gelu", False)])
def test_fused_flow_matches_batched(widths, act, bias):
    data = teacher_student(d=6, k=2, n=40, n_test=10, seed=1)
    ens = _ens(widths, act, bias, weight_decay=1e-3)
    a = lr.flow(ens, data, TIMES, observers=("loss",), kernel="batched")
    b = lr.flow(ens, data, TIMES, observers=("loss",))  # auto: the fused pass
    for k, v in a.ens.params.items():
        # smooth activations: the solver accepts the same steps, so only summation-order rounding differs
        # (measured ≤ 1.1e-14); 1e-12 leaves room for its growth over the steps
        assert torch.allclose(b.ens.params[k], v, rtol=0, atol=1e-12 * float(v.abs().max())), k
    la, lb = a.records().query("observable == 'loss'").value.to_numpy(), b.records().query("observable == 'loss'").value.to_numpy()
    assert abs(la - lb).max() <= 1e-12 * max(1.0, abs(la).max())


def test_relu_flow_both_kernels_within_solver_error():
    """At ReLU kinks rounding decides which attempted steps are rejected, so the two kernels' solves differ at
    the solver's own global error (rtol 1e-10: measured 5e-10 batched, 1.3e-9 fused against rtol 1e-12). Both
    are checked against the tighter solve, with the same bound."""
    data = teacher_student(d=6, k=2, n=40, n_test=10, seed=1)
    ens = _ens((6, 16, 1), "relu", weight_decay=1e-3)
    ref = lr.flow(ens, data, TIMES, observers=("loss",), kernel="batched", rtol=1e-12, atol=1e-14)
    for kernel in ("batched", "auto"):
        run = lr.flow(ens, data, TIMES, observers=("loss",), kernel=kernel)
        for k, v in ref.ens.params.items():
            assert float((run.ens.params[k] - v).abs().max()) <= 5e-9 * float(v.abs().max()), (kernel, k)


def test_kernel_errors_are_one_line():
    data = teacher_student(d=6, k=2, n=20, n_test=10, seed=0)
    ens = _ens((6, 8, 1), "relu")
    with pytest.raises(LazyrichError, match="kernel='sparse'"):
        lr.flow(ens, data, TIMES, kernel="sparse")
    with pytest.raises(LazyrichError, match="not centred"):
        lr.flow(ens.centered(), data, TIMES, kernel="fused")
