"""LoRA: low-rank adaptation of frozen layers (Hu et al. 2021), for nn.Linear and nn.Conv2d.

A pretrained weight W stays frozen; the layer learns a low-rank update instead:

    h = W x + (alpha / r) * B A x,    A: (r, in), B: (out, r), r << min(in, out)

A starts random (Kaiming-uniform) and B at zero, so training starts exactly at the pretrained
function. Only r * (in + out) numbers per layer train. For inference the update folds into the
weight, W' = W + (alpha / r) B A (``folded``): a plain layer again, at no extra cost. For a
convolution, A is a conv with the layer's kernel, stride and padding into r channels and B a 1x1
conv back out (the same parameterisation as Hugging Face peft, whose outputs a test matches).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import torch
from torch import Tensor, nn


class LoRALayer(nn.Module):
    """Wraps a frozen nn.Linear or nn.Conv2d (``base``) with a trainable low-rank update."""

    def __init__(self, base: nn.Linear | nn.Conv2d, r: int, alpha: float, dropout: float) -> None:
        super().__init__()
        if r < 1:
            raise ValueError(f"LoRA rank r must be >= 1, got {r}")
        self.base = base.requires_grad_(False)
        self.r, self.scaling = r, alpha / r
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        if isinstance(base, nn.Linear):
            self.lora_A = nn.Linear(base.in_features, r, bias=False)
            self.lora_B = nn.Linear(r, base.out_features, bias=False)
        elif isinstance(base, nn.Conv2d):
            if base.groups != 1:
                raise ValueError("LoRA for grouped convolutions is not supported")
            self.lora_A = nn.Conv2d(
                base.in_channels,
                r,
                base.kernel_size,
                base.stride,
                base.padding,
                base.dilation,
                bias=False,
            )
            self.lora_B = nn.Conv2d(r, base.out_channels, 1, bias=False)
        else:
            raise TypeError(f"LoRA wraps nn.Linear or nn.Conv2d, not {type(base).__name__}")
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))  # A random
        nn.init.zeros_(self.lora_B.weight)  # B = 0: the wrapped layer starts unchanged
        # saved with the weights, so a merged state dict is never merged a second time
        self.register_buffer("merged_flag", torch.tensor(False))

    @property
    def merged(self) -> bool:
        return bool(self.merged_flag)

    def delta_weight(self) -> Tensor:
        """(alpha / r) * B A, shaped like the base weight."""
        a, b = self.lora_A.weight, self.lora_B.weight
        if isinstance(self.base, nn.Linear):
            return (b @ a) * self.scaling
        # conv: B (out, r, 1, 1) after A (r, in, k, k) is one conv with weight B @ A
        return (b.flatten(1) @ a.flatten(1)).view_as(self.base.weight) * self.scaling

    def forward(self, x: Tensor) -> Tensor:
        out = self.base(x)  # W x (+ bias)
        if self.merged:  # W already holds W + (alpha / r) B A
            return out
        return out + self.lora_B(self.lora_A(self.dropout(x))) * self.scaling

    @torch.no_grad()
    def merge(self) -> None:
        if not self.merged:
            self.base.weight += self.delta_weight()
            self.merged_flag.fill_(True)


def add_lora(
    model: nn.Module,
    target_modules: Sequence[str],
    r: int = 8,
    alpha: float = 16.0,
    dropout: float = 0.0,
) -> list[str]:
    """Freeze ``model`` and wrap every nn.Linear / nn.Conv2d whose qualified name matches one of
    the regular expressions in ``target_modules`` (``re.fullmatch``; e.g. ``features\\.\\d+``,
    ``.*conv.*``). Returns the wrapped names; only the LoRA factors train afterwards."""
    model.requires_grad_(False)
    patterns = [re.compile(p) for p in target_modules]
    targets = [
        name
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear | nn.Conv2d) and any(p.fullmatch(name) for p in patterns)
    ]
    if not targets:
        layers = [n for n, m in model.named_modules() if isinstance(m, nn.Linear | nn.Conv2d)]
        raise ValueError(
            f"LoRA target_modules {list(target_modules)} match no Linear/Conv2d layer; "
            f"the layers are: {layers}"
        )
    for name in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, LoRALayer(getattr(parent, child), r, alpha, dropout))
    return targets


def lora_layers(model: nn.Module) -> list[LoRALayer]:
    return [m for m in model.modules() if isinstance(m, LoRALayer)]


def folded(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every LoRA layer replaced by its base layer holding
    W + (alpha / r) B A: plain nn.Linear / nn.Conv2d, the same outputs, nothing LoRA-specific
    left for an exporter (ONNX, TorchScript) to trace."""
    import copy

    out = copy.deepcopy(model)
    for name, layer in list(out.named_modules()):
        if isinstance(layer, LoRALayer):
            layer.merge()
            parent, _, child = name.rpartition(".")
            setattr(out.get_submodule(parent) if parent else out, child, layer.base)
    return out
