"""parametrize on nn.Modules: the core's tables, init, multipliers, attention scaling, metadata."""
from __future__ import annotations

import copy
import io
import math

import pytest
import torch
from torch import nn
from .user_models import Block, MHABlock, manual_mha

from lazyrich.errors import LazyrichError
from lazyrich.param.schemes import OPTIMIZERS, SCHEMES, layer_table
from lazyrich.usermodels import inspect, param_groups, parametrize, plan, plan_of, restore, rule


def chain(n: int, d: int = 6, c: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d, n), nn.ReLU(), nn.Linear(n, n), nn.ReLU(), nn.Linear(n, c, bias=False))


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("gamma", [1.0, 3.0])
def test_mlp_rows_equal_core_table(scheme, optimizer, gamma):
    p = plan(chain(40), scheme, base=chain(8), optimizer=optimizer, gamma=gamma)
    core = {r.name: r for r in layer_table((6, 40, 40, 3), scheme, optimizer, gamma, bias=True)}
    names = {"0.weight": "W1", "0.bias": "b1", "2.weight": "W2", "2.bias": "b2", "4.weight": "W3"}
    for r in p.rows:
        c = core[names[r.name]]
        assert (r.role, r.fan_in, r.fan_out) == (c.role, c.fan_in, c.fan_out)
        assert (r.init_std, r.multiplier, r.lr_scale, r.wd_scale) == (c.init_std, c.multiplier, c.lr_scale, c.wd_scale)


def test_roles_of_attention_block_conv_and_embedding():
    roles = {r.name: r.role for r in plan(Block(32), "mup", base=Block(8)).rows}
    assert roles["embed.weight"] == "input" and roles["out.weight"] == "output"
    assert all(roles[f"{m}.weight"] == "hidden" for m in ("q", "k", "v", "o", "up", "down"))
    assert roles["norm.weight"] == roles["norm.bias"] == roles["q.bias"] == "bias" and roles["out.bias"] == "bias"
    conv = lambda n: nn.Sequential(nn.Conv2d(3, n, 3), nn.ReLU(), nn.Conv2d(n, n, 3), nn.AdaptiveAvgPool2d(1),  # noqa: E731
                                   nn.Flatten(), nn.Linear(n, 2))
    rows = {r.name: r for r in plan(conv(16), "mup", base=conv(4)).rows}
    assert [rows[k].role for k in ("0.weight", "2.weight", "5.weight")] == ["input", "hidden", "output"]
    assert (rows["2.weight"].fan_in, rows["2.weight"].fan_out) == (16 * 9, 16)
    emb = lambda n: nn.Sequential(nn.Embedding(50, n), nn.Linear(n, n), nn.Linear(n, 50))  # noqa: E731
    rows = {r.name: r for r in plan(emb(32), "mup", base=emb(8)).rows}
    assert rows["0.weight"].role == "input" and rows["0.weight"].fan_in == 1  # one-hot input: norm 1
    assert rows["0.weight"].init_std == 1.0 and rows["0.weight"].lr_scale == 32.0  # μP SGD: σ = 1, η ∝ fan_out
    # without a base, the order decides (first matrix input, last output); roles override
    order = {r.name: r.role for r in plan(chain(10), "mup", roles={"2.*": "fixed"}).rows}
    assert order == {"0.weight": "input", "0.bias": "bias", "2.weight": "fixed", "2.bias": "fixed", "4.weight": "output"}


@pytest.mark.parametrize("scheme", ["ntp", "mup"])
def test_init_stds_within_sampling_error(scheme):
    model = parametrize(chain(400), scheme, base=chain(8), seed=3)
    for r in inspect(model).itertuples():
        t = dict(model.named_parameters())[r.name]
        if r.role == "bias":
            assert float(t.detach().abs().max()) == 0.0  # biases start at zero (σ_b = 0 in the table)
            continue
        assert abs(r.std_now / r.init_std - 1) < 5 / math.sqrt(2 * t.numel())


