"""Every diagnostic plugs into the recorder by name, lands in the tidy table, and is batched without
members interacting: a member observed inside an ensemble reads the same as that member run alone."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lazyrich import MLP, Data, build, train
from lazyrich.errors import LazyrichError
from lazyrich.observe import REGISTRY, make
from lazyrich.observe.kernel import KernelDistance

torch.set_num_threads(1)
F64 = torch.float64
DIAGNOSTICS = ["kernel_distance", "hamming", "param_distance", "weight_change", "spectral", "alignment",
               "feature_change", "balance", "sharpness", "fact", "agop", "linearized"]
EXPECTED = {"kernel_distance": "", "kernel_target_alignment": "", "hamming": "W1", "hamming_neurons": "W2",
            "param_distance": "", "weight_change_fro": "W3", "weight_change_spectral": "W1", "spectral_norm": "W2",
            "delta_spectral_norm": "W1", "update_spectral_norm": "W3", "stable_rank": "W1", "update_stable_rank": "W2",
            "spectral_ratio": "W3", "delta_spectral_ratio": "W1", "update_spectral_ratio": "W2",
            "weight_alignment": "W3", "update_alignment": "W1", "feature_change": "W2",
            "scaled_singular_values": "W1", "singular_value_gap": "W1-W2", "zeta": "W2-W3", "sharpness": "",
            "fact_residual": "W1", "fact_asymmetry": "W2", "fact_correlation": "W3", "agop_correlation": "W1",
            "linear_loss": "", "linear_distance": "", "linear_test_loss": "", "linear_test_distance": ""}


def setup():
    g = torch.Generator().manual_seed(8)
    x, xt = torch.randn(15, 4, generator=g, dtype=F64), torch.randn(6, 4, generator=g, dtype=F64)
    f = lambda z: torch.tanh(z[:, :1] - z[:, 2:3])  # noqa: E731
    rows = [{"seed": 0, "lr": 0.3, "weight_decay": 1e-3, "scheme": "mup"},
            {"seed": 2, "lr": 0.1, "weight_decay": 1e-2, "scheme": "sp"},
            {"seed": 5, "lr": 0.2, "weight_decay": 0.0, "scheme": "ntp"}]
    return build(MLP((4, 7, 6, 1), activation="relu", bias=True), rows), Data(x, f(x), xt, f(xt))


def test_all_diagnostics_register_and_fill_the_tidy_table():
    assert set(DIAGNOSTICS) <= set(REGISTRY)
    ens, data = setup()
    run = train(ens, data, 12, record=[0, 5, 12], observers=DIAGNOSTICS)
    r = run.records()
    assert {"member", "seed", "scheme", "step", "time", "observable", "layer", "index", "value"} <= set(r.columns)
    for obs, layer in EXPECTED.items():
        rows = r[(r.observable == obs) & (r.layer == layer)]
        assert len(rows) and set(rows.step) == {0, 5, 12} and set(rows.member) == {0, 1, 2}, obs
    finite = r[~r.observable.isin(["fact_residual", "fact_asymmetry", "fact_correlation"])]
    assert np.isfinite(finite[finite.step > 0].value).all()  # NaN only where FACT is undefined (κ = 0)
    fact = r[(r.observable == "fact_residual") & (r.step == 12)]
    assert fact[fact.member == 2].value.isna().all() and fact[fact.member < 2].value.notna().all()
    sv = r[(r.observable == "scaled_singular_values") & (r.layer == "W1") & (r.step == 12) & (r.member == 0)]
    assert sorted(sv["index"]) == list(range(4))  # min(7, 4) singular values, one row each


def test_members_do_not_interact():
    ens, data = setup()
    together = train(ens, data, 8, record=[8], observers=DIAGNOSTICS).records()
    alone = train(ens.select([1]), data, 8, record=[8], observers=DIAGNOSTICS).records()
    a = together[together.member == 1].set_index(["observable", "layer", "index"]).value.sort_index()
    b = alone.set_index(["observable", "layer", "index"]).value.sort_index()
    assert a.index.equals(b.index)
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=1e-9, atol=1e-12)


def test_bad_observer_options_are_lazyrich_errors():
    ens, data = setup()
    with pytest.raises(LazyrichError, match="weights"):
        train(ens, data, 1, record=[1], observers=[KernelDistance(weights="adam")])
    with pytest.raises(LazyrichError, match="unknown observable"):
        make(["kernel_distence"])
