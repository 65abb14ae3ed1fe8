"""Run.final: one row per member with its configuration beside the values, equal to the records table."""
import numpy as np
import pytest
import torch

import lazyrich as lr
from lazyrich.errors import LazyrichError
from lazyrich.observe import Data


def _run(lrs=(0.1, 0.2, 1e4)):
    g = torch.Generator().manual_seed(0)
    data = Data(torch.randn(16, 3, generator=g, dtype=torch.float64), torch.randn(16, 1, generator=g, dtype=torch.float64))
    ens = lr.build(lr.MLP((3, 8, 1), "relu"), [{"lr": v, "seed": i} for i, v in enumerate(lrs)])
    return lr.train(ens, data, 20, "gd", record=[0, 10, 20], observers=["loss", "param_distance"])


def test_final_is_the_last_recorded_value_beside_the_configuration():
    run = _run()
    table = run.final(["loss", "param_distance"])
    assert list(table.columns) == ["lr", "seed", "status", "diverged_step", "loss", "param_distance"]  # one member diverged
    recs = run.records(config=False)
    for obs in ("loss", "param_distance"):
        for e in range(3):
            got = recs[(recs.observable == obs) & (recs.member == e) & (recs.step == 20)].value.to_numpy()
            np.testing.assert_array_equal(table.loc[e, obs], got[0])
    assert table.loc[2, "status"] == "diverged" and list(table.lr) == [0.1, 0.2, 1e4]
    at0 = run.final("loss", step=0, config=False)
    assert list(at0.columns) == ["loss"] and at0.index.name == "member"
    np.testing.assert_array_equal(at0.loss.to_numpy(), recs[(recs.observable == "loss") & (recs.step == 0)].value.to_numpy())


def test_final_without_divergence_has_no_status_and_refuses_unknown_names():
    run = _run((0.1, 0.2))
    assert list(run.final("loss").columns) == ["lr", "seed", "loss"]
    with pytest.raises(LazyrichError, match="not recorded"):
        run.final("hamming")
    with pytest.raises(LazyrichError, match="recorded steps are 0, 10, 20"):
        run.final("loss", step=5)
