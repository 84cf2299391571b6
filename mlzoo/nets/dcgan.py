"""DCGAN generator and discriminator (Radford et al. 2015): all-convolutional, batch norm, no
pooling, no fully connected hidden layers.

The generator starts from a ``base`` x ``base`` map (4 for 8/16/32/64-pixel images, 7 for 28) and
doubles it with stride-2 transposed convolutions; the discriminator mirrors it with stride-2
convolutions and LeakyReLU(0.2). Weights start from N(0, 0.02), as in the paper.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn


def _plan(size: int) -> tuple[int, int]:
    """(base, doublings) with base * 2 ** doublings == size, base 4 or 7."""
    base, n = size, 0
    while base % 2 == 0 and base > 4:
        base, n = base // 2, n + 1
    if base not in (4, 7) or n < 1:
        raise ValueError(
            f"DCGAN: image size {size} must be 4 or 7 times a power of two (8, 16, 28, 32, ...); "
            "resize the data (digits: data.image_size=16)"
        )
    return base, n


def init_dcgan_weights(module: nn.Module) -> None:
    """Conv weights ~ N(0, 0.02); batch-norm scales ~ N(1, 0.02), shifts 0 (paper, section 4)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class Generator(nn.Module):
    """z (B, latent_dim) -> image (B, C, H, W) in [-1, 1] (tanh)."""

    def __init__(self, latent_dim: int, image_shape: Sequence[int], width: int = 64) -> None:
        super().__init__()
        c, h, w = (int(d) for d in image_shape)
        if h != w:
            raise ValueError(f"DCGAN needs square images, got {h}x{w}")
        base, n = _plan(h)
        ch = width * 2 ** (n - 1)
        layers: list[nn.Module] = [
            nn.Unflatten(1, (latent_dim, 1, 1)),
            nn.ConvTranspose2d(latent_dim, ch, base, 1, 0, bias=False),  # 1x1 -> base x base
            nn.BatchNorm2d(ch),
            nn.ReLU(True),
        ]
        for _ in range(n - 1):  # each block doubles H and W and halves the channels
            layers += [
                nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ch // 2),
                nn.ReLU(True),
            ]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, c, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        init_dcgan_weights(self)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class Discriminator(nn.Module):
    """image (B, C, H, W) in [-1, 1] -> one logit per image (real vs generated)."""

    def __init__(self, image_shape: Sequence[int], width: int = 64) -> None:
        super().__init__()
        c, h, _ = (int(d) for d in image_shape)
        base, n = _plan(h)
        layers: list[nn.Module] = [nn.Conv2d(c, width, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        ch = width
        for _ in range(n - 1):
            layers += [
                nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ch * 2),
                nn.LeakyReLU(0.2, True),
            ]
            ch *= 2
        layers += [nn.Conv2d(ch, 1, base, 1, 0), nn.Flatten(0)]  # base x base -> one logit
        self.net = nn.Sequential(*layers)
        init_dcgan_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
