"""RegimeMonitor on a transformer: the chunked empirical NTK under a memory budget equals a slow, obvious full
Jacobian (one autograd.grad per output coordinate), at init and after AdamW steps, and so does the kernel distance."""
from __future__ import annotations

import pytest
import torch

from lazyrich.errors import LazyrichError
from lazyrich.models.gpt import GPT
from lazyrich.observe.kernel import ntk_row_bytes
from lazyrich.usermodels import RegimeMonitor, param_groups, parametrize, plan_of

VOCAB, T, N, C = 32, 8, 3, 4


def tiny() -> torch.nn.Module:
    """μP + CompleteP GPT (hooked readout multiplier, branch multipliers, 1/d_head attention), float64."""
    return parametrize(GPT(16, 2, vocab=VOCAB, context=T, head_dim=8).double(), "mup",
                       base=GPT(8, 1, vocab=VOCAB, context=T, head_dim=8).double(), optimizer="adam",
                       depth="completep", gamma=2.0, seed=0)


def full_jacobian_ntk(model: torch.nn.Module, x: torch.Tensor, project: torch.Tensor, read=lambda y: y) -> torch.Tensor:
    """Σ_p η_p J_p J_pᵀ with J row by row: one backward pass per output coordinate (sample-major layout)."""
    eta = {r.name: r.lr_scale for r in plan_of(model).rows}
    params = dict(model.named_parameters())
    out = (read(model(x))[:, -1] @ project).reshape(-1)
    rows = [torch.autograd.grad(o, list(params.values()), retain_graph=True, allow_unused=True) for o in out]
    K = torch.zeros(len(out), len(out), dtype=torch.float64)
    for k, name in enumerate(params):
        J = torch.stack([(r[k] if r[k] is not None else torch.zeros_like(params[name])).reshape(-1) for r in rows])
        K += eta[name] * J @ J.T
    return K


def test_chunked_kernel_matches_full_jacobian_on_a_transformer():
    torch.set_num_threads(1)
    model = tiny()
    g = torch.Generator().manual_seed(0)
    probe = torch.randint(0, VOCAB, (N, T), generator=g)
    project = torch.randn(VOCAB, C, generator=g, dtype=torch.float64)  # logits at the last position → C directions
    params = {k: v for k, v in model.named_parameters()}
    row = ntk_row_bytes(params, C)
    # a budget of one Jacobian row per buffer: N row chunks, every off-diagonal block recomputed
    monitor = RegimeMonitor(model, probe, output=lambda y: y[:, -1] @ project, memory_budget_bytes=3 * row)
    K0 = full_jacobian_ntk(model, probe, project)
    assert monitor.K0.shape == (N * C, N * C)
    assert torch.allclose(monitor.K0, K0, rtol=1e-10, atol=1e-12 * float(K0.abs().max()))
    x, y = torch.randint(0, VOCAB, (2, 4, T), generator=g)
    opt = torch.optim.AdamW(param_groups(model, 3e-2, eps=1e-8))
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten()).backward()
        opt.step()
        monitor.step()
    K = full_jacobian_ntk(model, probe, project)
    S = 1 - (K0 * K).sum() / (K0.norm() * K.norm())
    rec = monitor.records().set_index(["step", "observable", "layer"])["value"]
    assert float(S) > 1e-4  # the kernel moved, so the comparison is not 0 = 0
    assert rec[(3, "kernel_distance", "")] == pytest.approx(float(S), rel=1e-8)
    # the same kernel with no budget (one chunk)
    unbounded = RegimeMonitor(model, probe, output=lambda y: y[:, -1] @ project, memory_budget_bytes=None)
    assert torch.allclose(unbounded.K0, K, rtol=1e-10, atol=1e-12 * float(K.abs().max()))
    with pytest.raises(LazyrichError, match="raise the budget"):
        RegimeMonitor(model, probe, output=lambda y: y[:, -1] @ project, memory_budget_bytes=row)


def test_monitor_reads_a_hugging_face_output():
    """GPT2LMHeadModel returns a ModelOutput, not a tensor: the monitor's probe reads its `.logits`, and the
    kernel of the first logits at the last position matches the full Jacobian of the same map."""
    pytest.importorskip("transformers", reason='the hf extra: pip install "lazyrich[hf]"')
    from lazyrich.usermodels.hf import gpt2

    model = parametrize(gpt2(16, 1, vocab=VOCAB, context=T).double(), "mup", base=gpt2(8, 1, vocab=VOCAB, context=T).double(),
                        optimizer="adam", seed=0)
    probe = torch.randint(0, VOCAB, (2, T), generator=torch.Generator().manual_seed(1))
    eye = torch.eye(VOCAB, dtype=torch.float64)[:, :C]  # the first C logits
    monitor = RegimeMonitor(model, probe, output=lambda y: y.logits[:, -1] @ eye)
    K0 = full_jacobian_ntk(model, probe, eye, read=lambda y: y.logits)
    assert torch.allclose(monitor.K0, K0, rtol=1e-10, atol=1e-12 * float(K0.abs().max()))
    assert monitor.verdict().regime == "lazy"  # nothing trained yet: S = 0, ω = 0
