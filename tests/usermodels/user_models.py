"""Small user-style models for the usermodels tests (each takes its width as the first argument)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MLP(nn.Module):
    """d → n → n → c with biases; `readout` lets the mup oracle swap in MuReadout."""

    def __init__(self, n: int, d: int = 16, c: int = 32, readout: type[nn.Linear] = nn.Linear) -> None:
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(d, n), nn.Linear(n, n), readout(n, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.relu(self.fc2(F.relu(self.fc1(x)))))


class Block(nn.Module):
    """Embedding (Linear d → n), pre-norm attention with 2 heads of width n/2, a ReLU MLP, readout.
    `manual=True` computes softmax(q·k/d_head) by hand (μP attention, as microsoft/mup asks users to)."""

    def __init__(self, n: int, d: int = 12, c: int = 32, readout: type[nn.Linear] = nn.Linear, manual: bool = False) -> None:
        super().__init__()
        self.heads, self.manual = 2, manual
        self.embed, self.norm = nn.Linear(d, n), nn.LayerNorm(n)
        self.q, self.k, self.v, self.o = (nn.Linear(n, n) for _ in range(4))
        self.up, self.down = nn.Linear(n, 2 * n), nn.Linear(2 * n, n)
        self.out = readout(n, c)

    def split(self, t: torch.Tensor) -> torch.Tensor:
        b, s, n = t.shape
        return t.view(b, s, self.heads, n // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        u = self.norm(h)
        q, k, v = self.split(self.q(u)), self.split(self.k(u)), self.split(self.v(u))
        if self.manual:
            att = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1], -1) @ v
        else:
            att = F.scaled_dot_product_attention(q, k, v)
        h = h + self.o(att.transpose(1, 2).reshape(h.shape))
        h = h + self.down(F.relu(self.up(h)))
        return self.out(h)


class MHABlock(nn.Module):
    """nn.MultiheadAttention followed by a readout."""

    def __init__(self, n: int, heads: int = 2, c: int = 3) -> None:
        super().__init__()
        self.mha = nn.MultiheadAttention(n, heads, batch_first=True)
        self.out = nn.Linear(n, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.mha(x, x, x, need_weights=False)[0])


def manual_mha(mha: nn.MultiheadAttention, x: torch.Tensor, scale: float) -> torch.Tensor:
    """Reference multi-head self-attention with logits q·k·scale (batch_first, no masks, no dropout)."""
    e, h = mha.embed_dim, mha.num_heads
    q, k, v = F.linear(x, mha.in_proj_weight, mha.in_proj_bias).split(e, -1)
    heads = lambda t: t.view(t.shape[0], t.shape[1], h, e // h).transpose(1, 2)  # noqa: E731
    att = torch.softmax(heads(q) @ heads(k).transpose(-1, -2) * scale, -1) @ heads(v)
    return mha.out_proj(att.transpose(1, 2).reshape(x.shape))
