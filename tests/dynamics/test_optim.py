"""Optimizers against torch.optim references and the defining properties of each update."""
import pytest
import torch

from lazyrich import MLP, OptimizerSpec, build, train
from lazyrich.dynamics import optim
from lazyrich.tasks import whitened_regression


def _one(kind_spec, torch_opt, steps=6, wd=0.0, **build_kw):
    net = MLP((6, 9, 3), "tanh")
    data = whitened_regression(6, 3, 20, seed=1)
    ens = build(net, [{"seed": 3}], scheme="sp", lr=0.05, weight_decay=wd, **build_kw)
    ours = train(ens, data, steps, kind_spec, record=[]).ens.params
    ref = {k: torch.nn.Parameter(v[0].clone()) for k, v in ens.params.items()}
    opt = torch_opt(list(ref.values()))
    for _ in range(steps):
        opt.zero_grad()
        out = torch.tanh(data.x @ ref["W1"].T) @ ref["W2"].T
        (0.5 * (out - data.y).pow(2).sum(-1).mean()).backward()
        opt.step()
    return ours, ref


def test_adam_matches_torch():
    ours, ref = _one(OptimizerSpec(kind="adam"), lambda p: torch.optim.Adam(p, lr=0.05))
    for k in ref:
        assert torch.allclose(ours[k][0], ref[k].detach(), rtol=0, atol=1e-13)


def test_adamw_decoupled_matches_torch():
    ours, ref = _one(OptimizerSpec(kind="adam", weight_decay_mode="decoupled"),
                     lambda p: torch.optim.AdamW(p, lr=0.05, weight_decay=0.3), wd=0.3)
    for k in ref:
        assert torch.allclose(ours[k][0], ref[k].detach(), rtol=0, atol=1e-13)


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_matches_torch_sgd(nesterov):
    ours, ref = _one(OptimizerSpec(kind="momentum", momentum=0.9, nesterov=nesterov),
                     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=nesterov, weight_decay=0.01), wd=0.01)
    for k in ref:
        assert torch.allclose(ours[k][0], ref[k].detach(), rtol=0, atol=1e-13)


def test_muon_matches_torch_muon_with_its_settings_explicit():
    """torch.optim.Muon defaults: weight_decay 0.1 (decoupled), momentum 0.95, Nesterov, 5 bf16
    Newton-Schulz steps, lr × sqrt(max(1, rows/cols)). Our batched spec with the same explicit
    settings follows the same bf16 operation order, so it agrees to float64 rounding."""
    spec = OptimizerSpec(kind="muon", momentum=0.95, nesterov=True, ns_dtype="bfloat16", adjust_lr="original",
                         weight_decay_mode="decoupled")
    ours, ref = _one(spec, lambda p: torch.optim.Muon(p, lr=0.05), steps=3, wd=0.1)
    for k in ref:
        assert float((ours[k][0] - ref[k].detach()).abs().max()) < 1e-12


def test_orthogonalize_float64_is_near_orthogonal():
    g = torch.randn(4, 7, 5, dtype=torch.float64)
    o = optim.orthogonalize(g, steps=5)
    s = torch.linalg.svdvals(o)
    assert float(s.min()) > 0.5 and float(s.max()) < 1.5  # quintic NS: S' in (0.5, 1.5)
    u, _, vh = torch.linalg.svd(g, full_matrices=False)
    cos = (o * (u @ vh)).sum((-1, -2)) / (torch.linalg.matrix_norm(o) * torch.linalg.matrix_norm(u @ vh))
    assert float(cos.min()) > 0.95


def test_spectral_update_has_spectral_norm_lr():
    """YSB eq. 17: ||ΔW||₂ = η exactly (η already carries sqrt(fan_out/fan_in))."""
    net = MLP((5, 8, 2), "relu")
    data = whitened_regression(5, 2, 16, seed=0)
    ens = build(net, [{"seed": s} for s in range(3)], scheme="spectral", optimizer="muon", lr=0.01)
    after = train(ens, data, 1, OptimizerSpec(kind="spectral"), record=[]).ens.params
    for k in ("W1", "W2"):
        got = torch.linalg.matrix_norm(after[k] - ens.params[k], ord=2)
        assert torch.allclose(got, ens.lr[k], rtol=1e-12, atol=0)


def test_schedules():
    from lazyrich import Schedule
    s = Schedule(decay="cosine", warmup=10, min_factor=0.1)
    assert [s.factor(k, 110) for k in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert s.factor(60, 110) == pytest.approx(0.1 + 0.9 * 0.5)
    assert s.factor(110, 110) == pytest.approx(0.1)
    st = Schedule(decay="step", step_every=5, step_factor=0.5)
    assert [st.factor(k, 100) for k in (0, 4, 5, 12)] == [1.0, 1.0, 0.5, 0.25]
    lin = Schedule(decay="linear", warmup=0)
    assert lin.factor(50, 100) == pytest.approx(0.5)
