"""torchvision image sets: MNIST, Fashion-MNIST and CIFAR-10, read from ``data.root``.

torchvision reads the files in their published formats (IDX for MNIST and Fashion-MNIST, pickled
batches for CIFAR-10). Nothing is downloaded unless ``data.download=true``; when the files are
missing, the run stops with one line that names the folder expected and the flag that fetches them.

Images are kept in memory as uint8 and turned into normalized float tensors per batch on the
training device (``transform``). ``data.augment=true`` passes each training image through
torchvision's random transforms (crops; flips too for CIFAR-10); with ``data.on_device=true`` the
same augmentation runs batched on the training device (``random_shift``, ``random_hflip``: every
image draws its own shift and flip).

``describe_inputs()`` says, as plain JSON, how a raw image (the data set's own: grey 28x28 or RGB
32x32 pixels 0..255) becomes the network's input and what its classes are (torchvision's
``classes``); scripts/export.py writes it into export.json as ``preprocessing`` (the format:
README, "Using a trained model: predict and export"). It needs no files.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision import datasets
from torchvision.datasets import cifar
from torchvision.transforms import v2

from mlzoo.base.errors import ZooError, one_line
from mlzoo.data.base import Loaded, Split, TensorDataModule

# The version of the ``preprocessing`` description export.json carries (describe_inputs)
PREPROCESSING_FORMAT = 1


def random_shift(x: Tensor, padding: int, generator: torch.Generator) -> Tensor:
    """RandomCrop(size, padding) for a batch at once: pad every image with ``padding`` zeros on
    each side and crop it back at its own random offset, i.e. shift it by (dy, dx), each
    uniform in [-padding, padding]."""
    n, _, h, w = x.shape
    padded = F.pad(x, (padding,) * 4)
    dy, dx = torch.randint(0, 2 * padding + 1, (2, n, 1), device=x.device, generator=generator)
    rows = (dy + torch.arange(h, device=x.device))[:, None, :, None]  # (n, 1, h, 1)
    cols = (dx + torch.arange(w, device=x.device))[:, None, None, :]  # (n, 1, 1, w)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def random_hflip(x: Tensor, generator: torch.Generator) -> Tensor:
    """RandomHorizontalFlip(0.5) for a batch: each image mirrored left-right with probability 1/2."""
    flip = torch.rand(len(x), device=x.device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


class TorchvisionDataModule(TensorDataModule):
    """Official train set (split into train/val here) and official test set, as uint8 tensors."""

    dataset_cls: type = datasets.MNIST
    folder = "MNIST/raw"  # where torchvision looks, relative to root
    num_classes = 10
    image_shape: tuple[int, int, int] = (1, 28, 28)  # (channels, height, width) of every image
    class_names: tuple[str, ...] = tuple(datasets.MNIST.classes)  # torchvision's names, label order
    mean: tuple[float, ...] = (0.1307,)
    std: tuple[float, ...] = (0.3081,)

    def __init__(
        self,
        root: str = "data",
        download: bool = False,
        normalize: bool = True,
        augment: bool = False,
        batch_size: int = 128,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        train_subset: int | None = None,
        num_workers: int = 0,
        labels_per_class: int | None = None,
        on_device: bool = False,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            val_fraction=val_fraction,
            split_seed=split_seed,
            train_subset=train_subset,
            num_workers=num_workers,
            labels_per_class=labels_per_class,
            on_device=on_device,
        )
        self.root = root
        self.download = download
        self.normalize = normalize
        self.augment = augment

    def prepare_data(self) -> None:
        if self.download:  # fetch once, on one process; setup() then only reads
            for train in (True, False):
                self._dataset(train)

    def _dataset(self, train: bool) -> datasets.VisionDataset:
        """torchvision's reader; a missing file or a failed download becomes one clear line."""
        name, expected = self.dataset_cls.__name__, Path(self.root).resolve() / self.folder
        try:
            return self.dataset_cls(self.root, train=train, download=self.download)
        except pickle.UnpicklingError as err:  # a file of pickled objects, refused as such
            raise ZooError(
                f"{name}: a file under {expected.parent} holds pickled Python objects, refused "
                f"({one_line(err, 160)}); delete it to read the published files"
            ) from None
        except (RuntimeError, OSError) as err:
            if self.download:
                reason = one_line(err, 300)
                raise ZooError(
                    f"{name}: download failed ({reason}); check the network, or put the files in {expected}"
                ) from None
            raise ZooError(
                f"{name} files not found in {expected}: add data.download=true to download them, "
                "or set data.root to the folder that holds them"
            ) from None

    def _read(self, train: bool) -> Split:
        ds = self._dataset(train)
        x = torch.as_tensor(ds.data)
        x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)  # (N, C, H, W)
        return Split(x.contiguous(), torch.as_tensor(ds.targets, dtype=torch.long))

    def load(self) -> Loaded:
        return Loaded(self._read(True), self._read(False), info={"num_classes": self.num_classes})

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        self.input_shape = tuple(self.splits["train"].x.shape[1:])

    padding = 2  # random shifts of up to 2 pixels
    flip = False  # random horizontal flips (not for digits and letters)

    def augmentations(self) -> list[v2.Transform]:
        """The random transforms ``data.augment=true`` applies to training images."""
        crop = [v2.RandomCrop(self.input_shape[1:], padding=self.padding)]
        return crop + ([v2.RandomHorizontalFlip()] if self.flip else [])

    def train_augmentation(self) -> Callable[[Tensor], Tensor] | None:
        return v2.Compose(self.augmentations()) if self.augment else None

    def train_batch_augmentation(self) -> Callable[[Tensor, torch.Generator], Tensor] | None:
        if not self.augment:
            return None

        def augment(x: Tensor, generator: torch.Generator) -> Tensor:
            x = random_shift(x, self.padding, generator)
            return random_hflip(x, generator) if self.flip else x

        return augment

    def transform(self, x: Tensor) -> Tensor:
        x = x.float() / 255.0
        if self.normalize:
            mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
            std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
            x = (x - mean) / std
        return x

    def describe_inputs(self) -> dict[str, Any] | None:
        """How a raw image of this data set (uint8 pixels, grey or RGB, at its own size: nothing
        is resized) becomes the network's input ``x`` (``transform``), and what its classes are,
        as plain JSON (scripts/export.py writes it into export.json as ``preprocessing``; the
        format is in the README, "Using a trained model"). Fixed by the data set: no files."""
        channels, height, width = self.image_shape
        mean = self.mean if self.normalize else (0.0,) * channels
        std = self.std if self.normalize else (1.0,) * channels
        return {
            "format": PREPROCESSING_FORMAT,
            "kind": "image",
            "source": f"torchvision.datasets.{self.dataset_cls.__name__}",
            "input": "x",
            "mode": {1: "L", 3: "RGB"}[channels],
            "channels": channels,
            "image_size": [height, width],
            "resize": None,  # trained on the data set's own size only
            "layout": "NCHW",
            "dtype": "float32",
            "scale": 255.0,
            "value_range": [0.0, 1.0],
            "normalize": bool(self.normalize),
            "mean": [float(v) for v in mean],
            "std": [float(v) for v in std],
            "recipe": "x[c] = (pixels[c] / scale - mean[c]) / std[c]",
            "target": {"task": "classification", "class_names": list(self.class_names)},
        }


