"""Your own images: torchvision's ImageFolder layout, one folder per class.

    python train.py model=cnn data=image_folder data.root=photos/ data.image_size=64

``root/<class>/*.png|jpg|...``: one pool, split here into train/val/test (seeded and stratified:
``split_seed``, ``val_fraction``, ``test_fraction``). Or ``root/train``, ``root/test`` (and
optionally ``root/val``), each in that layout, used as they are; without ``val`` the validation
set comes from ``train``. Class names are the folder names (sorted, as torchvision's
``find_classes``), saved in every checkpoint with the normalisation.

Every image is read once (PIL), converted to ``channels`` (1: grey, 3: RGB) and resized to
``image_size`` x ``image_size`` (so mixed sizes are fine), and held in memory as uint8 like the
torchvision sets. ``normalize``: ``true`` standardises each channel with the training split's
own mean and std; ``imagenet`` uses ImageNet's (for pretrained backbones); ``false`` keeps
[0, 1] (the generative models). ``augment`` as for the torchvision sets: random shifts of
``padding`` pixels, and mirror flips with ``flip``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from mlzoo.core.errors import ZooError
from mlzoo.data.base import Loaded, Split, TensorDataModule
from mlzoo.data.vision import TorchvisionDataModule

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def read_images(paths: list, size: int, channels: int) -> torch.Tensor:
    """uint8 images (N, C, size, size): each converted to grey or RGB and resized (PIL)."""
    from PIL import Image, UnidentifiedImageError

    mode = {1: "L", 3: "RGB"}[channels]
    images = np.empty((len(paths), size, size, channels), dtype=np.uint8)
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as image:
                image = image.convert(mode).resize((size, size), Image.Resampling.BILINEAR)
                images[i] = np.asarray(image).reshape(size, size, channels)
        except (UnidentifiedImageError, OSError) as err:
            raise ZooError(f"cannot read the image {path} ({err})") from None
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()


def read_folder(folder: Path, size: int, channels: int, classes: list[str] | None = None):
    """(a Split of uint8 images and labels, class names) of one ImageFolder tree."""
    from torchvision.datasets import ImageFolder

    try:
        found = ImageFolder(str(folder), loader=lambda p: p)  # paths only; read below
    except (FileNotFoundError, OSError) as err:  # no class folders, or no image in them
        raise ZooError(f"data.root: {folder}: {' '.join(str(err).split())[:200]}") from None
    names = found.classes
    if classes is not None and names != classes:
        raise ZooError(f"data.root: {folder} has the classes {names}, the training set {classes}")
    x = read_images([p for p, _ in found.samples], size, channels)
    return Split(x, torch.tensor(found.targets, dtype=torch.long)), names


class ImageFolderDataModule(TorchvisionDataModule):
    """Images from class folders (see the module docstring), as uint8 in memory."""

    def __init__(
        self,
        root: str,
        image_size: int = 32,
        channels: int = 3,
        normalize: bool | str = True,
        augment: bool = False,
        padding: int = 2,
        flip: bool = False,
        **kwargs: Any,
    ) -> None:
        # TensorDataModule's arguments (a test split of its own, unlike the torchvision sets)
        TensorDataModule.__init__(self, **kwargs)
        if channels not in (1, 3) or image_size < 4:
            raise ZooError(
                f"data: need channels 1 or 3 and image_size >= 4; got {channels}, {image_size}"
            )
        if normalize not in (True, False, "imagenet"):
            raise ZooError(f"data.normalize must be true, false or imagenet, got {normalize!r}")
        self.root, self.download, self.augment = root, False, augment
        self.image_size, self.channels, self.padding, self.flip = (
            image_size,
            channels,
            padding,
            flip,
        )
        self.normalize = normalize is not False
        self.normalize_with = normalize
        self.input_shape = (channels, image_size, image_size)
        self.class_names: list[str] = []
        self.mean, self.std = (0.0,) * channels, (1.0,) * channels

    def load(self) -> Loaded:
        root = Path(self.root).expanduser()
        if not root.is_dir():
            raise ZooError(f"data.root: no folder {root}")
        args = (self.image_size, self.channels)
        if (root / "train").is_dir() and (root / "test").is_dir():
            train, names = read_folder(root / "train", *args)
            test, _ = read_folder(root / "test", *args, classes=names)
            val = (
                read_folder(root / "val", *args, classes=names)[0]
                if (root / "val").is_dir()
                else None
            )
        else:
            (train, names), test, val = read_folder(root, *args), None, None
        if len(names) < 2:
            raise ZooError(
                f"data.root: {root} has one class ({names[0]}): a classifier needs two or more"
            )
        self.class_names = names
        return Loaded(train, test, val=val, info={"num_classes": len(names)})

    def setup(self, stage: str | None = None) -> None:
        TensorDataModule.setup(self, stage)  # the input shape is the configured one

    def _standardize(self) -> None:
        if self.normalize_with == "imagenet":
            mean, std = IMAGENET_MEAN, IMAGENET_STD
            if self.channels == 1:  # grey: the channels' average
                mean, std = (sum(mean) / 3,), (sum(std) / 3,)
            self.mean, self.std = mean, std
        elif self.normalize_with is True:  # each channel over the training images
            x = self.splits["train"].x.float() / 255.0
            self.mean = tuple(float(v) for v in x.mean(dim=(0, 2, 3)))
            self.std = tuple(max(float(v), 1e-6) for v in x.std(dim=(0, 2, 3)))

    def state_dict(self) -> dict[str, Any]:
        """Class names and preprocessing (saved in every checkpoint, for predict)."""
        if not self.class_names:
            return {}
        return {
            "class_names": list(self.class_names),
            "mean": list(self.mean),
            "std": list(self.std),
            "image_size": self.image_size,
            "channels": self.channels,
            "normalize": self.normalize,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("class_names", "mean", "std"):
            if key in state:
                setattr(self, key, tuple(state[key]) if key != "class_names" else list(state[key]))
