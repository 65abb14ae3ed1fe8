"""Parametrization tables: width exponents vs Tensor Programs V / spectral Parametrization 1,
abc-equivalence of representatives, and the spectral scaling of one SGD step."""
import math

import numpy as np
import pytest
import torch

from lazyrich import MLP, OptimizerSpec, build, forward, train
from lazyrich.errors import LazyrichError
from lazyrich.param import layer_table
from lazyrich.tasks import whitened_regression

# Width exponents (value ∝ n^exponent) of hidden-width n for a 3-layer MLP d → n → n → c, per role:
# (init_std, multiplier, lr_scale). μP: Tensor Programs V Table 3 (no multipliers); spectral:
# Yang-Simon-Bernstein Parametrization 1 (SGD lr n_l/n_{l-1}, Adam 1/n_{l-1}; normalized updates
# sqrt(n_l/n_{l-1})); SP/NTP: standard definitions; MF: μP with a 1/n readout multiplier.
EXPECTED = {
    ("mup", "sgd"): {"input": (0, 0, 1), "hidden": (-0.5, 0, 0), "output": (-1, 0, -1)},
    ("mup", "adam"): {"input": (0, 0, 0), "hidden": (-0.5, 0, -1), "output": (-1, 0, -1)},
    ("mup", "muon"): {"input": (0, 0, 0.5), "hidden": (-0.5, 0, 0), "output": (-1, 0, -0.5)},
    ("spectral", "sgd"): {"input": (0, 0, 1), "hidden": (-0.5, 0, 0), "output": (-1, 0, -1)},
    ("spectral", "adam"): {"input": (0, 0, 0), "hidden": (-0.5, 0, -1), "output": (-1, 0, -1)},
    ("spectral", "muon"): {"input": (0, 0, 0.5), "hidden": (-0.5, 0, 0), "output": (-1, 0, -0.5)},
    ("sp", "sgd"): {"input": (0, 0, 0), "hidden": (-0.5, 0, 0), "output": (-0.5, 0, 0)},
    ("ntp", "sgd"): {"input": (0, 0, 0), "hidden": (0, -0.5, 0), "output": (0, -0.5, 0)},
    ("mf", "sgd"): {"input": (0, 0, 1), "hidden": (-0.5, 0, 0), "output": (0, -1, 1)},
    ("mf", "adam"): {"input": (0, 0, 0), "hidden": (-0.5, 0, -1), "output": (0, -1, 0)},
}


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_width_exponents(key):
    scheme, opt = key
    small, big = layer_table((7, 256, 256, 3), scheme, opt), layer_table((7, 1024, 1024, 3), scheme, opt)
    for a, b in zip(small, big):
        got = tuple(math.log(getattr(b, f) / getattr(a, f)) / math.log(4) for f in ("init_std", "multiplier", "lr_scale"))
        assert np.allclose(got, EXPECTED[key][a.role], atol=1e-12), (a.name, got)


def test_mup_and_spectral_share_abc_invariants():
    """μP (TP5) and spectral differ only in width-independent constants (YSB Sec. 5)."""
    for n in (128, 512, 2048):
        mup, spec = layer_table((7, n, n, 3), "mup"), layer_table((7, n, n, 3), "spectral")
        for a, b in zip(mup, spec):
            r_init = (a.multiplier * a.init_std) / (b.multiplier * b.init_std)
            r_lr = (a.multiplier**2 * a.lr_scale) / (b.multiplier**2 * b.lr_scale)
            assert r_init == pytest.approx({"input": 1, "hidden": 1, "output": 1 / math.sqrt(3)}[a.role], rel=1e-12)
            assert r_lr == pytest.approx({"input": 7, "hidden": 1, "output": 1 / 3}[a.role], rel=1e-12)


