"""Depth schemes on nn.Modules: blocks and branch outputs found, m_L^(−α) in the forward pass (against
a hand-written residual forward), the learning-rate/ε factors of the papers, base at another depth,
metadata through torch.save, and one-line errors."""
from __future__ import annotations

import io
import math

import pytest
import torch
from torch import nn

from lazyrich.errors import LazyrichError
from lazyrich.param.depth import DEPTH_SCHEMES, alpha_of, exponents, factors
from lazyrich.usermodels import param_groups, parametrize, plan, plan_of, restore
from lazyrich.usermodels.coord import ResMLP
from lazyrich.usermodels.depth import branch_outputs, find_blocks


def test_exponents_are_the_papers():
    # TP VI depth-μP (α = ½): SGD lr constant in L, Adam lr ∝ L^(−½); CompleteP (α = 1) Adam: no depth factor
    assert exponents(0.5, "sgd").lr == 0.0 and exponents(0.5, "adam").lr == -0.5
    assert exponents(1.0, "adam").lr == 0.0 and exponents(1.0, "sgd").lr == 1.0 and exponents(1.0, "muon").lr == 0.0
    assert exponents(1.0, "adam").eps == -1.0 and exponents(1.0, "adam").branch == -1.0 and exponents(1.0, "adam").wd == 0.0
    f = factors(1.0, "adam", 8, 2)
    assert (f.ratio, f.branch, f.lr, f.eps) == (4.0, 0.25, 1.0, 0.25)
    assert alpha_of("completep") == 1.0 and alpha_of("depth-mup") == 0.5 and alpha_of(None) == 0.0
    assert set(DEPTH_SCHEMES) == {"none", "depth-mup", "completep"}
    with pytest.raises(LazyrichError, match="unknown depth scheme"):
        alpha_of("complete")
    with pytest.raises(LazyrichError, match=r"\[0, 1\]"):
        alpha_of(1.5)


def test_blocks_and_branches_found():
    m = ResMLP(16, 3)
    assert find_blocks(m) == "blocks" and branch_outputs(m.blocks[0]) == ["fc2"]
    p = plan(m, "mup", optimizer="adam", depth="completep")
    assert p.depth["branches"] == ["blocks.0.fc2", "blocks.1.fc2", "blocks.2.fc2"]
    assert p.depth["n_blocks"] == 3 and p.depth["base_blocks"] == 1 and p.depth["branch_mult"] == pytest.approx(1 / 3)


def _manual(m: ResMLP, x: torch.Tensor, mult: float, p) -> torch.Tensor:
    """The residual forward written out: x + mult·fc2(relu(fc1(LN x))), width multipliers from the plan."""
    rows = {r.module: r.multiplier for r in p.rows if r.hooked}
    lin = lambda mod, h: torch.nn.functional.linear(h * rows.get(mod, 1.0), getattr_path(m, mod).weight,  # noqa: E731
                                                   getattr_path(m, mod).bias)
    h = lin("inp", x)
    for k, b in enumerate(m.blocks):
        h = h + mult * lin(f"blocks.{k}.fc2", torch.relu(lin(f"blocks.{k}.fc1", b.norm(h))))
    return lin("out", m.norm(h))


def getattr_path(m: nn.Module, path: str) -> nn.Module:
    return dict(m.named_modules())[path]


@pytest.mark.parametrize("depth,alpha", [("completep", 1.0), ("depth-mup", 0.5), (0.75, 0.75)])
def test_forward_carries_branch_multiplier(depth, alpha):
    torch.manual_seed(0)
    m = parametrize(ResMLP(24, 6), "mf", base=ResMLP(8, 2), optimizer="sgd", depth=depth, seed=1)
    p = plan_of(m)
    assert p.depth["branch_mult"] == pytest.approx(3.0 ** -alpha)  # m_L = 6/2
    x = torch.randn(5, 32)
    torch.testing.assert_close(m(x), _manual(m, x, 3.0 ** -alpha, p), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "muon"])
def test_lr_and_eps_factors_inside_blocks_only(optimizer):
    shallow = plan(ResMLP(32, 2), "mup", base=ResMLP(8, 2), optimizer=optimizer)
    deep = plan(ResMLP(32, 8), "mup", base=ResMLP(8, 2), optimizer=optimizer, depth="depth-mup")
    width_only = {r.name.replace("blocks.0.", "blocks.k."): r for r in shallow.rows if not r.name.startswith("blocks.1.")}
    want = 4.0 ** (0.0 if optimizer == "sgd" else -0.5)  # m_L = 8/2, α = ½
    for r in deep.rows:
        ref = width_only[r.name.replace(r.name.split(".")[1], "k", 1) if r.in_block else r.name]
        assert r.in_block == r.name.startswith("blocks.")
        assert r.lr_scale == pytest.approx(ref.lr_scale * (want if r.in_block else 1.0))
        assert r.init_std == ref.init_std and r.wd_scale == ref.wd_scale
        assert r.eps_scale == pytest.approx(4.0 ** -0.5 if (r.in_block and optimizer == "adam") else 1.0)
    m = parametrize(ResMLP(32, 8), "mup", base=ResMLP(8, 2), optimizer="adam", depth="completep")
    groups = param_groups(m, lr=1e-2, eps=1e-8)
    eps = {n: g["eps"] for g in groups for n in g["names"]}
    assert eps["blocks.3.fc1.weight"] == pytest.approx(1e-8 / 4) and eps["out.weight"] == 1e-8


