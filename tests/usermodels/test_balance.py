"""Balance-controlled init of users' MLP chains: per-neuron δ (function-preserving) and Q = λI chains."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from lazyrich.errors import LazyrichError
from lazyrich.param.init import kunin_scales
from lazyrich.usermodels import balance, balance_chain, parametrize, plan_of


def _deep(act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 30), act(), nn.Linear(30, 20), act(), nn.Linear(20, 20), act(),
                         nn.Linear(20, 2)).double()


def _delta_by_hand(model, lo, up, lr):
    """η_l η_{l+1} Q_kk = η_l‖W_{l+1}[:, k]‖² − η_{l+1}(‖W_l[k]‖² + η_l b_k²/η_b), from the definition."""
    w, b, a = model[lo].weight.detach(), model[lo].bias.detach(), model[up].weight.detach()
    e_lo, e_up, e_b = lr[f"{lo}.weight"], lr[f"{up}.weight"], lr[f"{lo}.bias"]
    upper, lower = e_lo * a.pow(2).sum(0), e_up * (w.pow(2).sum(1) + e_lo * b.pow(2) / e_b)
    return upper - lower, max(1.0, float(upper.max()), float(lower.max()))


@pytest.mark.parametrize("scheme", [None, "mup"])
def test_balance_sets_every_neurons_delta_and_keeps_the_function(scheme):
    model = _deep()
    if scheme:
        parametrize(model, scheme, base=nn.Sequential(nn.Linear(5, 10), nn.ReLU(), nn.Linear(10, 7), nn.ReLU(),
                                                      nn.Linear(7, 7), nn.ReLU(), nn.Linear(7, 2)), init="keep")
    lr = {r.name: r.lr_scale for r in plan_of(model).rows} if scheme else {n: 1.0 for n, _ in model.named_parameters()}
    x = torch.randn(9, 5, dtype=torch.float64)
    before = model(x).detach()
    targets = [0.7, -0.4, 0.0]
    with torch.no_grad():
        balance(model, targets)
        for (lo, up), target in zip(((0, 2), (2, 4), (4, 6)), targets):
            got, scale = _delta_by_hand(model, lo, up, lr)
            assert torch.allclose(got, torch.full_like(got, target), rtol=0, atol=1e-11 * scale)
    assert torch.allclose(model(x), before, rtol=0, atol=1e-12)


def test_two_layer_balance_matches_kunins_scales():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 12, bias=False), nn.ReLU(), nn.Linear(12, 1, bias=False)).double()
    tau2 = model[2].weight.detach().abs()[0] * model[0].weight.detach().norm(dim=1)  # |a_k|·‖w_k‖ is kept
    balance(model, -0.3)
    a_ref, w_ref = kunin_scales(tau2.sqrt(), torch.full_like(tau2, -0.3))
    assert torch.allclose(model[2].weight.detach().abs()[0], a_ref, rtol=1e-12)
    assert torch.allclose(model[0].weight.detach().norm(dim=1), w_ref, rtol=1e-12)


def test_balance_refuses_non_homogeneous_activations():
    with pytest.raises(LazyrichError, match="Tanh is not positively homogeneous"):
        balance(_deep(nn.Tanh), 0.0)
    model = _deep(nn.Tanh)
    balance(model, 0.0, preserve_function=False)  # allowed when asked: δ is still met
    got, scale = _delta_by_hand(model, 0, 2, {k: 1.0 for k in ("0.weight", "2.weight", "0.bias")})
    assert float(got.abs().max()) < 1e-11 * scale
    with pytest.raises(LazyrichError, match="one value per consecutive pair"):
        balance(_deep(), [0.0, 1.0])


def test_balance_chain_sets_the_whole_conserved_matrix():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(4, 8, bias=False), nn.Linear(8, 8, bias=False), nn.Linear(8, 12, bias=False)).double()
    balance_chain(model, [0.5, 0.0], seed=3)
    w = [m.weight.detach() for m in model]
    for l, lam in ((0, 0.5), (1, 0.0)):
        q = w[l + 1].T @ w[l + 1] - w[l] @ w[l].T
        assert torch.allclose(q, lam * torch.eye(8, dtype=torch.float64), rtol=0, atol=1e-12)
    narrow = nn.Sequential(nn.Linear(6, 8, bias=False), nn.Linear(8, 3, bias=False)).double()
    with pytest.raises(LazyrichError, match="cannot carry the rank"):
        balance_chain(narrow, 0.0)
    with pytest.raises(LazyrichError, match="indefinite"):
        balance_chain(nn.Sequential(nn.Linear(4, 8, bias=False), nn.Linear(8, 8, bias=False)).double(), -10.0)
