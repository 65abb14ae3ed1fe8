"""Trajectories and overlays: predictions join run records by name without glue."""
import numpy as np
import pandas as pd
import pytest

from lazyrich import flow
from lazyrich.errors import LazyrichError
from lazyrich.tasks import whitened_regression
from lazyrich.theory import merge, overlay, single_neuron, single_neuron_inputs, trajectory

from .helpers import ensemble


def test_records_layout_matches_run_records():
    tr = trajectory([0.0, 1.0], layers={"w": "W1"}, loss=[1.0, 0.5], w=[[1.0, 2.0], [3.0, 4.0]])
    recs = tr.records(member=3)
    assert list(recs.columns) == ["member", "step", "time", "observable", "layer", "index", "value"]
    w = recs[recs.observable == "w"]
    assert list(w.layer.unique()) == ["W1"] and list(w.value) == [1.0, 2.0, 3.0, 4.0] and list(w["index"]) == [0, 1, 0, 1]
    both = merge(tr, trajectory([0.0, 1.0], mu=[0.0, 1.0]))
    assert set(k for k, _ in both.observables) == {"loss", "w", "mu"}
    with pytest.raises(LazyrichError, match="not predicted"):
        both["phi"]


def test_overlay_accepts_a_trajectory_a_function_a_table_or_one_per_member():
    rng = np.random.default_rng(0)
    data = whitened_regression(2, 1, n=4, seed=0)
    ens = ensemble((2, 1, 1), {"W1": rng.normal(size=(2, 1, 2)), "W2": rng.normal(size=(2, 1, 1))})
    times = np.linspace(0, 2, 5)
    run = flow(ens, data, times, observers=("loss", "single_neuron"), rtol=1e-12, atol=1e-13)
    recs = run.records()
    preds = {e: single_neuron(times, **single_neuron_inputs(ens, data, e)) for e in range(2)}
    fn = {e: (lambda t, e=e: single_neuron(t, **single_neuron_inputs(ens, data, e))) for e in range(2)}
    table = {e: p.records() for e, p in preds.items()}
    outs = [overlay(recs, preds), overlay(recs, fn), overlay(recs, table)]
    for ov in outs:
        assert len(ov) == len(recs) and ov.error.abs().max() < 1e-8
        assert {"value", "predicted", "error"} <= set(ov.columns)
    only = overlay(recs[recs.member == 0], preds[0], ["phi"])
    assert set(only.observable) == {"phi"}
    with pytest.raises(LazyrichError, match="shares no"):
        overlay(recs, trajectory([0.5], nothing=[1.0]))
    with pytest.raises(LazyrichError, match="lack columns"):
        overlay(pd.DataFrame({"time": [0.0]}), preds[0])
