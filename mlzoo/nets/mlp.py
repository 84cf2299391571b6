"""A configurable multi-layer perceptron, the network behind the MLP concept and many others.

Each hidden layer computes ``h = dropout(act(norm(W h_prev + b)))``; the last layer is linear
(logits or a regression value); ``linear_skip`` adds a linear path from input to output. Inputs of any shape are flattened first, so an 8x8 image or a
10-feature row both work.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from torch import Tensor, nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "leaky_relu": nn.LeakyReLU,
    "silu": nn.SiLU,
}
NORMS = ("none", "batch", "layer")


def make_activation(name: str) -> nn.Module:
    """An activation module by name (relu, tanh, sigmoid, gelu, leaky_relu, silu)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose from {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def make_norm(name: str, width: int) -> nn.Module:
    """A normalization layer over ``width`` features: none, batch (BatchNorm1d) or layer."""
    if name == "none":
        return nn.Identity()
    if name == "batch":
        return nn.BatchNorm1d(width)
    if name == "layer":
        return nn.LayerNorm(width)
    raise ValueError(f"unknown norm {name!r}; choose from {list(NORMS)}")


class MLP(nn.Module):
    """Flatten -> [Linear -> norm -> activation -> dropout] x len(hidden_sizes) -> Linear."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden_sizes: Sequence[int] = (256, 256),
        activation: str = "relu",
        norm: str = "none",
        dropout: float = 0.0,
        linear_skip: bool = False,
    ) -> None:
        super().__init__()
        sizes = [int(in_features), *[int(h) for h in hidden_sizes]]
        if any(s < 1 for s in [*sizes, int(out_features)]):
            raise ValueError(
                f"hidden_sizes must be positive, got {sizes[1:]} (input {sizes[0]}, "
                f"output {out_features})"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        layers: list[nn.Module] = [nn.Flatten()]
        for width_in, width_out in itertools.pairwise(sizes):
            layers += [
                nn.Linear(width_in, width_out),
                make_norm(norm, width_out),
                make_activation(activation),
                nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
            ]
        layers.append(nn.Linear(sizes[-1], int(out_features)))
        self.layers = nn.Sequential(*layers)
        # "Wide & deep" (Cheng et al. 2016): f(x) = W_skip x + MLP(x). On nearly linear data
        # (diabetes) the linear path carries the signal and the MLP only adds the curvature.
        self.skip = (
            nn.Sequential(nn.Flatten(), nn.Linear(sizes[0], int(out_features)))
            if linear_skip
            else None
        )

    def forward(self, x: Tensor) -> Tensor:
        out = self.layers(x)
        return out if self.skip is None else out + self.skip(x)
