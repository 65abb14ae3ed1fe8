"""Balance-controlled inits produce the conserved quantity they were asked for."""
import math

import pytest
import torch

from lazyrich import MLP, build
from lazyrich.conventions import conserved
from lazyrich.errors import LazyrichError
from lazyrich.models import forward
from lazyrich.param import init


@pytest.mark.parametrize("lr_a,lr_w", [(1.0, 1.0), (0.3, 2.0)])
def test_kunin_delta_and_tau(lr_a, lr_w):
    net = MLP((7, 10, 1), "relu")
    tau = torch.tensor([0.1, 0.5, 2.0, 1.0])
    delta = torch.tensor([-1.0, 0.0, 0.9999, 5.0])
    p = init.kunin(net, tau, delta, seeds=[0, 1, 2, 3], lr_a=lr_a, lr_w=lr_w)
    a, w = p["W2"][:, 0, :], p["W1"]
    assert torch.allclose(lr_w * a**2 - lr_a * w.pow(2).sum(-1), delta[:, None].double().expand(4, 10), atol=1e-12)
    assert torch.allclose(a.abs() * w.norm(dim=-1), (tau**2)[:, None].double().expand(4, 10), rtol=1e-12)
    x = torch.randn(20, 7, dtype=torch.float64)
    assert float(forward(net, p, x).abs().max()) <= 1e-12  # symmetrised: f(x; θ0) ≡ 0


def test_kunin_matches_authors_alpha():
    """At unit lrs: ||w|| = τ α_code, |a| = τ/α_code with α_code = sqrt((sqrt(4 + (δ/τ²)²) − δ/τ²)/2)."""
    tau, delta = torch.tensor([0.3], dtype=torch.float64), torch.tensor([0.7], dtype=torch.float64)
    a, w = init.kunin_scales(tau.double(), delta.double())
    r = float(delta / tau**2)
    alpha = math.sqrt((math.sqrt(4 + r * r) - r) / 2)
    assert float(w) == pytest.approx(0.3 * alpha, rel=1e-12) and float(a) == pytest.approx(0.3 / alpha, rel=1e-12)


@pytest.mark.parametrize("d,h,c,lam", [(3, 3, 3, 0.5), (3, 3, 3, -2.0), (2, 4, 5, 0.7), (5, 4, 2, -0.3), (4, 3, 3, 0.0)])
def test_lambda_balanced(d, h, c, lam):
    lr = (0.5, 2.0)
    p = init.lambda_balanced((d, h, c), lam, seeds=[0, 1], lr=lr)
    q = conserved(p["W2"], p["W1"], lr[1], lr[0])
    assert float((q - lam * torch.eye(h, dtype=torch.float64)).abs().max()) <= 1e-12


def test_lambda_balanced_conditions():
    with pytest.raises(LazyrichError, match="λ > 0 with c ≥ h"):
        init.lambda_balanced((2, 4, 5), -0.5, seeds=[0])
    with pytest.raises(LazyrichError, match="min\\(d,c\\)"):
        init.lambda_balanced((2, 7, 5), 0.5, seeds=[0])


@pytest.mark.parametrize("widths,lam", [((4, 6, 6, 6, 3), [0.0, 0.0, 0.0]), ((4, 5, 5, 5), [0.3, 0.2]), ((6, 4, 3, 2), [0.0, 0.0])])
def test_balanced_chain(widths, lam):
    lr = [0.5, 1.3, 0.8, 2.0][: len(widths) - 1]
    p = init.balanced_chain(widths, [3, 4], lam=lam, lr=lr)
    for l in range(1, len(widths) - 1):
        q = conserved(p[f"W{l + 1}"], p[f"W{l}"], lr[l], lr[l - 1])
        assert float((q - lam[l - 1] * torch.eye(widths[l], dtype=torch.float64)).abs().max()) <= 1e-12


def test_build_inits_verify_through_ensemble():
    ens = build(MLP((3, 3, 3), "linear"), [{"seed": 0, "lam": 0.4}, {"seed": 1, "lam": -0.4}], init="lambda_balanced",
                scheme="sp", lr=0.1, overrides={"W2": {"lr_scale": 3.0}})
    q = conserved(ens.params["W2"], ens.params["W1"], ens.lr["W2"], ens.lr["W1"])
    assert torch.allclose(q.diagonal(dim1=-2, dim2=-1), torch.tensor([[0.4] * 3, [-0.4] * 3], dtype=torch.float64), atol=1e-12)


def test_gaussian_std_matches_table():
    ens = build(MLP((50, 400, 1), "relu"), [{"seed": 0}], scheme="mup")
    assert float(ens.params["W1"].std()) == pytest.approx(1 / math.sqrt(50), rel=0.02)
    assert float(ens.params["W2"].std()) == pytest.approx(1 / 400, rel=0.15)
