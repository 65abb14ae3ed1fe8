"""param_groups with torch optimizers against the core's own update rules, and the inspect table."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lazyrich.dynamics.optim import OptimizerSpec, init_state, step
from lazyrich.errors import LazyrichError
from lazyrich.usermodels import inspect, param_groups, parametrize


def chain(n: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(6, n), nn.ReLU(), nn.Linear(n, n), nn.ReLU(), nn.Linear(n, 3)).double()


def _grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad()
    (0.5 * (model(x) - y).pow(2).sum(1).mean()).backward()
    return {k: p.grad.detach().clone() for k, p in model.named_parameters()}


@pytest.mark.parametrize("adjust", ["original", "match_rms_adamw"])
def test_torch_muon_with_our_groups_takes_the_tables_step(adjust):
    torch.manual_seed(0)
    model = parametrize(chain(32), "mup", base=chain(8), optimizer="muon", seed=0)
    x, y = torch.randn(10, 6, dtype=torch.float64), torch.randn(10, 3, dtype=torch.float64)
    rows = {r.name: r for r in inspect(model).itertuples()}
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    grads = _grads(model, x, y)
    groups = param_groups(model, lr=0.02, weight_decay=0.1, select="matrices", muon_adjust_lr_fn=adjust)
    assert sorted(n for g in groups for n in g["names"]) == ["0.weight", "2.weight", "4.weight"]
    torch.optim.Muon(groups, lr=0.02, adjust_lr_fn=adjust).step()
    # the core's Muon (torch semantics, bf16 Newton-Schulz, no shape adjustment): lr = 0.02·lr_scale
    spec = OptimizerSpec(kind="muon", momentum=0.95, nesterov=True, ns_dtype="bfloat16", adjust_lr=None,
                         weight_decay_mode="decoupled")
    names = [g for g in grads if g.endswith("weight")]
    p0 = {k: before[k][None] for k in names}
    new, _ = step(spec, p0, {k: grads[k][None] for k in names}, init_state(spec, p0),
                  {k: torch.tensor([0.02 * rows[k].lr_scale], dtype=torch.float64) for k in names},
                  {k: torch.tensor([0.1], dtype=torch.float64) for k in names})
    params = dict(model.named_parameters())
    for k in names:
        # torch decays by lr·wd with its *unadjusted* group lr, the core by its lr: compare the
        # orthogonalized parts (same bf16 Newton-Schulz: equal up to float64 rounding)
        ours = params[k].detach() - before[k] * (1 - groups[[k in g["names"] for g in groups].index(True)]["lr"] * 0.1)
        core = new[k][0] - before[k] * (1 - 0.02 * rows[k].lr_scale * 0.1)
        assert torch.allclose(ours, core, rtol=0, atol=1e-14), k
    assert math.isclose(rows["2.weight"].lr_scale, 1.0) and math.isclose(rows["0.weight"].lr_scale, math.sqrt(32 / 6))


def test_select_and_independent_weight_decay():
    model = parametrize(chain(16), "mup", base=chain(8), optimizer="sgd")
    groups = param_groups(model, lr=0.1, weight_decay=0.01, independent_wd=True)
    for g in groups:
        assert math.isclose(g["lr"] * g["weight_decay"], 0.1 * 0.01, rel_tol=1e-14)  # same shrink per step
    plain = param_groups(model, lr=0.1, weight_decay=0.01)
    assert {g["weight_decay"] for g in plain} == {0.01}
    others = param_groups(model, lr=0.1, select="others")
    assert sorted(n for g in others for n in g["names"]) == ["0.bias", "2.bias", "4.bias"]
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    with pytest.raises(LazyrichError, match="positive"):
        param_groups(model, lr=0.0)
    with pytest.raises(LazyrichError, match="select"):
        param_groups(model, lr=0.1, select="weights")


def test_inspect_table_is_the_dry_run_of_parametrize():
    model = chain(16)
    dry = inspect(model, "mf", base=chain(8), optimizer="adam")
    parametrize(model, "mf", base=chain(8), optimizer="adam")
    done = inspect(model)
    cols = ["name", "role", "init_std", "multiplier", "lr_scale", "wd_scale", "c_init", "c_lr"]
    assert dry[cols].equals(done[cols])
    out = done.set_index("name").loc["4.weight"]
    assert out.multiplier == 1 / 16 and out.c_lr == out.multiplier * out.lr_scale  # Adam: c_lr = m·lr
