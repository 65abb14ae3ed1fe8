"""A small pre-LN GPT (GPT-2 layout, nanoGPT style) as an ordinary `nn.Module`, for the user-model path.

Token and positional `nn.Embedding`, `depth` blocks h ← h + attn(LN(h)), h ← h + mlp(LN(h)) in an
`nn.ModuleList` (repeated identical blocks: what depth parametrizations look for), causal attention through
`F.scaled_dot_product_attention` (so μP's 1/d_head logit scale is installed by `parametrize`), a final LN
and an untied readout. The residual branches' output projections have no bias, so a multiplier on them
(a depth scheme's L^(−α)) is exactly a branch multiplier.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import require


class Attention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v = (nn.Linear(width, width) for _ in range(3))
        self.o = nn.Linear(width, width, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        b, t, n = x.shape
        split = lambda z: z.view(b, t, self.heads, n // self.heads).transpose(1, 2)  # noqa: E731
        a = F.scaled_dot_product_attention(split(self.q(x)), split(self.k(x)), split(self.v(x)), is_causal=True)
        return self.o(a.transpose(1, 2).reshape(b, t, n))


class MLP(nn.Module):
    def __init__(self, width: int, ratio: int = 4) -> None:
        super().__init__()
        self.up = nn.Linear(width, ratio * width)
        self.down = nn.Linear(ratio * width, width, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down(F.gelu(self.up(x)))


class Block(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(width), Attention(width, heads)
        self.ln2, self.mlp = nn.LayerNorm(width), MLP(width)

    def forward(self, h: Tensor) -> Tensor:
        h = h + self.attn(self.ln1(h))
        return h + self.mlp(self.ln2(h))


class GPT(nn.Module):
    """Pre-LN GPT over a `vocab`-token alphabet: tokens [B, T] → logits [B, T, vocab].
    `head_dim` is fixed (heads = width / head_dim), so width grows by adding heads, as in μP transformers."""

    def __init__(self, width: int, depth: int, vocab: int = 256, context: int = 64, head_dim: int = 16) -> None:
        super().__init__()
        require(width % head_dim == 0, f"width={width} must be a multiple of head_dim={head_dim}")
        require(depth >= 1, f"depth={depth} must be at least 1")
        self.tok, self.pos = nn.Embedding(vocab, width), nn.Embedding(context, width)
        self.blocks = nn.ModuleList(Block(width, width // head_dim) for _ in range(depth))
        self.ln_f = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab, bias=False)

    def forward(self, tokens: Tensor) -> Tensor:
        t = tokens.shape[-1]
        require(t <= self.pos.num_embeddings, f"sequence length {t} exceeds the context {self.pos.num_embeddings}")
        h = self.tok(tokens) + self.pos(torch.arange(t, device=tokens.device))
        for block in self.blocks:
            h = block(h)
        return self.head(self.ln_f(h))
