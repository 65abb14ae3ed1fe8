"""Forward pass and hand-written gradients against slow references (per-member loops, autograd)."""
import pytest
import torch

from lazyrich import MLP, build
from lazyrich.dynamics import loss_and_grads
from lazyrich.models import activation, derivative, forward

ACTS = ["linear", "relu", "leaky_relu", "tanh", "gelu", "quadratic"]


@pytest.mark.parametrize("act", ACTS)
def test_derivative_matches_autograd(act):
    z = torch.linspace(-3, 3, 101, dtype=torch.float64).requires_grad_(True)
    (g,) = torch.autograd.grad(activation(act)(z).sum(), z)
    assert torch.allclose(derivative(act)(z.detach()), g, atol=1e-12)


def test_forward_matches_per_member_loop():
    net = MLP((4, 6, 5, 2), "tanh", bias=True)
    ens = build(net, [{"seed": s, "gamma": g} for s, g in [(0, 1.0), (1, 0.5), (2, 3.0)]], scheme="mup")
    x = torch.randn(7, 4, dtype=torch.float64)
    out = forward(net, ens.params, x, ens.multipliers)
    for e in range(3):
        h = x
        for l in (1, 2, 3):
            z = float(ens.multipliers[f"W{l}"][e]) * h @ ens.params[f"W{l}"][e].T
            if f"b{l}" in ens.params:
                z = z + ens.params[f"b{l}"][e]
            h = torch.tanh(z) if l < 3 else z
        assert torch.allclose(out[e], h, atol=1e-14)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("bias", [False, True])
def test_manual_gradients_match_autograd(act, bias):
    net = MLP((4, 6, 5, 3), act, bias=bias)
    ens = build(net, [{"seed": s, "gamma": 0.7} for s in range(3)], scheme="mup")
    x, y = torch.randn(9, 4, dtype=torch.float64), torch.randn(9, 3, dtype=torch.float64)
    active = torch.tensor([True, False, True])
    l1, g1 = loss_and_grads(ens, ens.params, x, y, active)
    l2, g2 = loss_and_grads(ens, ens.params, x, y, active, autograd=True)
    assert torch.allclose(l1, l2, atol=1e-14)
    for k in g2:
        assert torch.allclose(g1[k], g2[k], atol=1e-12, rtol=0), k
    assert float(g1["W1"][1].abs().max()) == 0.0  # inactive member: zero gradient


def test_centred_model_has_zero_output_at_init():
    net = MLP((3, 8, 1), "relu")
    ens = build(net, [{"seed": 0}], scheme="ntp").centered()
    from lazyrich.ensemble import predict
    x = torch.randn(5, 3, dtype=torch.float64)
    assert float(predict(ens, ens.params, x).abs().max()) == 0.0
    _, g1 = loss_and_grads(ens, ens.params, x, torch.ones(5, 1, dtype=torch.float64), torch.tensor([True]))
    _, g2 = loss_and_grads(ens, ens.params, x, torch.ones(5, 1, dtype=torch.float64), torch.tensor([True]), autograd=True)
    assert torch.allclose(g1["W1"], g2["W1"], atol=1e-12)
