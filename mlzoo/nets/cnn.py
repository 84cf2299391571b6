"""Convolutional networks for small images: a configurable ConvNet and a small-image ResNet-18.

Both take ``(in_channels, out_features, image_size)`` so a concept can swap one for the other from
the config (``model.net=...``). Shapes, for an 8x8 digit and channels [32, 64]:

    (1, 8, 8) -conv,relu,pool-> (32, 4, 4) -conv,relu,pool-> (64, 2, 2) -flatten-> 256 -> 128 -> 10
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn
from torchvision.models import resnet18

from mlzoo.nets.mlp import make_activation


class ConvNet(nn.Module):
    """[Conv -> (BatchNorm) -> activation -> (MaxPool 2x2)] per entry of ``channels``, then a
    dropout-regularized MLP head. Pooling stops once the feature map is 1 pixel wide."""

    def __init__(
        self,
        in_channels: int,
        out_features: int,
        image_size: Sequence[int] = (8, 8),
        channels: Sequence[int] = (32, 64),
        kernel_size: int = 3,
        batch_norm: bool = True,
        activation: str = "relu",
        dropout: float = 0.0,
        hidden: int = 128,
    ) -> None:
        super().__init__()
        if not channels or any(int(c) < 1 for c in channels) or kernel_size < 1 or hidden < 1:
            raise ValueError(f"channels, kernel_size and hidden must be positive: {channels}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        layers: list[nn.Module] = []
        width, (h, w) = int(in_channels), (int(image_size[0]), int(image_size[1]))
        for c in channels:
            # y = act(BN(W * x + b)): a bank of learned kernels slid over the image (weight sharing)
            layers += [
                nn.Conv2d(
                    width, int(c), kernel_size, padding=kernel_size // 2, bias=not batch_norm
                ),
                nn.BatchNorm2d(int(c)) if batch_norm else nn.Identity(),
                make_activation(activation),
            ]
            if (
                min(h, w) >= 2
            ):  # 2x2 max pooling halves the map: translation tolerance, fewer pixels
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            width = int(c)
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(width * h * w, hidden),
            make_activation(activation),
            nn.Dropout(dropout),
            nn.Linear(hidden, int(out_features)),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def small_resnet18(
    in_channels: int, out_features: int, image_size: Sequence[int] = (32, 32)
) -> nn.Module:
    """torchvision's ResNet-18 (He et al. 2016), untrained, adapted to small images the usual way
    for CIFAR: a 3x3 stride-1 stem and no max pool, so a 32x32 input keeps a 4x4 map at the end
    (the ImageNet stem would shrink it to 1x1 after two layers)."""
    del image_size  # global average pooling makes the network size-agnostic
    net = resnet18(weights=None, num_classes=int(out_features))
    net.conv1 = nn.Conv2d(int(in_channels), 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    return net