def test_base_gives_width_and_depth():
    p = plan(ResMLP(64, 8), "mup", base=ResMLP(16, 2), optimizer="adam", depth="completep")
    roles = {r.name: r.role for r in p.rows}
    assert roles["inp.weight"] == "input" and roles["out.weight"] == "output"
    assert all(roles[f"blocks.{k}.fc{i}.weight"] == "hidden" for k in range(8) for i in (1, 2))
    assert p.depth["ratio"] == 4.0 and p.depth["branch_mult"] == 0.25
    # only depth differs: no width, the error says so
    with pytest.raises(LazyrichError, match="no dimension looks like a width"):
        plan(ResMLP(16, 8), "mup", base=ResMLP(16, 2), depth="completep")


def test_metadata_survives_torch_save_and_restore():
    m = parametrize(ResMLP(32, 4), "mup", base=ResMLP(8, 2), optimizer="adam", depth="completep", seed=0)
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    sd = torch.load(buf, weights_only=True)
    fresh = restore(ResMLP(32, 4), sd)
    x = torch.randn(3, 32)
    torch.testing.assert_close(fresh(x), m(x))
    assert plan_of(fresh).depth == plan_of(m).depth
    # a checkpoint with branch multipliers does not load silently into a model parametrized without them
    other = parametrize(ResMLP(32, 4), "mup", base=ResMLP(8, 2), optimizer="adam")
    with pytest.raises(LazyrichError, match="restore"):
        other.load_state_dict(sd)
    whole = io.BytesIO()
    torch.save(m, whole)
    whole.seek(0)
    again = torch.load(whole, weights_only=False)
    torch.testing.assert_close(again(x), m(x))


class NoBlocks(nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, n), nn.Linear(n, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x)))


def test_errors_are_one_line():
    with pytest.raises(LazyrichError, match="no repeated residual blocks") as e:
        parametrize(NoBlocks(8), "mup", base=NoBlocks(4), depth="completep")
    assert "\n" not in str(e.value) and "blocks=" in str(e.value)
    with pytest.raises(LazyrichError, match="own class") as e:
        parametrize(ResMLP(16, 4), "mup", base=NoBlocks(4), depth="completep")
    assert "\n" not in str(e.value)
    with pytest.raises(LazyrichError, match="blocks='nope'"):
        plan(ResMLP(16, 4), "mup", depth="completep", blocks="nope")
    with pytest.raises(LazyrichError, match="match no module"):
        plan(ResMLP(16, 4), "mup", depth="completep", branches=["*.zzz"])
    # α = 0 needs no blocks (plain μP)
    assert plan(NoBlocks(8), "mup", base=NoBlocks(4), depth="none").depth is None
    assert math.isclose(plan(ResMLP(16, 4), "mup", depth=1.0, branches=["blocks.*.fc1"]).depth["branch_mult"], 0.25)


class MHABlock(nn.Module):
    """x + MHA(LN x) + ...: nn.MultiheadAttention returns a tuple; its first element is the branch."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(n)
        self.attn = nn.MultiheadAttention(n, 2, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(n, 2 * n), nn.GELU(), nn.Linear(2 * n, n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.norm(x)
        x = x + self.attn(u, u, u, need_weights=False)[0]
        return x + self.mlp(self.norm(x))


class MHANet(nn.Module):
    def __init__(self, n: int, depth: int) -> None:
        super().__init__()
        self.inp, self.layers, self.out = nn.Linear(5, n), nn.ModuleList(MHABlock(n) for _ in range(depth)), nn.Linear(n, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for b in self.layers:
            h = b(h)
        return self.out(h)


def test_multihead_attention_branch_scaled():
    torch.manual_seed(0)
    m = MHANet(16, 4)
    x = torch.randn(2, 7, 5)
    p = plan(m, "sp", depth="completep")
    assert p.depth["branches"][:2] == ["layers.0.attn", "layers.0.mlp.2"] and len(p.depth["branches"]) == 8
    parametrize(m, "sp", depth="completep", init="keep")
    ref = MHANet(16, 4)  # the same weights, no hooks: the residual forward written out with 1/L = 0.25
    ref.load_state_dict({k: v for k, v in m.state_dict().items() if "_lazyrich" not in k})
    with torch.no_grad():
        h = ref.inp(x)
        for b in ref.layers:
            u = b.norm(h)
            h = h + 0.25 * b.attn(u, u, u, need_weights=False)[0]
            h = h + 0.25 * b.mlp(b.norm(h))
        torch.testing.assert_close(m(x), ref.out(h))
