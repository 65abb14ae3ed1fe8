"""μP attention: logits q·k/d_head instead of q·k/sqrt(d_head) (Tensor Programs V, §4).

Under μP, q and k become correlated during training, so q·k grows like d_head; 1/d_head keeps the
logits Θ(1). Users' modules call `F.scaled_dot_product_attention` or `nn.MultiheadAttention`; we do
not touch their code. A forward hook on each attention module enters a `TorchFunctionMode` for the
duration of its forward that (a) passes `scale = attn_mult / d_head` to scaled_dot_product_attention,
and (b) for `F.multi_head_attention_forward` (which has no scale argument) multiplies the query
projection by attn_mult/sqrt(d_head) — the same logits, and an exact multiplier on W_q.
"""
from __future__ import annotations

import copy
import functools
import inspect
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

_SDPA_POSITIONAL = 6  # query, key, value, attn_mask, dropout_p, is_causal; then scale, enable_gqa


@functools.cache
def _mentions_sdpa(cls: type) -> bool:
    try:
        return "scaled_dot_product_attention" in inspect.getsource(cls.forward)
    except (OSError, TypeError):
        return False


def is_hf_attention(m: nn.Module) -> bool:
    """A Hugging Face attention module: it passes its own `scaling` (1/sqrt(head_dim)) to every attention
    implementation (eager, SDPA, flash), so setting that attribute scales all of them alike."""
    return (not isinstance(m, nn.MultiheadAttention) and isinstance(getattr(m, "scaling", None), (int, float))
            and isinstance(getattr(m, "head_dim", None), int))


def set_hf_scaling(m: nn.Module, attn_mult: float) -> None:
    """scaling ← (the model's own scaling)·sqrt(d_head)·attn_mult/d_head: attn_mult/d_head for the usual
    1/sqrt(d_head), keeping extra factors such as GPT-2's optional 1/(layer index + 1)."""
    if "_lazyrich_scaling0" not in m.__dict__:
        m.__dict__["_lazyrich_scaling0"] = float(m.scaling)  # type: ignore[arg-type]
    d = int(m.head_dim)  # type: ignore[arg-type]
    m.scaling = m.__dict__["_lazyrich_scaling0"] * math.sqrt(d) * attn_mult / d


def unset_hf_scaling(m: nn.Module) -> None:
    if "_lazyrich_scaling0" in m.__dict__:
        m.scaling = m.__dict__.pop("_lazyrich_scaling0")


def attention_modules(model: nn.Module) -> list[str]:
    """Paths of modules that compute attention: nn.MultiheadAttention, Hugging Face attention modules
    (`is_hf_attention`), or modules whose forward calls scaled_dot_product_attention (read from their source)."""
    out = []
    for path, m in model.named_modules():
        if isinstance(m, nn.MultiheadAttention) or is_hf_attention(m) or \
                (type(m).forward is not nn.Module.forward and _mentions_sdpa(type(m))):
            if not any(path.startswith(p + ".") or p == "" for p in out):
                out.append(path)
    return out


class _LogitScale(TorchFunctionMode):
    def __init__(self, attn_mult: float) -> None:
        super().__init__()
        self.attn_mult = attn_mult

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        kwargs = dict(kwargs or {})
        if func is F.scaled_dot_product_attention:
            if len(args) > _SDPA_POSITIONAL:
                extra, args = args[_SDPA_POSITIONAL:], args[:_SDPA_POSITIONAL]
                kwargs.update(zip(("scale", "enable_gqa"), extra))
            kwargs["scale"] = self.attn_mult / args[0].shape[-1]
        elif func is F.multi_head_attention_forward:
            args, kwargs = _scale_query(self.attn_mult, args, kwargs)
        return func(*args, **kwargs)


@functools.cache
def _mha_signature() -> inspect.Signature:
    return inspect.signature(F.multi_head_attention_forward)


def _scale_query(attn_mult: float, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    bound = _mha_signature().bind(*args, **kwargs)
    a = bound.arguments
    e = a["embed_dim_to_check"]
    s = attn_mult / math.sqrt(e // a["num_heads"])  # times the built-in 1/sqrt(d_head): attn_mult/d_head
    scale_rows = torch.ones(3 * e, dtype=torch.float64)
    scale_rows[:e] = s
    if a.get("use_separate_proj_weight", False):
        a["q_proj_weight"] = a["q_proj_weight"] * s
    else:
        a["in_proj_weight"] = a["in_proj_weight"] * scale_rows.to(a["in_proj_weight"]).unsqueeze(1)
    if a.get("in_proj_bias") is not None:
        a["in_proj_bias"] = a["in_proj_bias"] * scale_rows.to(a["in_proj_bias"])
    return bound.args, bound.kwargs


class AttentionScale:
    """Pre-hook enters the logit-scaling mode, an always-called forward hook leaves it; the attention
    multiplier is read from the metadata module (so a loaded checkpoint sets it)."""

    def __init__(self, meta: nn.Module) -> None:
        self.meta = meta
        self._active: list[_LogitScale] = []

    def enter(self, module: nn.Module, args: tuple) -> None:
        mode = _LogitScale(float(self.meta.state["attn_mult"]))
        mode.__enter__()
        self._active.append(mode)

    def leave(self, module: nn.Module, args: tuple, output: Any) -> None:
        if self._active:
            self._active.pop().__exit__(None, None, None)

    def __getstate__(self) -> dict[str, Any]:  # an active mode is transient: never pickled or copied
        return {"meta": self.meta, "_active": []}

    def __deepcopy__(self, memo: dict) -> "AttentionScale":
        return AttentionScale(copy.deepcopy(self.meta, memo))


def install(model: nn.Module, paths: list[str], meta: nn.Module) -> None:
    modules = dict(model.named_modules())
    for p in paths:
        if is_hf_attention(modules[p]):
            set_hf_scaling(modules[p], float(meta.state["attn_mult"]))  # type: ignore[index]
            continue
        hook = AttentionScale(meta)
        modules[p].register_forward_pre_hook(hook.enter)
        modules[p].register_forward_hook(hook.leave, always_call=True)