def test_gamma_dial():
    base, rich = layer_table((5, 64, 1), "mup"), layer_table((5, 64, 1), "mup", gamma=0.2)
    assert rich[-1].multiplier == pytest.approx(base[-1].multiplier / 0.2)
    assert rich[0].lr_scale == pytest.approx(base[0].lr_scale * 0.2**2)
    ultra = layer_table((5, 64, 64, 1), "mup", gamma=8.0)
    assert ultra[1].lr_scale == pytest.approx(layer_table((5, 64, 64, 1), "mup")[1].lr_scale * 8 ** (2 / 3))
    off = layer_table((5, 64, 1), "mup", gamma=0.2, gamma_lr=False)
    assert off[0].lr_scale == base[0].lr_scale


@pytest.mark.parametrize("opt,kind", [("sgd", "gd"), ("adam", OptimizerSpec(kind="adam", eps=1e-30))])
def test_equivalent_representatives_same_trajectory(opt, kind):
    """Shifting (m·s, σ/s, lr/s² for SGD, lr/s for Adam) per layer leaves the function's trajectory
    unchanged. For Adam exactly only as ε → 0 (ε would have to scale with s too): ε = 1e-30 here."""
    net = MLP((5, 16, 12, 2), "tanh")
    data = whitened_regression(5, 2, 20, seed=3)
    shifts = {"W1": 3.0, "W2": 0.25, "W3": 7.0}
    runs = []
    for shifted in (False, True):
        rows = layer_table(net.widths, "mup", opt)
        if shifted:
            rows = [r.shift(shifts[r.name], opt) for r in rows]
        ov = {r.name: {"init_std": r.init_std, "multiplier": r.multiplier, "lr_scale": r.lr_scale} for r in rows}
        ens = build(net, [{"seed": 11}], scheme="mup", optimizer=opt, lr=0.02, overrides=ov)
        runs.append(train(ens, data, 40, kind, record=[]))
    f = [forward(net, r.ens.params, data.x, r.ens.multipliers) for r in runs]
    assert float((f[0] - f[1]).abs().max()) <= 1e-12
    assert float((runs[0].ens.params["W1"] - runs[0].params0["W1"]).abs().max()) > 1e-3  # it trained


def _one_step_ratios(scheme: str, widths: list[int]) -> np.ndarray:
    """||ΔW_l||₂ / sqrt(fan_out/fan_in) after one SGD step, per width (rows) and layer (cols)."""
    out = []
    data = whitened_regression(16, 4, 32, seed=0)
    for n in widths:
        net = MLP((16, n, n, 4), "relu")
        ens = build(net, [{"seed": 0}], scheme=scheme, lr=0.05)
        run = train(ens, data, 1, "gd", record=[])
        row = []
        for r, name in zip(layer_table(net.widths, scheme), net.names):
            dw = (run.ens.params[name] - run.params0[name])[0]
            top = torch.svd_lowrank(dw, q=min(40, *dw.shape), niter=4)[1][0]  # rank(ΔW) ≤ batch size 32
            row.append(float(top) / math.sqrt(r.fan_out / r.fan_in))
        out.append(row)
    return np.array(out)


def test_spectral_condition_one_sgd_step():
    """μP and spectral: slope of log ||ΔW||₂/sqrt(fan_out/fan_in) vs log width within ±0.1 of 0 for
    every layer (widths 64…2048); SP: the readout's is not."""
    widths = [64, 128, 256, 512, 1024, 2048]
    x = np.log(widths)
    for scheme in ("mup", "spectral"):
        slopes = np.polyfit(x, np.log(_one_step_ratios(scheme, widths)), 1)[0]
        assert np.all(np.abs(slopes) <= 0.1), (scheme, slopes)
    sp = np.polyfit(x, np.log(_one_step_ratios("sp", widths)), 1)[0]
    assert abs(sp[-1]) > 0.3, sp


def test_bad_input():
    with pytest.raises(LazyrichError, match="unknown parametrization"):
        layer_table((3, 4, 1), "mupp")
    with pytest.raises(LazyrichError, match="positive"):
        layer_table((3, -4, 1), "mup")
    with pytest.raises(LazyrichError, match="unknown tensor"):
        layer_table((3, 4, 1), "mup", overrides={"W9": {"lr_scale": 1}})
