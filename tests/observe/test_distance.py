"""Hamming, parameter distance and relative weight change against per-neuron / per-member loops."""
from __future__ import annotations

import numpy as np
import torch

from lazyrich import MLP, Data, build, train
from lazyrich.observe.distance import hamming_distance, param_distance, relative_change

from . import observe_ref as ref

torch.set_num_threads(1)
F64 = torch.float64


def trained(widths=(4, 6, 5, 1), activation="relu", bias=True, steps=40):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, widths[0], generator=g, dtype=F64)
    data = Data(x, torch.tanh(x[:, :1] - x[:, 1:2]))
    ens = build(MLP(widths, activation=activation, bias=bias), [{"seed": 0, "lr": 0.5}, {"seed": 3, "lr": 0.2}],
                scheme="mup", std_scale=1.0)
    run = train(ens, data, steps, record=[0, steps // 2, steps],
                observers=["hamming", "param_distance", "weight_change"])
    return ens, data, run


def last(run, observable, layer=""):
    if "table" not in run.extra:  # build the tidy table once per run
        run.extra["table"] = run.records()
    r = run.extra["table"]
    r = r[(r.observable == observable) & (r.layer == layer)]
    return r[r.step == r.step.max()].sort_values("member").value.to_numpy()


def test_hamming_counts_flipped_gates_like_kunin():
    ens, data, run = trained()
    for l in (1, 2):
        frac, total = last(run, "hamming", f"W{l}"), last(run, "hamming_neurons", f"W{l}")
        for e in range(2):
            z0 = ref.preacts(ens.net, run.params0, data.x, ens.multipliers, e)[l - 1]
            z1 = ref.preacts(ens.net, run.ens.params, data.x, ens.multipliers, e)[l - 1]
            n, m = z0.shape
            flips = [[float((z0[i, k] > 0) != (z1[i, k] > 0)) for i in range(n)] for k in range(m)]
            H = sum(sum(row) / n for row in flips)  # Kunin: Σ_k mean_i 1[sgn changed]
            assert abs(total[e] - H) < 1e-12 and abs(frac[e] - H / m) < 1e-12
        assert (total > 0).all()  # training did move some gates
    r = run.records()
    assert (r[(r.observable == "hamming") & (r.step == 0)].value == 0).all()


def test_hamming_distance_is_exact_on_a_constructed_pattern():
    z0 = torch.tensor([[[1.0, -1.0], [2.0, 0.5], [-3.0, 1.0], [0.1, 0.2]]], dtype=F64)  # [E=1, n=4, m=2]
    z1 = torch.tensor([[[-1.0, -1.0], [2.0, -0.5], [3.0, 1.0], [0.1, 0.0]]], dtype=F64)
    frac, total = hamming_distance(z0, z1)  # neuron 0 flips on 2 of 4 samples, neuron 1 on 2 of 4
    assert float(total) == 1.0 and float(frac) == 0.5


def test_param_distance_and_weight_change_against_loops():
    ens, data, run = trained()
    pd_ = last(run, "param_distance")
    for e in range(2):
        sq = 0.0
        for k in run.params0:
            a, b = run.params0[k][e].numpy().ravel(), run.ens.params[k][e].numpy().ravel()
            sq += sum((u - v) ** 2 for u, v in zip(a, b))
        assert abs(pd_[e] - np.sqrt(sq)) < 1e-12
    for name in ens.net.names:
        fro, spec = last(run, "weight_change_fro", name), last(run, "weight_change_spectral", name)
        for e in range(2):
            w0, w = run.params0[name][e].numpy(), run.ens.params[name][e].numpy()
            assert abs(fro[e] - np.sqrt(((w - w0) ** 2).sum() / (w0**2).sum())) < 1e-12
            assert abs(spec[e] - ref.spectral(w - w0) / ref.spectral(w0)) < 1e-12
    p0 = {"W1": torch.zeros(2, 3, 3, dtype=F64)}
    assert torch.allclose(param_distance(p0, {"W1": torch.ones(2, 3, 3, dtype=F64)}), torch.full((2,), 3.0, dtype=F64))
    assert torch.isinf(relative_change(p0["W1"], torch.ones(2, 3, 3, dtype=F64))).all()  # W⁰ = 0: documented inf
