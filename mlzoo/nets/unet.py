"""A small U-Net noise predictor for diffusion models (Ronneberger et al. 2015; as used by Ho et al.
2020): eps_theta(x_t, t[, y]).

The image goes down through residual blocks and stride-2 convolutions, then back up with skip
connections from the same resolution; self-attention at chosen resolutions. The timestep t enters
every residual block as a sinusoidal embedding (the transformer's position encoding) passed through
an MLP; an optional class label y is embedded and added to it (label ``num_classes`` means "no
label", which classifier-free guidance uses).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """emb(t)_i = sin(t * w_i), emb(t)_{i + dim/2} = cos(t * w_i), w_i = max_period^(-i / (dim/2))."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(32, channels), channels)  # 32 groups, or fewer that divide


class ResBlock(nn.Module):
    """h = conv(act(norm(x))) + proj(temb); h = conv(dropout(act(norm(h)))); out = skip(x) + h."""

    def __init__(self, cin: int, cout: int, temb_dim: int, dropout: float) -> None:
        super().__init__()
        self.in_layers = nn.Sequential(_norm(cin), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1))
        self.temb = nn.Sequential(nn.SiLU(), nn.Linear(temb_dim, cout))
        self.out_layers = nn.Sequential(
            _norm(cout), nn.SiLU(), nn.Dropout(dropout), nn.Conv2d(cout, cout, 3, padding=1)
        )
        nn.init.zeros_(self.out_layers[-1].weight)  # each block starts as the identity
        nn.init.zeros_(self.out_layers[-1].bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        h = self.in_layers(x) + self.temb(temb)[:, :, None, None]
        return self.skip(x) + self.out_layers(h)


class Attention(nn.Module):
    """Multi-head self-attention over the pixels of a feature map, with a residual connection."""

    def __init__(self, channels: int, heads: int = 4) -> None:
        super().__init__()
        self.norm = _norm(channels)
        self.attn = nn.MultiheadAttention(channels, heads, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        seq = self.norm(x).flatten(2).transpose(1, 2)  # (B, H*W, C)
        out, _ = self.attn(seq, seq, seq, need_weights=False)
        return x + out.transpose(1, 2).reshape(b, c, h, w)


class UNet(nn.Module):
    """eps_theta(x, t, y): (B, C, H, W) -> (B, C, H, W). H and W divisible by
    2 ** (len(channel_mults) - 1)."""

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        channels: int = 64,
        channel_mults: Sequence[int] = (1, 2, 2),
        num_res_blocks: int = 2,
        attention_resolutions: Sequence[int] = (4,),
        dropout: float = 0.1,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        scale = 2 ** (len(channel_mults) - 1)
        if image_size % scale:
            raise ValueError(
                f"U-Net: image size {image_size} not divisible by {scale} "
                f"({len(channel_mults)} levels); pad or resize, or use fewer channel_mults"
            )
        self.channels, self.num_classes = channels, num_classes
        temb_dim = 4 * channels
        self.time_mlp = nn.Sequential(
            nn.Linear(channels, temb_dim), nn.SiLU(), nn.Linear(temb_dim, temb_dim)
        )
        # class labels 0..num_classes-1, and num_classes for "unconditional"
        self.label_emb = nn.Embedding(num_classes + 1, temb_dim) if num_classes else None
        self.stem = nn.Conv2d(in_channels, channels, 3, padding=1)

        self.down = nn.ModuleList()
        skips, ch, res = [channels], channels, image_size
        for level, mult in enumerate(channel_mults):
            for _ in range(num_res_blocks):
                block = nn.ModuleList([ResBlock(ch, channels * mult, temb_dim, dropout)])
                ch = channels * mult
                if res in attention_resolutions:
                    block.append(Attention(ch))
                self.down.append(block)
                skips.append(ch)
            if level < len(channel_mults) - 1:  # stride-2 conv halves H and W
                self.down.append(nn.ModuleList([nn.Conv2d(ch, ch, 3, stride=2, padding=1)]))
                skips.append(ch)
                res //= 2
        self.mid = nn.ModuleList(
            [
                ResBlock(ch, ch, temb_dim, dropout),
                Attention(ch),
                ResBlock(ch, ch, temb_dim, dropout),
            ]
        )
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mults))):
            for i in range(num_res_blocks + 1):  # one more block: it also takes the down-conv skip
                block = nn.ModuleList(
                    [ResBlock(ch + skips.pop(), channels * mult, temb_dim, dropout)]
                )
                ch = channels * mult
                if res in attention_resolutions:
                    block.append(Attention(ch))
                if level > 0 and i == num_res_blocks:  # nearest-neighbour x2, then a conv
                    block.append(nn.Upsample(scale_factor=2, mode="nearest"))
                    block.append(nn.Conv2d(ch, ch, 3, padding=1))
                    res *= 2
                self.up.append(block)
        self.out = nn.Sequential(_norm(ch), nn.SiLU(), nn.Conv2d(ch, in_channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        temb = self.time_mlp(timestep_embedding(t, self.channels))
        if self.label_emb is not None:
            if y is None:  # no label given: the unconditional model
                y = torch.full((len(x),), self.num_classes, device=x.device, dtype=torch.long)
            temb = temb + self.label_emb(y)
        h = self.stem(x)
        hs = [h]
        for block in self.down:
            h = self._run(block, h, temb)
            hs.append(h)
        h = self._run(self.mid, h, temb)
        for block in self.up:
            h = self._run(block, torch.cat([h, hs.pop()], dim=1), temb)
        return self.out(h)

    @staticmethod
    def _run(layers: nn.ModuleList, h: Tensor, temb: Tensor) -> Tensor:
        for layer in layers:
            h = layer(h, temb) if isinstance(layer, ResBlock) else layer(h)
        return h
