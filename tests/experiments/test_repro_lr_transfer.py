"""lr-transfer-lm: the quick run (verdicts, claims.json schema, outputs) and its helpers against hand computations:
the parabola optimum on an exact quadratic, per-seed shifts, μP relative to the base width (depth.md's table),
and the shared base cell (at the base width and depth every scheme is SP)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from lazyrich.experiments import lr_transfer_lm as lt
from lazyrich.experiments.base import get
from lazyrich.usermodels import inspect, param_groups
from lazyrich.usermodels.hf import logits

from .quick_checks import check_quick_outcome

@pytest.mark.quick_repro
def test_quick_run(quick_outcomes):
    outcome = quick_outcomes("lr-transfer-lm")
    check_quick_outcome(outcome)  # the depth control's pinned fail lives in quick_checks.KNOWN_VERDICTS
    opt = pd.read_csv(outcome.out / "optima.csv")
    assert opt.bracketed.all() and (outcome.out / "lr_curves.png").exists()
    sp = opt[opt.arm == "sp-width"].pivot(index="seed", columns="width", values="log2_lr_opt")
    assert (sp[64] < sp[16]).all()  # SP's optimum moves down with width on every seed (Adam: lr ∝ 1/width)


def test_registered():
    exp = get("lr-transfer-lm")
    assert set(exp.sizes) == {"quick", "full"} and set(exp.decisive) == {"width-shift", "depth-shift"}
    assert exp.sizes["quick"]["base_width"] == min(exp.sizes["quick"]["widths"])


def test_optimum_is_the_vertex_of_a_quadratic():
    x = np.arange(-8.0, -2.0)
    opt, inside = lt.optimum(x, (x + 5.3) ** 2 + 2.0)
    assert inside and opt == pytest.approx(-5.3, abs=1e-12)
    opt, inside = lt.optimum(x, -x)  # decreasing: the optimum is beyond the grid's top
    assert not inside and opt == -3.0
    y = (x + 6.0) ** 2
    y[-1] = math.inf  # a diverged run at the largest lr
    assert lt.optimum(x, y) == (pytest.approx(-6.0, abs=1e-12), True)


def test_shifts_per_seed():
    opt = pd.DataFrame(dict(arm="a", width=[16, 64, 16, 64], seed=[0, 0, 1, 1], log2_lr_opt=[-5.0, -7.5, -4.0, -4.5]))
    assert lt.shifts(opt, "a", "width").tolist() == [-2.5, -0.5]


CFG = dict(lt.QUICK)


def _lr(model: torch.nn.Module) -> dict[str, float]:
    return {n: g["lr"] for g in param_groups(model, 1.0) for n in g["names"]}


def test_relative_mup_follows_the_depth_md_table():
    """μP relative to N₀ = 16 at N = 64 (m_N = 4): hidden Adam lr η/m_N, vector-like lr η, readout c_init ÷ m_N,
    init std of hidden matrices σ/sqrt(m_N) — against SP at the base."""
    sp0 = inspect(lt.make_model(CFG, "sp", 16, 2, 0)).set_index("name")
    mu = inspect(lt.make_model(CFG, "mup", 64, 2, 0)).set_index("name")
    for name in ("blocks.0.attn.q.weight", "blocks.1.mlp.up.weight"):
        assert mu.lr_scale[name] == pytest.approx(sp0.lr_scale[name] / 4, rel=1e-12)
        assert mu.init_std[name] == pytest.approx(sp0.init_std[name] / 2, rel=1e-12)
    for name in ("tok.weight", "blocks.0.ln1.weight", "blocks.0.attn.q.bias"):
        assert mu.lr_scale[name] == pytest.approx(sp0.lr_scale[name], rel=1e-12)
    assert mu.c_init["head.weight"] == pytest.approx(sp0.c_init["head.weight"] / 4, rel=1e-12)
    cp = inspect(lt.make_model(CFG, "completep", 16, 8, 0)).set_index("name")
    branch = cp.branch_depth_exp[cp.branch_depth_exp != 0]
    assert sorted(branch.index) == sorted(f"blocks.{k}.{b}.weight" for k in range(8) for b in ("attn.o", "mlp.down"))
    assert (branch == -1.0).all() and cp.eps_scale["blocks.3.attn.q.weight"] == pytest.approx(0.25)


@pytest.mark.parametrize("arch", ["gpt", "hf-gpt2"])
def test_every_scheme_is_sp_at_the_base_cell(arch):
    """The sweep trains the (base width, base depth) cell once for all arms: that is only right if μP and
    CompleteP there are SP — the same function from the same seed and the same AdamW groups."""
    if arch == "hf-gpt2":
        pytest.importorskip("transformers", reason='the hf extra: pip install "lazyrich[hf]"')
    cfg = dict(CFG, arch=arch)
    x = torch.randint(0, 256, (2, cfg["seq"]), generator=torch.Generator().manual_seed(0))
    sp = lt.make_model(cfg, "sp", cfg["base_width"], cfg["base_depth"], 3)
    for scheme in ("mup", "completep"):
        other = lt.make_model(cfg, scheme, cfg["base_width"], cfg["base_depth"], 3)
        assert torch.allclose(logits(other(x)), logits(sp(x)), rtol=0, atol=1e-5)
        a, b = _lr(other), _lr(sp)
        assert a.keys() == b.keys() and all(a[k] == pytest.approx(b[k], rel=1e-12) for k in a)
