"""Hugging Face GPT-2 (Conv1D, tied embeddings) and Llama (RMSNorm, SwiGLU, RoPE) built from configs and
parametrized by one call: every parameter gets a role, Conv1D's transposed layout read right, attention
logits q·k/d_head in eager and SDPA alike (against a hand-written attention), depth schemes, errors."""
from __future__ import annotations

import io
import sys

import pytest
import torch

from lazyrich.errors import LazyrichError
from lazyrich.usermodels import parametrize, plan, plan_of, restore
from lazyrich.usermodels.hf import gpt2, llama

pytest.importorskip("transformers", reason='the hf extra: pip install "lazyrich[hf]"')


@pytest.mark.parametrize("arch", [gpt2, llama])
@pytest.mark.parametrize("depth", [None, "completep"])
def test_every_parameter_gets_a_role(arch, depth):
    model, base = arch(64, 4), arch(32, 2)
    p = plan(model, "mup", base=base, optimizer="adam", depth=depth)
    roles = {r.name: r.role for r in p.rows}
    assert set(roles) == {n for n, _ in model.named_parameters()}  # tied weights listed once, under their first owner
    assert "fixed" not in roles.values(), {n: r for n, r in roles.items() if r == "fixed"}
    emb = "transformer.wte.weight" if arch is gpt2 else "model.embed_tokens.weight"
    assert roles[emb] == "input"
    matrices = [n for n, t in model.named_parameters() if t.dim() == 2 and n != emb and "wpe" not in n]
    assert all(roles[n] in ("hidden", "output") for n in matrices)
    if arch is llama:
        assert roles["lm_head.weight"] == "output" and roles["model.norm.weight"] == "bias"
    if depth:
        ends = {b.split(".")[-1] for b in p.depth["branches"]}
        assert ends == ({"c_proj"} if arch is gpt2 else {"o_proj", "down_proj"})
        assert len(p.depth["branches"]) == 8 and p.depth["branch_mult"] == 0.5


def test_conv1d_transposed_layout():
    model = parametrize(gpt2(256, 1), "mup", base=gpt2(32, 1), seed=0)
    rows = {r.name: r for r in plan_of(model).rows}
    c_fc, c_proj = rows["transformer.h.0.mlp.c_fc.weight"], rows["transformer.h.0.mlp.c_proj.weight"]
    assert (c_fc.kind, c_fc.fan_in, c_fc.fan_out) == ("conv1d", 256, 1024)  # weight [in, out] = [256, 1024]
    assert (c_proj.fan_in, c_proj.fan_out) == (1024, 256)
    w = dict(model.named_parameters())
    for name, fan_in in (("transformer.h.0.mlp.c_fc.weight", 256), ("transformer.h.0.mlp.c_proj.weight", 1024)):
        assert float(w[name].detach().double().std()) == pytest.approx(fan_in ** -0.5, rel=0.02)
    # NTP puts multipliers 1/sqrt(fan_in) on Conv1D through the input hook: y = m·(x W) + b
    ntp = parametrize(gpt2(64, 1), "ntp", base=gpt2(32, 1), seed=0)
    fc = ntp.transformer.h[0].mlp.c_fc
    x = torch.randn(3, 64)
    torch.testing.assert_close(fc(x), x @ fc.weight / 8.0 + fc.bias)


def _attention_by_hand(attn, x: torch.Tensor, scale: float) -> torch.Tensor:
    """GPT-2 causal self-attention written out with logits q·k·scale."""
    b, t, e = x.shape
    h = attn.num_heads
    q, k, v = (x @ attn.c_attn.weight + attn.c_attn.bias).split(e, -1)
    heads = lambda z: z.view(b, t, h, e // h).transpose(1, 2)  # noqa: E731
    logits = heads(q) @ heads(k).transpose(-1, -2) * scale
    logits = logits.masked_fill(torch.triu(torch.ones(t, t, dtype=torch.bool), 1), float("-inf"))
    out = (torch.softmax(logits, -1) @ heads(v)).transpose(1, 2).reshape(b, t, e)
    return out @ attn.c_proj.weight + attn.c_proj.bias


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
@pytest.mark.parametrize("scheme,power", [("mup", 1.0), ("sp", 0.5)])
def test_attention_logits_one_over_d_head(impl, scheme, power):
    model = parametrize(gpt2(64, 1, heads=2, attn_implementation=impl), scheme, base=gpt2(32, 1), seed=0)
    assert model.config._attn_implementation == impl
    attn = model.transformer.h[0].attn
    seen = {}
    attn.register_forward_hook(lambda m, a, out: seen.__setitem__("out", out[0]))
    attn.register_forward_pre_hook(lambda m, a, kw: seen.__setitem__("in", kw.get("hidden_states", a[0] if a else None)),
                                   with_kwargs=True)
    with torch.no_grad():
        model(torch.randint(0, 256, (2, 10)))
    d_head = 32
    want = _attention_by_hand(attn, seen["in"], d_head ** -power)
    torch.testing.assert_close(seen["out"], want, rtol=1e-5, atol=1e-5)


def test_eager_and_sdpa_agree_on_llama_and_gpt2():
    x = torch.randint(0, 256, (2, 12))
    for arch in (gpt2, llama):
        outs = []
        for impl in ("eager", "sdpa"):
            m = parametrize(arch(64, 2, attn_implementation=impl), "mup", base=arch(32, 2), optimizer="adam",
                            depth="completep", seed=3)
            with torch.no_grad():
                outs.append(m(x).logits)
        torch.testing.assert_close(outs[0], outs[1], rtol=1e-4, atol=1e-5)
        scaling = [m for n, m in m.named_modules() if n.endswith("attn")][0].scaling
        assert scaling == pytest.approx(1 / 32)  # d_head = 64 / 2


def test_checkpoint_restores_depth_tying_and_attention():
    m = parametrize(gpt2(64, 4), "mup", base=gpt2(32, 2), optimizer="adam", depth="completep", seed=0)
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    fresh = restore(gpt2(64, 4, attn_implementation="sdpa", seed=5), torch.load(buf, weights_only=True))
    x = torch.randint(0, 256, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(fresh(x).logits, m(x).logits, rtol=1e-4, atol=1e-5)
    p = plan_of(fresh)
    assert p.tied[0]["module"] == "lm_head" and p.tied[0]["multiplier"] == pytest.approx(1 / 64)
    assert p.depth["ratio"] == 2.0


def test_llama_untied_readout_and_swiglu_rows():
    p = plan(llama(64, 2), "mup", base=llama(32, 2), optimizer="adam")
    rows = {r.name: r for r in p.rows}
    out = rows["lm_head.weight"]
    assert out.role == "output" and out.init_std == pytest.approx(1 / 64) and out.lr_scale == pytest.approx(1 / 64)
    gate = rows["model.layers.0.mlp.gate_proj.weight"]
    assert (gate.fan_in, gate.fan_out, gate.role) == (64, 192, "hidden") and not p.tied


def test_errors(monkeypatch):
    with pytest.raises(LazyrichError, match="own class") as e:
        plan(gpt2(64, 2), "mup", base=llama(32, 2))
    assert "\n" not in str(e.value)
    with pytest.raises(LazyrichError, match="not divisible"):
        gpt2(30, 2, heads=4)
    monkeypatch.setitem(sys.modules, "transformers", None)  # as if not installed
    with pytest.raises(LazyrichError, match=r'pip install "lazyrich\[hf\]"'):
        gpt2(32, 2)
