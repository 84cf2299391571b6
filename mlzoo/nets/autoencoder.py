"""Encoders and decoders for autoencoders: fully connected (any input) and convolutional (images).

Each builder returns ``(encoder, decoder)``: encoder (B, *input_shape) -> (B, latent_dim), decoder
(B, latent_dim) -> (B, *input_shape) as logits (the model applies the sigmoid: inputs are in [0, 1]).
``encoder_decoder`` picks a builder by name (``model.arch``) for the autoencoder and the VAE.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from mlzoo.nets.mlp import MLP


def mlp_autoencoder(
    input_shape: Sequence[int],
    latent_dim: int,
    hidden_sizes: Sequence[int] = (256, 128),
    activation: str = "relu",
) -> tuple[nn.Module, nn.Module]:
    """x -> MLP -> z -> mirrored MLP -> x_hat logits."""
    n = math.prod(int(d) for d in input_shape)
    encoder = MLP(n, latent_dim, hidden_sizes, activation=activation)
    decoder = nn.Sequential(
        MLP(latent_dim, n, list(reversed(list(hidden_sizes))), activation=activation),
        nn.Unflatten(1, tuple(int(d) for d in input_shape)),
    )
    return encoder, decoder


def conv_autoencoder(
    input_shape: Sequence[int], latent_dim: int, channels: Sequence[int] = (32, 64)
) -> tuple[nn.Module, nn.Module]:
    """Strided 3x3 convolutions down (each halves H and W), transposed convolutions back up.

    H and W must be divisible by 2 ** len(channels) (8x8 digits with two stages: 8 -> 4 -> 2).
    """
    c, h, w = (int(d) for d in input_shape)
    scale = 2 ** len(channels)
    if h % scale or w % scale:
        raise ValueError(f"conv autoencoder: image {h}x{w} not divisible by {scale}; pad or resize")
    down: list[nn.Module] = []
    width = c
    for ch in channels:
        down += [nn.Conv2d(width, ch, 3, stride=2, padding=1), nn.ReLU()]
        width = ch
    hs, ws = h // scale, w // scale
    encoder = nn.Sequential(*down, nn.Flatten(), nn.Linear(width * hs * ws, latent_dim))
    up: list[nn.Module] = [nn.Linear(latent_dim, width * hs * ws), nn.Unflatten(1, (width, hs, ws))]
    for ch in [*reversed(list(channels[:-1])), c]:
        up += [nn.ReLU(), nn.ConvTranspose2d(width, ch, 4, stride=2, padding=1)]
        width = ch
    return encoder, nn.Sequential(*up)


ARCHS = {"mlp": mlp_autoencoder, "conv": conv_autoencoder}


def encoder_decoder(
    arch: str, input_shape: Sequence[int], latent_dim: int, code_dim: int | None = None
) -> tuple[nn.Module, nn.Module]:
    """``(encoder, decoder)`` of the ``arch`` family (mlp | conv) for images of ``input_shape``:
    the decoder reads ``latent_dim`` numbers, the encoder gives ``code_dim`` (default
    ``latent_dim``; a VAE's encoder gives 2 * latent_dim: mu and log sigma^2)."""
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {sorted(ARCHS)}, got {arch!r}")
    shape = tuple(int(d) for d in input_shape)
    if code_dim is None or code_dim == latent_dim:
        return ARCHS[arch](shape, latent_dim)
    encoder, _ = ARCHS[arch](shape, code_dim)
    _, decoder = ARCHS[arch](shape, latent_dim)
    return encoder, decoder


class Sigmoid(nn.Module):
    """A decoder of pixel logits as z -> pixel probabilities in [0, 1] (what the autoencoder and
    the VAE export: the sigmoid they apply is part of the deployed network)."""

    def __init__(self, decoder: nn.Module) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, z: Tensor) -> Tensor:
        return self.decoder(z).sigmoid()
