"""Spectral-condition instruments (Yang, Simon & Bernstein eqs. 23–25, Condition 1, Fig. 1) against
per-sample numpy loops, the exact next GD step, and the init scaling of the spectral parametrization."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from lazyrich import MLP, Data, build, train
from lazyrich.errors import LazyrichError
from lazyrich.observe.spectral import scaling_exponent, stable_rank, update_structure

from . import observe_ref as ref

torch.set_num_threads(1)
F64 = torch.float64
OBS = ["spectral", "alignment", "feature_change"]


def setup(widths=(5, 7, 6, 2), activation="tanh", bias=True, wd=0.01):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(9, widths[0], generator=g, dtype=F64)
    data = Data(x, torch.stack([torch.sin(x[:, 0]), x[:, 1] * x[:, 2], torch.cos(x[:, 3])], 1)[:, : widths[-1]])
    ens = build(MLP(widths, activation=activation, bias=bias),
                [{"seed": 0, "lr": 0.3, "scheme": "mup"}, {"seed": 5, "lr": 0.1, "scheme": "ntp"}], weight_decay=wd)
    return ens, data


def values(run, observable, layer, step):
    if "table" not in run.extra:  # build the tidy table once per run
        run.extra["table"] = run.records()
    r = run.extra["table"]
    r = r[(r.observable == observable) & (r.layer == layer) & (r.step == step)]
    return r.sort_values("member").value.to_numpy()


def test_spectral_observer_against_numpy_and_the_actual_next_step():
    ens, data = setup()
    run = train(ens, data, 25, record=[0, 24, 25], observers=OBS)
    step_run = train(ens, data, 24, record=[], observers=())  # params at 24; one more GD step gives ΔW
    after = train(step_run.ens, data, 1, record=[], observers=())
    widths = ens.net.widths
    for l, name in enumerate(ens.net.names, start=1):
        for e in range(2):
            m = ref.mult_of(ens.multipliers, e, name)
            w24, w25 = step_run.ens.params[name][e].numpy(), after.ens.params[name][e].numpy()
            w0 = run.params0[name][e].numpy()
            dw = m * (w25 - w24)  # the update GD actually applied at step 24, on the effective weight
            scale = math.sqrt(widths[l] / widths[l - 1])
            want = {"spectral_norm": ref.spectral(m * w24), "delta_spectral_norm": ref.spectral(m * (w24 - w0)),
                    "update_spectral_norm": ref.spectral(dw),
                    "stable_rank": (m * w24 ** 2).sum() * m / ref.spectral(m * w24) ** 2,
                    "update_stable_rank": (dw**2).sum() / ref.spectral(dw) ** 2}
            want.update(spectral_ratio=want["spectral_norm"] / scale, delta_spectral_ratio=want["delta_spectral_norm"] / scale,
                        update_spectral_ratio=want["update_spectral_norm"] / scale)
            for key, v in want.items():
                got = values(run, key, name, 24)[e]
                assert abs(got - v) <= 1e-10 * max(1.0, abs(v)), (key, name, e)


def test_alignment_and_feature_change_against_per_sample_loops():
    ens, data = setup(activation="relu")
    run = train(ens, data, 30, record=[0, 30], observers=OBS)
    step = train(run.ens, data, 1, record=[], observers=())
    for e in range(2):
        hs = ref.layer_inputs(ens.net, run.ens.params, data.x, ens.multipliers, e)
        for l, name in enumerate(ens.net.names, start=1):
            w = run.ens.params[name][e].numpy()
            dw = step.ens.params[name][e].numpy() - w
            eq24 = np.mean([np.linalg.norm(w @ h) / (ref.spectral(w) * np.linalg.norm(h)) for h in hs[l - 1]
                            if np.linalg.norm(h) > 0])
            eq25 = np.mean([np.linalg.norm(dw @ h) / (ref.spectral(dw) * np.linalg.norm(h)) for h in hs[l - 1]
                            if np.linalg.norm(h) > 0])
            assert abs(values(run, "weight_alignment", name, 30)[e] - eq24) < 1e-12
            assert abs(values(run, "update_alignment", name, 30)[e] - eq25) < 1e-10
        z0 = ref.preacts(ens.net, run.params0, data.x, ens.multipliers, e)
        z1 = ref.preacts(ens.net, run.ens.params, data.x, ens.multipliers, e)
        for l in (1, 2):
            eq23 = np.mean([np.linalg.norm(a - b) / np.linalg.norm(b) for a, b in zip(z1[l - 1], z0[l - 1])])
            assert abs(values(run, "feature_change", f"W{l}", 30)[e] - eq23) < 1e-12
    assert np.all(values(run, "feature_change", "W1", 0) == 0)


def test_spectral_parametrization_init_meets_condition_1_across_widths():
    """experiments.md §3.3 acceptance: ‖W_l⁰‖₂ / √(n_l/n_{l−1}) ∈ [0.5, 4] under the spectral
    parametrization. Gaussian theory ‖W‖₂ ≈ σ(√fan_out + √fan_in) gives the ratio 1 + √(min/max fan)
    for the matrices (→ 1, no width growth) and 1 for the vector readout; SP's readout ratio grows ∝ √n."""
    widths = [64, 128, 256]
    ratio = {"spectral": [], "sp": []}
    for n in widths:
        net = MLP((16, n, n, 1), activation="relu")
        for scheme in ratio:
            ens = build(net, [{"seed": s} for s in range(3)], scheme=scheme)
            data = Data(torch.zeros(1, 16, dtype=F64), torch.zeros(1, 1, dtype=F64))
            r = train(ens, data, 0, record=[0], observers=["spectral"]).records()
            ratio[scheme].append(r[r.observable == "spectral_ratio"].groupby("layer", observed=True).value.mean())
    spec = pd.DataFrame(ratio["spectral"], index=widths)
    assert ((spec >= 0.5) & (spec <= 4)).all().all()
    for n in widths:
        assert abs(spec.loc[n, "W1"] / (1 + math.sqrt(16 / n)) - 1) < 0.1
        assert abs(spec.loc[n, "W2"] / 2 - 1) < 0.1  # square: 1 + 1
        assert abs(spec.loc[n, "W3"] - 1) < 0.1
    assert abs(scaling_exponent(widths, spec["W3"])) < 0.05
    sp = pd.DataFrame(ratio["sp"], index=widths)
    assert abs(scaling_exponent(widths, sp["W3"]) - 0.5) < 0.05  # SP readout: ‖W‖₂ ≈ 1 vs √(1/n)


