"""Expansion of axes into members, grouping into ensembles and chunking to the memory budget."""
import itertools
import math

import numpy as np
import pytest

from lazyrich.sweep import expand, from_dict, plan
from lazyrich.sweep.planner import GROUP_KEYS, member_bytes, shared_bytes


def test_grid_times_zip_order_and_derived(tiny):
    spec = from_dict(tiny(axes=[{"grid": {"tau": [0.5, 1.0, 2.0], "delta": [-1.0, 1.0]}},
                                {"zip": {"seed": [7, 8], "task_seed": [0, 1]}}],
                          derived={"lr": "0.005 / tau**2"}))
    m = expand(spec)
    want = [(t, d, s, ts) for t, d in itertools.product([0.5, 1.0, 2.0], [-1.0, 1.0]) for s, ts in [(7, 0), (8, 1)]]
    assert list(zip(m.tau, m.delta, m.seed, m.task_seed)) == want  # first block varies slowest
    np.testing.assert_array_equal(m.lr, 0.005 / m.tau**2)
    assert (m.width == 6).all() and (m.scheme == "sp").all() and (m.gamma == 1.0).all()  # base values
    assert m.seed.dtype == np.int64 and m.tau.dtype == np.float64 and list(m.index) == list(range(12))


def test_random_block_is_reproducible_and_in_range(tiny):
    axis = {"random": {"n": 50, "seed": 4, "dists": {"lr": {"loguniform": [1e-3, 1e-1]}, "delta": {"uniform": [-1, 1]},
                                                      "seed": {"integers": [10, 20]}, "scheme": {"choice": ["sp", "mup"]}}}}
    a, b = expand(from_dict(tiny(axes=[axis]))), expand(from_dict(tiny(axes=[axis])))
    assert a.equals(b)
    assert a.lr.between(1e-3, 1e-1).all() and a.delta.between(-1, 1).all() and a.seed.between(10, 19).all()
    assert set(a.scheme) == {"sp", "mup"} and a.lr.nunique() == 50
    other = dict(axis, random={**axis["random"], "seed": 5})
    assert not expand(from_dict(tiny(axes=[other]))).lr.equals(a.lr)


def test_chunks_cover_members_once_and_share_shapes(tiny):
    spec = from_dict(tiny(axes=[{"grid": {"width": [4, 8], "task_seed": [0, 1], "tau": [0.5, 1.0, 2.0]}},
                                {"grid": {"seed": [0, 1, 2]}}],
                          execution={"chunk_members": 4}))
    p = plan(spec)
    ids = [i for c in p.chunks for i in c.members]
    assert sorted(ids) == list(range(p.size)) == list(range(36))
    for c in p.chunks:
        rows = p.members.loc[list(c.members)]
        assert all(rows[k].nunique() == 1 for k in GROUP_KEYS)
        assert tuple(rows.iloc[0][list(GROUP_KEYS)]) == c.group
        assert list(c.members) == sorted(c.members)
    # 4 groups of 9 members, cap 4 → 3 near-equal chunks of 3 each
    assert [c.size for c in p.chunks] == [3] * 12
    assert [c.index for c in p.chunks] == list(range(12))


def test_memory_budget_caps_chunks(tiny):
    spec = from_dict(tiny(axes=[{"grid": {"seed": list(range(40))}}], execution={"memory_mb": 0.05}))
    row = expand(spec).iloc[0]
    per, shared = member_bytes(spec, row), shared_bytes(spec, "teacher_student")
    cap = int((0.05 * 2**20 - shared) // per)
    assert 1 <= cap < 40
    p = plan(spec)
    assert len(p.chunks) == math.ceil(40 / cap)
    assert max(c.size for c in p.chunks) <= cap and max(c.size for c in p.chunks) - min(c.size for c in p.chunks) <= 1
    assert all(shared + c.size * per <= 0.05 * 2**20 for c in p.chunks)


def test_plan_depends_on_the_spec_only(tiny):
    a, b = plan(from_dict(tiny())), plan(from_dict(tiny()))
    assert a.chunks == b.chunks and a.members.equals(b.members)


def test_member_bytes_counts_parameters_and_activations(tiny):
    spec = from_dict(tiny())
    row = expand(spec).iloc[0]
    # widths (5, 6, 1): 36 parameters × (4 copies); activations 6·n·7 + 2·n_test·7; float64
    assert member_bytes(spec, row) == 8 * (4 * 36 + 6 * 20 * 7 + 2 * 10 * 7)
    with pytest.raises(Exception):
        from_dict(tiny(execution={"memory_mb": 0}))