def _manual_forward(model: nn.Sequential, mult: dict[str, float], x: torch.Tensor) -> torch.Tensor:
    """z = m·(W h) + b by hand from the raw parameters (no hooks)."""
    h = x
    for i, layer in enumerate(model):
        if isinstance(layer, nn.Linear):
            h = mult[f"{i}.weight"] * (h @ layer.weight.T) + (layer.bias if layer.bias is not None else 0)
        else:
            h = torch.relu(h)
    return h


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_multipliers_and_param_groups_give_the_abc_update(optimizer):
    model = parametrize(chain(24).double(), "ntp", base=chain(8), optimizer=optimizer, seed=0)
    mult = {r.name: r.multiplier for r in plan_of(model).rows}
    assert mult["0.weight"] == 1 / math.sqrt(6) and mult["2.weight"] == 1 / math.sqrt(24)
    x, y = torch.randn(5, 6, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    assert torch.allclose(model(x), _manual_forward(model, mult, x), rtol=0, atol=1e-14)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    grads = torch.autograd.grad(0.5 * (_manual_forward(model, mult, x) - y).pow(2).sum(1).mean(), list(model.parameters()))
    cls = torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam
    opt = cls(param_groups(model, lr=0.1), lr=0.1)
    loss = 0.5 * (model(x) - y).pow(2).sum(1).mean()
    loss.backward()
    opt.step()
    lrs = {r.name: 0.1 * r.lr_scale for r in plan_of(model).rows}
    for (name, p), g in zip(model.named_parameters(), grads):
        step = g if optimizer == "sgd" else g / (g.abs() + 1e-8)  # Adam's first step is lr·sign-like
        assert torch.allclose(p.detach(), before[name] - lrs[name] * step, rtol=0, atol=1e-12), name


def test_folded_multipliers_keep_the_abc_invariants():
    # inside nn.MultiheadAttention no module call carries the weight: NTP's multiplier is folded
    for opt, power in (("sgd", 2), ("adam", 1)):
        p = plan(MHABlock(16), "ntp", base=MHABlock(8), optimizer=opt)
        for r in p.rows:
            ref = rule(r.role, r.fan_in, r.fan_out, "ntp", opt, depth=3 if any(x.role == "hidden" for x in p.rows) else 2)
            assert math.isclose(r.multiplier * r.init_std, ref.multiplier * ref.init_std, rel_tol=1e-14)
            assert math.isclose(r.multiplier**power * r.lr_scale, ref.multiplier**power * ref.lr_scale, rel_tol=1e-14)
            assert r.hooked == (r.name == "out.weight") and (r.multiplier == 1.0) == (not r.hooked)


def test_sdpa_logits_become_one_over_d_head():
    torch.manual_seed(0)
    model = parametrize(Block(16), "mup", base=Block(8), attn_mult=2.0, seed=1)
    ref = Block(16, manual=True)
    ref.load_state_dict({k: v for k, v in model.state_dict().items() if "_lazyrich" not in k})
    with torch.no_grad():  # attn_mult·q·k/d = (2q)·k/d
        ref.q.weight.mul_(2.0)
        ref.q.bias.mul_(2.0)
    x = torch.randn(3, 5, 12)
    assert torch.allclose(model(x), ref(x), atol=1e-6)
    sp = parametrize(Block(16), "sp", base=Block(8), seed=1)  # SP keeps 1/sqrt(d_head)
    plain = Block(16)
    plain.load_state_dict({k: v for k, v in sp.state_dict().items() if "_lazyrich" not in k})
    assert torch.equal(sp(x), plain(x)) and not plan_of(sp).attention


def test_multihead_attention_logits_both_paths():
    torch.manual_seed(0)
    model = parametrize(MHABlock(16, heads=4), "mup", base=MHABlock(8, heads=4), seed=2)
    x = torch.randn(2, 6, 16)
    ref = manual_mha(model.mha, x, scale=1 / 4)  # d_head = 4
    assert torch.allclose(model.mha(x, x, x)[0], ref, atol=1e-6)  # need_weights=True: explicit path
    assert torch.allclose(model.mha(x, x, x, need_weights=False)[0], ref, atol=1e-6)  # SDPA path
    assert not torch.allclose(ref, manual_mha(model.mha, x, scale=1 / 2), atol=1e-4)  # the check can fail


def _outputs_equal(a: nn.Module, b: nn.Module, x: torch.Tensor) -> bool:
    return torch.equal(a(x), b(x))


def test_metadata_survives_deepcopy_save_load_and_state_dict():
    model = parametrize(Block(16), "mf", base=Block(8), gamma=2.0, seed=0)
    x = torch.randn(2, 4, 12)
    p0 = plan_of(model)
    assert all(not vars(p) for p in model.parameters())  # nothing stored on the parameters
    twin = copy.deepcopy(model)
    assert plan_of(twin) == p0 and _outputs_equal(twin, model, x)
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    assert plan_of(loaded) == p0 and _outputs_equal(loaded, model, x)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)  # metadata is plain data: safe to load
    fresh = restore(Block(16), state)
    assert plan_of(fresh) == p0 and _outputs_equal(fresh, model, x)
    other = parametrize(Block(16), "mf", base=Block(8), gamma=5.0, init="keep")  # same hooks, other γ
    other.load_state_dict(state)
    assert plan_of(other) == p0 and _outputs_equal(other, model, x)
    with pytest.raises(LazyrichError, match="restore"):
        parametrize(Block(16), "mup", base=Block(8)).load_state_dict(state)  # mup has no hooked multiplier


def test_parametrize_twice_replaces_hooks_and_sequential_keeps_its_length():
    model = chain(12)
    for _ in range(2):
        parametrize(model, "ntp", base=chain(6))
    assert len(model) == 5 and len(model[0]._forward_pre_hooks) == 1
    assert sum(1 for k in model.state_dict() if k.endswith("_lazyrich._extra_state")) == 1


def test_bad_input_raises_one_line_errors():
    with pytest.raises(LazyrichError, match="unknown parametrization"):
        parametrize(chain(8), "xyz")
    with pytest.raises(LazyrichError, match="base model lacks"):
        parametrize(chain(8), "mup", base=nn.Sequential(nn.Linear(6, 4)))
    with pytest.raises(LazyrichError, match="matches no parameter"):
        parametrize(chain(8), "mup", roles={"head.*": "output"})
    with pytest.raises(LazyrichError, match="not one of"):
        parametrize(chain(8), "mup", roles={"0.*": "readout"})
    with pytest.raises(LazyrichError, match="unknown init"):
        parametrize(chain(8), "mup", init="zeros")
    with pytest.raises(LazyrichError, match="not parametrized"):
        param_groups(chain(8), lr=0.1)
    with pytest.raises(LazyrichError, match="no lazyrich metadata"):
        restore(chain(8), chain(8).state_dict())
    with pytest.raises(LazyrichError, match="override keys"):
        parametrize(chain(8), "mup", overrides={"0.weight": {"std": 1.0}})


def test_rescale_keeps_the_users_init_shape():
    torch.manual_seed(0)
    model = chain(64)
    w2, w4 = model[2].weight.detach().clone(), model[4].weight.detach().clone()  # nn.Linear's kaiming-uniform
    parametrize(model, "mup", base=chain(8), init="rescale")
    assert torch.equal(model[2].weight, w2)  # hidden: μP σ = SP σ = 1/sqrt(fan_in), nothing to rescale
    assert torch.allclose(model[4].weight, w4 / 8.0, rtol=1e-6)  # readout: (1/64) / (1/sqrt(64))
