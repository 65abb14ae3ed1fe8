"""Coord check: the readout's update is width-stable under μP and grows under SP; the ablation ladder."""
from __future__ import annotations

import pytest
import torch
from .user_models import Block

from lazyrich.errors import LazyrichError
from lazyrich.usermodels import ResMLP, coord_check, ladder_plans, mlp, plan, resmlp

WIDTHS = (128, 256, 512, 1024)


@pytest.fixture(scope="module")
def check():
    return coord_check(mlp(), WIDTHS, ("sp", "mup"), ladder=True, steps=3, lr=0.005, seeds=(0, 1))


def _slope(slopes, label, step=3, module="4", quantity="update"):
    s = slopes[(slopes.label == label) & (slopes.step == step) & (slopes.module == module) & (slopes.quantity == quantity)]
    assert len(s) == 1
    return float(s.slope.iloc[0])


def test_readout_update_flat_under_mup_growing_under_sp(check):
    slopes = check.slopes()
    labels = list(dict.fromkeys(check.records.label))
    assert labels == ["0: SP", "1: + readout init", "2: + readout lr", "3: μP"]  # hidden rung changes nothing (SGD)
    for step in (1, 2, 3):
        assert abs(_slope(slopes, "3: μP", step)) < 0.1
        assert _slope(slopes, "0: SP", step) > 0.3
    assert _slope(slopes, "0: SP", 1) == pytest.approx(1.0, abs=0.15)  # SGD under SP: Δf ∝ ‖h‖² ∝ width
    # SP's input layer learns less and less with width (features freeze), μP's does not
    assert _slope(slopes, "0: SP", 3, module="0") < -0.4 and abs(_slope(slopes, "3: μP", 3, module="0")) < 0.1
    r = check.records
    assert set(r.columns) == {"label", "width", "depth", "seed", "step", "module", "site", "role", "quantity", "value"}
    assert (r[r.step == 0].query("quantity == 'update'").value == 0).all()


def test_ladder_ends_at_mup_and_starts_at_sp():
    model, base, delta = mlp()(64), mlp()(16), mlp()(32)
    rungs = ladder_plans(model, base, delta)
    full, sp = plan(model, "mup", base=base), plan(model, "sp", base=base)
    assert [(r.init_std, r.multiplier, r.lr_scale) for r in rungs[-1][1].rows] == \
        [(r.init_std, r.multiplier, r.lr_scale) for r in full.rows]
    assert [(r.init_std, r.multiplier, r.lr_scale) for r in rungs[0][1].rows] == \
        [(r.init_std, r.multiplier, r.lr_scale) for r in sp.rows]
    attn = [label for label, _ in ladder_plans(Block(32), Block(8), Block(16), "adam")]
    assert attn == ["SP", "+ readout init", "+ readout lr", "+ hidden", "+ attention 1/d"]  # Adam: input lr as SP


def test_plot_and_custom_batch(tmp_path):
    cc = coord_check(Block, (16, 32), ("mup",), steps=1, lr=0.01, seeds=(0,), batch=torch.randn(4, 5, 12),
                     optimizer="adam")
    path = cc.plot(tmp_path / "coord.png")
    assert path.stat().st_size > 1000
    with pytest.raises(LazyrichError, match="at least two widths"):
        coord_check(mlp(), (64,), ("mup",))
    with pytest.raises(LazyrichError, match="cannot guess inputs"):
        coord_check(lambda n: torch.nn.Sequential(torch.nn.Conv1d(1, n, 3), torch.nn.Flatten(), torch.nn.Linear(6 * n, 2)),
                    (8, 16))


DEPTHS = (2, 4, 8, 16, 32)


@pytest.fixture(scope="module")
def depth_check():
    return coord_check(resmlp(), [32], ["mup", "mup+completep"], depths=DEPTHS, optimizer="adam", lr=0.05, steps=2,
                       seeds=(0,), progress=False)


def test_block_update_flat_in_depth_under_completep_not_under_mup(depth_check):
    """The issue's criterion: the per-block update (the stream after a block, at the same relative depth)
    has a log-log depth slope within ±0.1 under CompleteP over depths 2…32, and not under μP (α = 0)."""
    slopes = depth_check.slopes("depth")
    u = slopes[(slopes.quantity == "update") & (slopes.role == "block")]
    for site in ("blocks[0.5]", "blocks[1]"):
        for step in (1, 2):
            got = u[(u.site == site) & (u.step == step)].set_index("label").slope
            assert abs(got["mup+completep"]) <= 0.1, (site, step, got.to_dict())
            assert got["mup"] > 0.3, (site, step, got.to_dict())
    # the readout's update too: flat under CompleteP, growing without the depth scheme
    out = slopes[(slopes.quantity == "update") & (slopes.site == "out") & (slopes.step == 1)].set_index("label").slope
    assert abs(out["mup+completep"]) <= 0.1 and out["mup"] > out["mup+completep"] + 0.1
    # sites compare equal relative depths; blocks[0.25] exists only from depth 4 on
    assert u[u.site == "blocks[0.25]"].n.max() == 4 and u[u.site == "blocks[1]"].n.max() == len(DEPTHS)


def test_ladder_gains_the_depth_rung():
    rungs = ladder_plans(ResMLP(32, 4), ResMLP(8, 4), ResMLP(16, 4), "adam", depth="completep")
    assert rungs[-1][0] == "+ depth α=1" and rungs[-1][1].depth["branch_mult"] == 0.25
    assert rungs[-2][1].depth is None and rungs[0][0] == "SP"
    with pytest.raises(LazyrichError, match="two widths or two depths"):
        coord_check(resmlp(), [32], depths=[4])
    with pytest.raises(LazyrichError, match="unknown depth scheme"):
        coord_check(resmlp(), [32], ["mup+complete"], depths=[2, 4])
