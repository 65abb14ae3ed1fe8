"""The escape observer against a member-by-member numpy computation (SVD, entropy rank, permutation-matched
overlap), found by name, batched without members interacting."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lazyrich import MLP, Data, build, train
from lazyrich.errors import LazyrichError
from lazyrich.observe import REGISTRY, make
from lazyrich.observe.escape import Escape

torch.set_num_threads(1)


def setup():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(12, 4, generator=g, dtype=torch.float64)
    ens = build(MLP((4, 5, 5, 1), "relu"), [{"seed": s, "std_scale": sc} for s, sc in ((0, 0.1), (1, 1.0), (2, 0.5))])
    return ens, Data(x, torch.relu(x[:, :1]) - x[:, 1:2])


def test_registered_by_name():
    assert "escape" in REGISTRY and type(make(["escape"])[0]).__name__ == "Escape"


def test_values_equal_a_member_by_member_numpy_computation():
    ens, data = setup()
    rng = np.random.default_rng(0)
    target = [rng.normal(size=(5, 4)), rng.normal(size=(5, 5)), rng.normal(size=(1, 5))]
    run = train(ens, data, 3, record=[3], observers=[Escape(target)])
    r = run.records(config=False)
    ws = [run.ens.params[f"W{l}"].numpy() for l in (1, 2, 3)]
    total = sum((w ** 2).sum((1, 2)) for w in ws)
    for e in range(3):
        for l, w in enumerate(ws, 1):
            val = lambda obs: float(r[(r.observable == obs) & (r.layer == f"W{l}") & (r.member == e)].value.iloc[0])  # noqa: E731
            s = np.linalg.svd(w[e], compute_uv=False)
            p = s / s.sum()
            assert val("effective_rank") == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-10)
            assert val("layer_norm_share") == pytest.approx((w[e] ** 2).sum() / total[e], rel=1e-12)
            if l < 3:
                assert val("singular_ratio") == pytest.approx(s[0] / s[1], rel=1e-10)
        # overlap by brute force over all hidden permutations of layer 1 then layer 2 (greedy = exhaustive here: check
        # against the best of many random permutations, which can never beat the assignment)
        ov = [float(r[(r.observable == "escape_overlap") & (r.layer == f"W{l}") & (r.member == e)].value.iloc[0]) for l in (1, 2, 3)]
        w1 = ws[0][e]
        best = max(float((target[0] * w1[p]).sum()) for p in (rng.permutation(5) for _ in range(200)))
        assert ov[0] * np.linalg.norm(target[0]) * np.linalg.norm(w1) >= best - 1e-12


def test_overlap_is_one_on_a_permuted_copy_of_the_member():
    ens, data = setup()
    w = [ens.params[f"W{l}"][0].numpy() for l in (1, 2, 3)]
    p1, p2 = np.array([2, 0, 4, 1, 3]), np.array([1, 3, 0, 4, 2])
    target = [w[0][p1], w[1][p2][:, p1], w[2][:, p2]]
    run = train(ens.select([0]), data, 0, record=[0], observers=[Escape(target)])
    r = run.records(config=False)
    assert np.allclose(r[r.observable == "escape_overlap"].value, 1.0, atol=1e-12)


def test_wrong_target_shape_is_a_clear_error():
    ens, data = setup()
    with pytest.raises(LazyrichError, match="same widths"):
        train(ens, data, 0, record=[0], observers=[Escape([np.ones((3, 4)), np.ones((5, 5)), np.ones((1, 5))])])
