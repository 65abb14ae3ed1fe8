"""Hugging Face `transformers` models built from a config (no download), ready for `parametrize`.

`gpt2(width, depth)` and `llama(width, depth)` are factories in the shape `coord_check` and the CLI
take: width = hidden size (heads fixed, so d_head grows with width), depth = number of blocks.
Dropout is 0 so coord checks and tests are deterministic. `transformers` is the optional extra
`hf`: without it these raise a one-line LazyrichError naming `pip install "lazyrich[hf]"`.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import LazyrichError, require

INSTALL = 'pip install "lazyrich[hf]"'


def transformers() -> Any:
    """The `transformers` module, or a one-line error saying how to install it."""
    try:
        import transformers as tf
    except ImportError:
        raise LazyrichError(f"Hugging Face models need the transformers package: {INSTALL}") from None
    return tf


def _check(width: int, depth: int, heads: int) -> None:
    require(width >= 1 and depth >= 1 and heads >= 1, f"width={width}, depth={depth}, heads={heads} must be positive")
    require(width % heads == 0, f"width={width} is not divisible by heads={heads}: pick a width that is a multiple of {heads}")


def gpt2(width: int, depth: int = 2, *, heads: int = 2, vocab: int = 256, context: int = 64, tie: bool = True,
         attn_implementation: str = "eager", seed: int | None = 0, **config: Any) -> nn.Module:
    """`GPT2LMHeadModel` with n_embd=width, n_layer=depth, n_head=heads (Conv1D layers, tied embeddings
    by default, pre-LN blocks in `transformer.h`); extra keywords go to `GPT2Config`."""
    _check(width, depth, heads)
    tf = transformers()
    cfg = tf.GPT2Config(n_embd=width, n_layer=depth, n_head=heads, vocab_size=vocab, n_positions=context,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=tie,
                        bos_token_id=0, eos_token_id=0, **config)
    cfg._attn_implementation = attn_implementation
    if seed is not None:
        torch.manual_seed(seed)
    return tf.GPT2LMHeadModel(cfg)


def llama(width: int, depth: int = 2, *, heads: int = 2, kv_heads: int | None = None, vocab: int = 256,
          context: int = 64, mlp_ratio: float = 3.0, tie: bool = False, attn_implementation: str = "eager",
          seed: int | None = 0, **config: Any) -> nn.Module:
    """`LlamaForCausalLM` with hidden_size=width, num_hidden_layers=depth, intermediate size
    mlp_ratio·width (RMSNorm, SwiGLU, RoPE; blocks in `model.layers`); extra keywords go to `LlamaConfig`."""
    _check(width, depth, heads)
    tf = transformers()
    cfg = tf.LlamaConfig(hidden_size=width, num_hidden_layers=depth, num_attention_heads=heads,
                         num_key_value_heads=kv_heads or heads, intermediate_size=int(round(mlp_ratio * width)),
                         vocab_size=vocab, max_position_embeddings=context, tie_word_embeddings=tie,
                         bos_token_id=0, eos_token_id=0, pad_token_id=None, **config)
    cfg._attn_implementation = attn_implementation
    if seed is not None:
        torch.manual_seed(seed)
    return tf.LlamaForCausalLM(cfg)


def logits(output: Any) -> torch.Tensor:
    """The tensor a model returned: `.logits` of a Hugging Face output, the first element of a tuple."""
    if isinstance(output, torch.Tensor):
        return output
    if hasattr(output, "logits"):
        return output.logits
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise LazyrichError(f"the model returned {type(output).__name__}, not a tensor: return a tensor or an object with .logits")
