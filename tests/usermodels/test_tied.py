"""Tied embeddings: the tied tensor keeps the embedding's row and the readout gets the multiplier
m = c_init(untied readout)/σ(embedding) (mup's MuSharedReadout choice). Checked: the abc-invariants of
the tied readout equal the untied μP readout's, and one SGD step of the tied model equals the untied
model's two updates summed through the tying (float64, exact)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lazyrich.param.schemes import invariants
from lazyrich.usermodels import param_groups, parametrize, plan, plan_of

V = 24


class LM(nn.Module):
    def __init__(self, n: int, tie: bool) -> None:
        super().__init__()
        self.emb, self.hidden, self.head = nn.Embedding(V, n), nn.Linear(n, n), nn.Linear(n, V, bias=False)
        if tie:
            self.head.weight = self.emb.weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.hidden(self.emb(tokens))))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("n", [32, 256])
def test_tied_readout_has_the_untied_invariants(optimizer, n):
    untied = {r.name: r for r in plan(LM(n, False), "mup", base=LM(8, False), optimizer=optimizer).rows}
    tp = plan(LM(n, True), "mup", base=LM(8, True), optimizer=optimizer)
    emb = tp.row("emb.weight")
    assert "head.weight" not in {r.name for r in tp.rows} and emb == untied["emb.weight"]
    (tied,) = tp.tied
    assert tied["module"] == "head" and tied["multiplier"] == pytest.approx(1 / n)
    readout = untied["head.weight"]
    shared = type(readout)(**{**readout.__dict__, "init_std": emb.init_std, "multiplier": tied["multiplier"],
                              "lr_scale": emb.lr_scale})
    assert invariants(shared, optimizer) == pytest.approx(invariants(readout, optimizer))
    # SP keeps the model's own tying (no multiplier)
    assert plan(LM(n, True), "sp", base=LM(8, True)).tied[0]["multiplier"] == 1.0


def test_one_sgd_step_tied_equals_untied_summed():
    n, lr = 64, 0.05
    torch.manual_seed(0)
    u = parametrize(LM(n, False).double(), "mup", base=LM(8, False), seed=1)
    t = parametrize(LM(n, True).double(), "mup", base=LM(8, True), seed=1)
    with torch.no_grad():
        t.emb.weight.copy_(u.emb.weight)
        t.hidden.load_state_dict(u.hidden.state_dict())
        u.head.weight.copy_(u.emb.weight / n)  # the untied readout with the tied function: W = m·E, m = 1/n
    x = torch.randint(0, V, (16, 5))
    y = torch.randn(16, 5, V, dtype=torch.float64)
    torch.testing.assert_close(t(x), u(x), rtol=0, atol=1e-12)
    before = {k: v.detach().clone() for k, v in [("E_u", u.emb.weight), ("W_u", u.head.weight), ("E_t", t.emb.weight)]}
    for model in (u, t):
        opt = torch.optim.SGD(param_groups(model, lr), lr=lr)
        ((model(x) - y) ** 2).sum().mul(0.5).backward()
        opt.step()
    d_eu, d_wu = u.emb.weight - before["E_u"], u.head.weight - before["W_u"]
    d_et = t.emb.weight - before["E_t"]
    # embedding lr (μP SGD: n) on the summed gradient = the untied embedding step + n·(untied readout step)
    torch.testing.assert_close(d_et, d_eu + n * d_wu, rtol=1e-10, atol=1e-12)
    assert float(d_wu.detach().norm()) > 0 and float(d_eu.detach().norm()) > 0
    assert plan_of(t).tied[0]["multiplier"] == pytest.approx(1 / n)


def _adam_logit_update(n: int, tie: bool) -> float:
    """RMS change of the logits after one Adam step, the tied and untied models starting from the same function."""
    u = parametrize(LM(n, False).double(), "mup", base=LM(8, False), optimizer="adam", seed=1)
    model = u
    if tie:
        model = parametrize(LM(n, True).double(), "mup", base=LM(8, True), optimizer="adam", seed=1)
        with torch.no_grad():
            model.emb.weight.copy_(u.emb.weight)
            model.hidden.load_state_dict(u.hidden.state_dict())
    else:
        with torch.no_grad():
            u.head.weight.copy_(u.emb.weight / n)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, V, (16, 5), generator=gen), torch.randn(16, 5, V, generator=gen, dtype=torch.float64)
    before = model(x).detach()
    opt = torch.optim.Adam(param_groups(model, 0.01))
    ((model(x) - y) ** 2).sum().mul(0.5).backward()
    opt.step()
    return float((model(x).detach() - before).pow(2).mean().sqrt())


def test_adam_first_step_sizes_tied_and_untied_agree_and_are_width_stable():
    widths = (128, 2048)
    untied = [_adam_logit_update(n, False) for n in widths]
    tied = [_adam_logit_update(n, True) for n in widths]
    for sizes in (untied, tied):
        assert abs(math.log(sizes[1] / sizes[0]) / math.log(widths[1] / widths[0])) < 0.1  # μP: flat in width
    # one Adam normalization of the summed gradient: the tied step is the untied one up to O(1) (measured 0.8)
    assert all(0.5 < t / u < 1.25 for t, u in zip(tied, untied))