def test_update_structure_rank_one_at_batch_one_and_matches_loops():
    ens, data = setup(widths=(5, 8, 7, 3), activation="relu", bias=False, wd=0.0)
    df = update_structure(ens, ens.params, data, batch_sizes=[1, 4, 9], layer=2, trials=2, seed=3)
    assert list(df.columns) == ["member", "batch_size", "trial", "update_stable_rank", "update_alignment"]
    one = df[df.batch_size == 1]
    assert np.allclose(one.update_stable_rank, 1, atol=1e-12) and np.allclose(one.update_alignment, 1, atol=1e-12)
    full = df[df.batch_size == 9]  # the whole set: no sampling left, compare with the full-batch gradient
    run = train(ens, data, 1, record=[], observers=())
    for e in range(2):
        dw = run.ens.params["W2"][e].numpy() - ens.params["W2"][e].numpy()
        h = ref.layer_inputs(ens.net, ens.params, data.x, ens.multipliers, e)[1]
        sr = (dw**2).sum() / ref.spectral(dw) ** 2
        al = np.mean([np.linalg.norm(dw @ v) / (ref.spectral(dw) * np.linalg.norm(v)) for v in h if np.linalg.norm(v) > 0])
        got = full[full.member == e]
        assert np.allclose(got.update_stable_rank, sr, atol=1e-10) and np.allclose(got.update_alignment, al, atol=1e-10)
        assert 1 < sr <= 3 + 1e-12  # rank ≤ batch outputs' span
    with pytest.raises(LazyrichError, match="batch sizes"):
        update_structure(ens, ens.params, data, batch_sizes=[10])


def test_stable_rank_of_known_matrices():
    m = torch.diag_embed(torch.tensor([[3.0, 1.0, 0.0], [2.0, 2.0, 2.0]], dtype=F64))
    assert torch.allclose(stable_rank(m), torch.tensor([10 / 9, 3.0], dtype=F64))


def test_first_update_meets_condition_1_under_mup_and_vanishes_under_ntp():
    """Yang et al. §5: ‖ΔW_2‖₂ = Θ(√(n_2/n_1)) = Θ(1) under μP; under NTP smaller by √n_2/n_1 ∝ n^{-1/2}
    (asymptotic slopes 0 and −½). Measured on the first full-batch GD step of the hidden layer
    (`update_spectral_ratio`) at widths 128–512, 3 seeds (measured −0.02 and −0.50; with fewer seeds
    NTP's random O(1) initial output makes the slope noisy)."""
    widths = [128, 256, 512]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 8, generator=g, dtype=F64)
    data = Data(x, torch.sign(x[:, :1]))
    slopes = {}
    for scheme in ("mup", "ntp"):
        vals = []
        for n in widths:
            ens = build(MLP((8, n, n, 1), activation="relu"), [{"seed": s} for s in range(3)], scheme=scheme, lr=0.1)
            r = train(ens, data, 0, record=[0], observers=["spectral"]).records()
            vals.append(r[(r.observable == "update_spectral_ratio") & (r.layer == "W2")].value.mean())
        slopes[scheme] = scaling_exponent(widths, vals)
    assert abs(slopes["mup"]) < 0.1 and abs(slopes["ntp"] + 0.5) < 0.15, slopes
