"""Quick-size run of the grokking reproduction (exit code, claims.json schema, outputs) and checks of its
helpers against independent member-by-member computations."""
from __future__ import annotations


import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lazyrich.experiments import grokking as gk
from lazyrich.experiments.base import get
from lazyrich.experiments.runner import reproduce
from lazyrich.usermodels import inspect, param_groups

from .quick_checks import check_quick_outcome

SMALL = dict(gk.QUICK, p=7, d_model=8, n_heads=2, d_mlp=16, train_frac=0.5, tau=1.5, steps=3, grid_ratio=1.5)


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    torch.set_num_threads(1)
    return reproduce("grokking", quick=True, out=tmp_path_factory.mktemp("grokking"))


@pytest.mark.quick_repro
def test_quick_run_passes_with_schema(outcome):
    check_quick_outcome(outcome)
    assert (outcome.out / "members.csv").exists()


def test_registered_with_sizes():
    exp = get("grokking")
    assert set(exp.sizes) == {"quick", "full"} and set(exp.runtime) == {"quick", "full"}


def test_vmapped_forward_equals_member_loop():
    """The stacked, vmapped module gives each member's own forward (float64, 1e-12)."""
    cfg = SMALL
    members = [(0.1, 0), (1.0, 1), (100.0, 2)]
    models = [gk.make_model(cfg, a, s, torch.float64) for a, s in members]
    params, buffers = torch.func.stack_module_state(models)
    tokens = torch.stack([gk.split(cfg["p"], cfg["train_frac"], s)[0] for _, s in members])
    out = gk.stacked_forward(models[0])(params, buffers, tokens)
    for i, m in enumerate(models):
        ref = m(tokens[i])
        assert out[i].shape == ref.shape == (tokens.shape[1], cfg["p"])
        torch.testing.assert_close(out[i], ref, rtol=0, atol=1e-12)


def test_hand_batched_logits_equal_member_loop():
    """The hand-batched training forward (projections read from per-member token tables) equals each member's
    module forward (float64, 1e-12 relative to the largest logit)."""
    cfg = SMALL
    members = [(0.01, 0), (1.0, 1), (100.0, 2), (3.0, 0)]
    models = [gk.make_model(cfg, a, s, torch.float64) for a, s in members]
    params, _ = torch.func.stack_module_state(models)
    tokens = torch.stack([gk.split(cfg["p"], cfg["train_frac"], s)[0] for _, s in members])
    out = gk.batched_logits(params, tokens, cfg["n_heads"], cfg["tau"])
    for i, m in enumerate(models):
        ref = m(tokens[i])
        torch.testing.assert_close(out[i], ref, rtol=0, atol=1e-12 * float(ref.detach().abs().max()))


