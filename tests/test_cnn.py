"""The CNN concept: shapes, the ResNet-18 option, augmentation, and its learning bar."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mlzoo.data.vision import CIFAR10DataModule, MNISTDataModule
from mlzoo.nets.cnn import ConvNet, small_resnet18

from conftest import compose_config
from fakedata import skip_cifar_md5, write_cifar10, write_mnist


@pytest.mark.parametrize("size", [(8, 8), (28, 28), (32, 32), (5, 7)])
@pytest.mark.parametrize("batch_norm", [True, False])
def test_convnet_shapes(size: tuple[int, int], batch_norm: bool) -> None:
    net = ConvNet(3, 10, image_size=size, channels=[8, 16, 16], batch_norm=batch_norm, dropout=0.2)
    assert net(torch.randn(4, 3, *size)).shape == (4, 10)


def test_small_resnet18_keeps_small_images_big_enough() -> None:
    net = small_resnet18(in_channels=1, out_features=10)
    assert net.conv1.stride == (1, 1) and isinstance(net.maxpool, torch.nn.Identity)
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    assert net(torch.randn(2, 1, 32, 32)).shape == (2, 10)


def test_bad_convnet_arguments() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        ConvNet(1, 10, channels=[])
    with pytest.raises(ValueError, match="dropout must be in"):
        ConvNet(1, 10, dropout=1.0)


def test_cnn_refuses_non_images(run) -> None:
    from mlzoo.base.errors import ZooError

    with pytest.raises(ZooError, match="needs images"):
        run(["model=cnn", "data=diabetes", "trainer=debug"])


def test_resnet18_option_composes_and_runs(run) -> None:
    summary = run(["model=cnn", "cnn_net=resnet18", "trainer=debug", "data.batch_size=16"])
    assert summary["global_step"] == 6


def test_cnn_net_group_only_with_cnn(tmp_path: Path) -> None:
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match="cnn_net"):
        compose_config(["model=mlp", "cnn_net=resnet18"], tmp_path)


def test_augmentation_changes_training_images_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_cifar10(tmp_path)
    skip_cifar_md5(monkeypatch)
    write_mnist(tmp_path)
    for cls in (CIFAR10DataModule, MNISTDataModule):
        plain = cls(root=str(tmp_path), val_fraction=0.2, batch_size=100)
        augmented = cls(root=str(tmp_path), val_fraction=0.2, batch_size=100, augment=True)
        torch.manual_seed(0)
        x_plain, _ = next(iter(plain.train_dataloader()))
        torch.manual_seed(0)
        x_aug, _ = next(iter(augmented.train_dataloader()))
        assert x_aug.shape == x_plain.shape and x_aug.dtype == torch.uint8
        assert not torch.equal(x_aug, x_plain), cls.__name__
        val_a = next(iter(augmented.val_dataloader()))[0]
        val_b = next(iter(augmented.val_dataloader()))[0]
        assert torch.equal(val_a, val_b) and torch.equal(val_a, augmented.splits["val"].x)


def test_cnn_with_augmentation_runs_on_fake_cifar(
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_cifar10(tmp_path / "data")
    skip_cifar_md5(monkeypatch)
    summary = run(
        [
            "model=cnn",
            "data=cifar10",
            f"data.root={tmp_path / 'data'}",
            "data.augment=true",
            "data.val_fraction=0.2",
            "trainer=debug",
        ]
    )
    assert summary["data"] == "cifar10" and 0.0 <= summary["metrics"]["test/acc"] <= 1.0


@pytest.mark.slow
def test_cnn_learns_digits(run) -> None:
    """`python train.py model=cnn`: test accuracy >= 0.98 on held-out digits."""
    summary = run(["model=cnn"])
    assert summary["metrics"]["test/acc"] >= 0.98, summary["metrics"]