class MNISTDataModule(TorchvisionDataModule):
    """MNIST handwritten digits, 28x28 grey, 60,000 train / 10,000 test."""


class FashionMNISTDataModule(TorchvisionDataModule):
    """Fashion-MNIST clothing images, 28x28 grey, 10 classes, 60,000 / 10,000."""

    dataset_cls = datasets.FashionMNIST
    folder = "FashionMNIST/raw"
    class_names = tuple(datasets.FashionMNIST.classes)
    mean = (0.2860,)
    std = (0.3530,)


class ArraysOnly(pickle.Unpickler):
    """CIFAR-10's batches are pickled dicts of numpy arrays. Unpickling can call any function a
    file names, so only numpy's array reconstruction may be named; anything else is refused,
    never called (a data set from elsewhere is data, never code)."""

    ALLOWED = frozenset(
        {
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("_codecs", "encode"),  # how protocol 2 writes bytes (a string's encoding, no code)
        }
    )

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not array data")


class CIFAR10DataModule(TorchvisionDataModule):
    """CIFAR-10 natural images, 32x32 colour, 10 classes, 50,000 / 10,000."""

    dataset_cls = datasets.CIFAR10
    folder = "cifar-10-batches-py"
    image_shape = (3, 32, 32)
    # torchvision reads these from the files' batches.meta (label_names): the published names
    class_names = (
        "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
    )  # fmt: skip
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)
    padding, flip = 4, True  # the usual CIFAR recipe: pad 4, random 32x32 crop, random flip

    def _dataset(self, train: bool) -> SimpleNamespace:
        """The published batches, read with :class:`ArraysOnly` (torchvision's reader would
        unpickle them with pickle.load); torchvision still downloads them when asked."""
        if self.download:
            super()._dataset(train)
        folder = Path(self.root).resolve() / self.folder
        files = self.dataset_cls.train_list if train else self.dataset_cls.test_list
        data, targets = [], []
        for name, md5 in files:
            path = folder / name
            if not cifar.check_integrity(str(path), md5):  # there, and the published file
                raise ZooError(
                    f"CIFAR10 files not found in {folder} ({name} missing or not the published "
                    "file): add data.download=true to download them, or set data.root to the "
                    "folder that holds them"
                )
            try:
                with open(path, "rb") as f:
                    entry = ArraysOnly(f, encoding="latin1").load()
                data.append(np.asarray(entry["data"], dtype=np.uint8))
                targets.extend(entry.get("labels", entry.get("fine_labels", [])))
            except pickle.UnpicklingError as err:
                raise ZooError(f"CIFAR10: {path} was refused: {err}") from None
            except Exception as err:
                raise ZooError(
                    f"CIFAR10: {path} is not a CIFAR-10 batch ({type(err).__name__}: "
                    f"{one_line(err, 120)})"
                ) from None
        images = np.vstack(data).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # torchvision's HWC
        return SimpleNamespace(data=images, targets=targets)