def test_forward_equals_full_sequence_transformer():
    """Computing the query and MLP at '=' only equals an explicit full-sequence causal transformer read at '='."""
    cfg = SMALL
    m = gk.make_model(cfg, 3.0, 0, torch.float64)
    x_tok = gk.split(cfg["p"], cfg["train_frac"], 0)[0]
    n, t, d, h = x_tok.shape[0], 3, cfg["d_model"], cfg["n_heads"]
    x = m.tok.weight[x_tok] + m.pos.weight[:t]
    heads = lambda z: z.view(n, t, h, d // h).transpose(1, 2)  # noqa: E731
    q, k, v = heads(x @ m.q.weight.T), heads(x @ m.k.weight.T), heads(x @ m.v.weight.T)
    scores = (q @ k.transpose(-1, -2)) / (d // h) ** 0.5
    scores = scores.masked_fill(torch.triu(torch.ones(t, t, dtype=torch.bool), 1), float("-inf"))
    a = (scores.softmax(-1) @ v).transpose(1, 2).reshape(n, t, d)
    r = x + a @ m.o.weight.T
    r = r + F.relu(r @ m.mlp_in.weight.T + m.mlp_in.bias) @ m.mlp_out.weight.T + m.mlp_out.bias
    ref = cfg["tau"] * (r[:, -1] @ m.unembed.weight.T)
    torch.testing.assert_close(m(x_tok), ref, rtol=0, atol=1e-12)


def test_user_model_path_divides_embeddings_by_alpha():
    """parametrize draws the same numbers for every α; token and positional embeddings ÷ α, the rest unchanged."""
    base = dict(gk.make_model(SMALL, 1.0, 5, torch.float64).named_parameters())
    for alpha in (0.01, 10.0, 100.0):
        model = gk.make_model(SMALL, alpha, 5, torch.float64)
        table = inspect(model).set_index("name")
        for name, p in model.named_parameters():
            if name in gk.EMBEDDINGS:
                torch.testing.assert_close(p * alpha, base[name], rtol=1e-15, atol=0)
                assert table.loc[name, "init_std"] == pytest.approx(1.0 / alpha, rel=1e-15)
            else:
                assert torch.equal(p, base[name]), name
            assert table.loc[name, "multiplier"] == 1.0 and table.loc[name, "lr_scale"] == 1.0
    assert float(base["tok.weight"].detach().std()) == pytest.approx(1.0, abs=0.2)  # SP embedding: N(0, 1)


def test_stacked_gradients_equal_member_gradients():
    """The gradient of the summed per-member losses of the stacked model is each member's own gradient (float64)."""
    cfg = SMALL
    members = [(0.1, 0), (1.0, 1), (100.0, 2)]
    models = [gk.make_model(cfg, a, s, torch.float64) for a, s in members]
    params, buffers = torch.func.stack_module_state(models)
    data = [gk.split(cfg["p"], cfg["train_frac"], s) for _, s in members]
    x, y = torch.stack([d[0] for d in data]), torch.stack([d[1] for d in data])
    logits = gk.stacked_forward(models[0])(params, buffers, x)
    F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(y.shape).mean(1).sum().backward()
    for i, m in enumerate(models):
        F.cross_entropy(m(x[i]), y[i]).backward()
        for name, p in m.named_parameters():
            scale = max(float(p.grad.abs().max()), 1e-300)
            torch.testing.assert_close(params[name].grad[i], p.grad, rtol=0, atol=1e-12 * scale)


def test_batched_training_equals_member_by_member_adamw():
    """A few steps of the stacked training equal, member by member, torch.optim.AdamW on the module itself
    with the user-model path's param groups and lr ÷ τ² (float64; 1e-10: Adam divides by each coordinate's own
    gradient size, which magnifies the rounding of gradients that nearly cancel)."""
    cfg = dict(SMALL, alphas=[1.0, 100.0], seeds=[0, 1])
    res = gk.train_members(cfg, cfg["alphas"], cfg["seeds"], dtype=torch.float64)
    for i, (alpha, seed) in enumerate(res["members"]):
        model = gk.make_model(cfg, alpha, seed, torch.float64)
        opt = torch.optim.AdamW(param_groups(model, cfg["lr"] / cfg["tau"] ** 2, cfg["weight_decay"]),
                                betas=tuple(cfg["betas"]), foreach=False)
        xtr, ytr, xva, yva = gk.split(cfg["p"], cfg["train_frac"], seed)
        for _ in range(cfg["steps"]):
            opt.zero_grad()
            F.cross_entropy(model(xtr), ytr).backward()
            opt.step()
        for name, p in model.named_parameters():
            torch.testing.assert_close(res["params"][name][i], p.detach(), rtol=0, atol=1e-10)
        with torch.no_grad():
            acc = (model(xva).argmax(-1) == yva).double().mean().item()
        assert res["acc_val"][i, -1] == pytest.approx(acc, abs=1e-15)


def test_grokking_step_is_first_crossing_or_budget():
    steps = gk.eval_steps(1000, 1.05)
    assert steps[0] == 0 and steps[-1] == 1000 and np.all(np.diff(steps) > 0)
    assert np.all(np.diff(steps)[1:] / steps[1:-1] <= 0.051 + 1.0 / steps[1:-1])  # ≤ 5 % resolution (or 1 step)
    acc = np.array([[0.0, 0.5, 0.99, 0.2, 1.0], [0.0, 0.1, 0.2, 0.3, 0.98]])
    grid = np.array([0, 10, 20, 30, 40])
    np.testing.assert_array_equal(gk.first_step(grid, acc, 0.99, 40), [20.0, 40.0])
