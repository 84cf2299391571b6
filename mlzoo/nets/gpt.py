"""A small decoder-only transformer (GPT; Radford et al. 2018, 2019), pre-LayerNorm.

Tokens t_1..t_T become vectors (token embedding + learned position embedding), then each block
applies, with a residual connection around each part,

    x = x + Attention(LN(x)),   Attention(Q, K, V) = softmax(Q K^T / sqrt(d_head) + M) V
    x = x + MLP(LN(x)),         MLP(x) = W_2 GELU(W_1 x)

where the causal mask M is -inf above the diagonal, so position t attends only to positions <= t.
A final LayerNorm and a linear layer tied to the token embedding give the logits of the next token
at every position: p(t_{i+1} | t_1..t_i) = softmax(logits_i).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class CausalSelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"embedding size {dim} is not divisible by {heads} heads")
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        # softmax(Q K^T / sqrt(d_head) + M) V, M: the causal mask
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads, dropout)
        self.mlp = nn.Sequential(
            nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim), nn.Dropout(dropout)
        )

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x))  # pre-LN: normalise, then add back
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """Logits of the next token at every position: (B, T) token ids -> (B, T, vocab)."""

    def __init__(
        self,
        vocab_size: int,
        max_len: int = 64,
        dim: int = 128,
        layers: int = 4,
        heads: int = 4,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.max_len = max_len
        self.tok = nn.Embedding(vocab_size, dim)
        self.pos = nn.Embedding(max_len, dim)
        self.blocks = nn.ModuleList(Block(dim, heads, dropout) for _ in range(layers))
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab_size, bias=False)
        self.head.weight = self.tok.weight  # weight tying
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear | nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, ids: Tensor) -> Tensor:
        """Right-padded batches need no attention mask: causal attention never looks ahead, so
        real tokens never see the padding after them (its logits are simply ignored)."""
        t = ids.shape[1]
        if t > self.max_len:
            raise ValueError(f"sequence of {t} tokens is longer than max_len {self.max_len}")
        x = self.tok(ids) + self.pos(torch.arange(t, device=ids.device))[None]
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x))
