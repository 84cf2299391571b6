"""MNIST and CIFAR-10 for throughput benchmarks: the published files when they can be read, else
random uint8 images of the published shape and count (random labels), seeded per split, with a
warning that starts 'SYNTHETIC'. Samples per second do not depend on the pixels; anything learned
from them is meaningless. The gpu benchmark swaps them in for the zoo's own classes:

    python train.py model=cnn data=mnist data._target_=benchmarks.synthetic.MNISTDataModule \\
        allow_targets=[benchmarks]
"""

from __future__ import annotations

import logging

import torch

from mlzoo.base.errors import ZooError
from mlzoo.data.base import Split
from mlzoo.data.vision import CIFAR10DataModule as _CIFAR10
from mlzoo.data.vision import MNISTDataModule as _MNIST

log = logging.getLogger(__name__)


class SyntheticIfMissing:
    """Mixed into a torchvision data module: its ``_read`` falls back to random images."""

    published: tuple[int, int, int, int]  # train and test examples, channels, side

    def _read(self, train: bool) -> Split:
        try:
            return super()._read(train)
        except ZooError as err:
            return self._synthetic(train, err)

    def _synthetic(self, train: bool, err: ZooError) -> Split:
        n_train, n_test, channels, side = self.published
        n, g = (n_train if train else n_test), torch.Generator().manual_seed(int(train))
        log.warning(
            "SYNTHETIC %s %s split: %d random images stand in (benchmarks.synthetic): %s",
            self.dataset_cls.__name__,
            "train" if train else "test",
            n,
            err,
        )
        x = torch.randint(0, 256, (n, channels, side, side), dtype=torch.uint8, generator=g)
        return Split(x, torch.randint(0, self.num_classes, (n,), generator=g))


class MNISTDataModule(SyntheticIfMissing, _MNIST):
    published = (60_000, 10_000, 1, 28)


class CIFAR10DataModule(SyntheticIfMissing, _CIFAR10):
    published = (50_000, 10_000, 3, 32)
