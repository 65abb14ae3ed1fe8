"""Against microsoft/mup 1.0.0 (with MuReadout on its side): per tensor, the abc-invariants agree as
width ratios between a base and a target width — c_init = multiplier·init std (within sampling
error), c_lr = multiplier²·lr for SGD and multiplier·lr for Adam (exactly), and the per-step decay
lr·wd (exactly, with independent_wd). Raw stds and lrs differ: the two libraries pick different
abc-representatives (mup keeps a 1/width readout multiplier; the core table keeps multipliers 1)."""
from __future__ import annotations

import math

import pytest
import torch
from .user_models import MLP, Block

from lazyrich.usermodels import param_groups, parametrize, plan_of

mup = pytest.importorskip("mup", reason="oracle: pip install --no-deps mup==1.0.0")

BASE, TARGET, DELTA = 64, 256, 128


def _mup_side(arch, n: int, seed: int) -> dict[str, dict[str, float]]:
    torch.manual_seed(seed)
    kw = {"readout": mup.MuReadout} | ({"manual": True} if arch is Block else {})
    model = arch(n, **kw)
    mup.set_base_shapes(model, arch(BASE, **kw), delta=arch(DELTA, **kw))
    mult = {"out.weight": model.out.output_mult / model.out.width_mult()}  # MuReadout scales its input
    out: dict[str, dict[str, float]] = {}
    lr_of = {}
    for key, opt in (("sgd", mup.MuSGD(model.parameters(), lr=1.0, weight_decay=1.0)),
                     ("adam", mup.MuAdam(model.parameters(), lr=1.0, weight_decay=1.0))):
        lr_of[key] = {id(p): (g["lr"], g["weight_decay"]) for g in opt.param_groups for p in g["params"]}
    for name, p in model.named_parameters():
        m = mult.get(name, 1.0)
        (lr_s, wd_s), (lr_a, _) = lr_of["sgd"][id(p)], lr_of["adam"][id(p)]
        out[name] = {"c_init": m * float(p.detach().double().std()), "n": p.numel(), "c_lr_sgd": m * m * lr_s,
                     "c_lr_adam": m * lr_a, "decay": lr_s * wd_s}
    return out


def _our_side(arch, n: int, seed: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for opt in ("sgd", "adam"):
        model = parametrize(arch(n), "mup", base=arch(BASE), delta=arch(DELTA), optimizer=opt, seed=seed)
        mult = {r.name: r.multiplier for r in plan_of(model).rows}
        groups = param_groups(model, lr=1.0, weight_decay=1.0, independent_wd=True)
        lr = {name: (g["lr"], g["weight_decay"]) for g in groups for name in g["names"]}
        for name, p in model.named_parameters():
            m, (g_lr, g_wd) = mult[name], lr[name]
            row = out.setdefault(name, {"c_init": m * float(p.detach().double().std()), "n": p.numel()})
            if opt == "sgd":
                row.update(c_lr_sgd=m * m * g_lr, decay=g_lr * g_wd)
            else:
                row["c_lr_adam"] = m * g_lr
    return out


@pytest.mark.parametrize("arch", [MLP, Block], ids=["mlp", "attention+mlp"])
def test_abc_invariants_agree_with_mup(arch):
    theirs = {n: _mup_side(arch, n, seed=1) for n in (BASE, TARGET)}
    ours = {n: _our_side(arch, n, seed=2) for n in (BASE, TARGET)}
    assert set(theirs[BASE]) == set(ours[BASE])
    checked = 0
    for name in theirs[BASE]:
        ratio = lambda side, key: side[TARGET][name][key] / side[BASE][name][key]  # noqa: E731
        for key in ("c_lr_sgd", "c_lr_adam", "decay"):
            assert math.isclose(ratio(ours, key), ratio(theirs, key), rel_tol=1e-12), (name, key)
        if name.endswith("weight") and "norm" not in name:  # biases: mup keeps nn.Linear's init, ours is 0
            # log-ratio of four sample stds: standard error sqrt(Σ 1/(2N)) (Gaussian; uniform is smaller)
            se = math.sqrt(sum(1 / (2 * side[n][name]["n"]) for side in (ours, theirs) for n in (BASE, TARGET)))
            gap = abs(math.log(ratio(ours, "c_init")) - math.log(ratio(theirs, "c_init")))
            assert gap < 5 * se, (name, gap, se)
            checked += 1
    assert checked == (3 if arch is MLP else 8)
    # the invariants do move with width (ratios of 1 everywhere would make the comparison empty)
    out, hidden = ours[TARGET]["out.weight"], ours[TARGET]["fc2.weight" if arch is MLP else "q.weight"]
    assert math.isclose(out["c_init"] / ours[BASE]["out.weight"]["c_init"], BASE / TARGET, rel_tol=0.1)
    assert math.isclose(hidden["c_lr_adam"] / ours[BASE]["fc2.weight" if arch is MLP else "q.weight"]["c_lr_adam"],
                        BASE / TARGET, rel_tol=1e-12)
