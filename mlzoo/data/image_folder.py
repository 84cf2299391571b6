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
``padding`` pixels, and mirror flips with ``flip``. ``describe_inputs()`` gives this
preprocessing and the class names as plain JSON, which scripts/export.py writes into export.json
(the format: README, "Using a trained model: predict and export").

Reading is bounded (no folder or file can make a run wait forever or exhaust memory):

- The folders are walked here, not by torchvision's ImageFolder (its walk follows symlinks: a
  loop such as ``cross/again -> .`` read the same images thousands of times, or never ended).
  A class is a folder, or a symlink to one, directly under the root (torchvision's rule, so the
  class names, their order and the order of the images are the same). Inside a class folder,
  symlinked folders are not followed; symlinked files are read when they lead to a regular
  file. Entries with an image extension that are not regular files (FIFOs, sockets,
  devices, broken links) are skipped, never opened; the ``mlzoo`` log says how many were skipped
  and names the first few. ``scripts/predict.py`` refuses such a file in one line.
- ``max_pixels`` (default Pillow's own limit, 89,478,485 pixels, about 9,500 x 9,500): an image
  whose width x height is larger is refused in one line naming the file, checked from its header
  before it is decoded. Raise ``data.max_pixels`` to read larger images (``scripts/predict.py``
  reads with the default limit).
- ``image_size`` is at most 1024 (``MAX_IMAGE_SIZE``): every image is held in memory at
  ``image_size`` x ``image_size`` x ``channels`` bytes.
"""

from __future__ import annotations

import logging
import os
import stat
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mlzoo.base.errors import ZooError, listed, one_line
from mlzoo.data.base import (
    Loaded,
    Split,
    TensorDataModule,
    bad_state,
    saved_mapping,
    saved_names,
    saved_number,
)
from mlzoo.data.vision import TorchvisionDataModule
from mlzoo.nets.pretrained import IMAGENET_MEAN, IMAGENET_STD

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
# Every image is held in memory resized: N x image_size**2 x channels bytes (10,000 RGB images of
# 1024 x 1024 are already 31 GB), and a batch of them as float32 four times that per image.
MAX_IMAGE_SIZE = 1024
MAX_PIXELS = 89_478_485  # Pillow's own Image.MAX_IMAGE_PIXELS: about 9,500 x 9,500
# The version of the ``preprocessing`` description export.json carries (describe_inputs)
PREPROCESSING_FORMAT = 1

log = logging.getLogger("mlzoo")


def _is_regular(path: str | Path) -> bool:
    """True for a regular file (through symlinks); never opens it (a FIFO would block)."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:  # a broken link, no permission, ...
        return False


def read_image(path: str | Path, size: int, mode: str, max_pixels: int) -> np.ndarray:
    """One image as uint8 (size, size, channels). Refused in one line: a file that is not a
    regular file (never opened: a FIFO would block), an image over ``max_pixels`` (from its
    header, before decoding), or one that cannot be read."""
    from PIL import Image

    if not _is_regular(path):
        raise ZooError(f"{path} is not a regular file (a FIFO, socket, device or broken link)")
    try:
        # O_NONBLOCK: should the file have been swapped for a FIFO since, opening cannot block.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as file:
            if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                raise ZooError(f"{path} is not a regular file")
            with Image.open(file) as image:  # reads the header only
                width, height = image.size
                if width * height > max_pixels:
                    raise ZooError(
                        f"{path}: {width}x{height} = {width * height:,} pixels is over the "
                        f"limit of {max_pixels:,} (data.max_pixels; raise it to read this image)"
                    )
                image = image.convert(mode).resize((size, size), Image.Resampling.BILINEAR)
                return np.asarray(image).reshape(size, size, len(mode))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ZooError(
            f"{path}: over the limit of {max_pixels:,} pixels (data.max_pixels; raise it to "
            f"read this image); Pillow: {one_line(err, 160)}"
        ) from None
    except (OSError, ValueError, EOFError, SyntaxError) as err:  # UnidentifiedImageError too
        raise ZooError(f"cannot read the image {path} ({one_line(err, 160)})") from None


def read_images(
    paths: list, size: int, channels: int, max_pixels: int = MAX_PIXELS
) -> torch.Tensor:
    """uint8 images (N, C, size, size): each converted to grey or RGB and resized (PIL); an
    image over ``max_pixels`` (width x height) or a file that is not regular is refused."""
    from PIL import Image

    mode = {1: "L", 3: "RGB"}[channels]
    images = np.empty((len(paths), size, size, channels), dtype=np.uint8)
    pillow_limit = Image.MAX_IMAGE_PIXELS
    try:
        if pillow_limit is not None and max_pixels > pillow_limit:  # ours is checked instead
            Image.MAX_IMAGE_PIXELS = max_pixels
        with warnings.catch_warnings():  # Pillow's warning above its limit: refused as well
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            for i, path in enumerate(paths):
                images[i] = read_image(path, size, mode, max_pixels)
    finally:
        Image.MAX_IMAGE_PIXELS = pillow_limit
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()


def find_images(folder: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """(class names, (path, class index) samples) of one ImageFolder tree, in torchvision's
    order (sorted class folders; within one, sorted folders then sorted file names), without
    following symlinked folders inside a class and without opening anything. Skipped entries
    (symlinked folders, image names that are not regular files) are counted in the log."""
    try:
        with os.scandir(folder) as entries:
            classes = sorted(e.name for e in entries if e.is_dir())  # a symlinked class: a class
    except OSError as err:
        raise ZooError(f"data.root: cannot list {folder} ({one_line(err, 160)})") from None
    if not classes:
        raise ZooError(f"data.root: {folder} has no class folder (expected {folder}/<class>/*.png)")
    samples: list[tuple[str, int]] = []
    skipped: list[str] = []
    empty = []

    def unreadable(err: OSError) -> None:
        skipped.append(f"{os.path.relpath(err.filename, folder)} (unreadable)")

    for index, name in enumerate(classes):
        tree = []  # (folder, file names); os.walk does not follow symlinked folders by default
        for dirpath, dirnames, filenames in os.walk(folder / name, onerror=unreadable):
            links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
            here = os.path.relpath(dirpath, folder)
            skipped.extend(f"{os.path.join(here, d)} (symlinked folder)" for d in links)
            tree.append((dirpath, filenames))
        count = len(samples)
        for dirpath, filenames in sorted(tree):
            for filename in sorted(filenames):
                if not filename.lower().endswith(IMG_EXTENSIONS):
                    continue
                path = os.path.join(dirpath, filename)
                if _is_regular(path):
                    samples.append((path, index))
                else:
                    skipped.append(f"{os.path.relpath(path, folder)} (not a regular file)")
        if len(samples) == count:
            empty.append(name)
    if skipped:
        log.warning(
            f"data.root: {folder}: skipped {len(skipped)} entries (symlinked folders are not "
            "followed; FIFOs, sockets, devices and broken links are not read): "
            f"{listed(skipped, 4)}"
        )
    if empty:
        raise ZooError(
            f"data.root: {folder}: no image in the class folder(s) {listed(empty)} "
            f"(extensions: {' '.join(IMG_EXTENSIONS)})"
        )
    return classes, samples


def read_folder(
    folder: Path,
    size: int,
    channels: int,
    classes: list[str] | None = None,
    max_pixels: int = MAX_PIXELS,
):
    """(a Split of uint8 images and labels, class names) of one ImageFolder tree."""
    names, samples = find_images(folder)
    if classes is not None and names != classes:
        raise ZooError(
            f"data.root: {folder} has the classes {listed(names)}, "
            f"the training set {listed(classes)}"
        )
    x = read_images([p for p, _ in samples], size, channels, max_pixels)
    targets = torch.tensor([t for _, t in samples], dtype=torch.long)
    return Split(x, targets), names


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
        max_pixels: int = MAX_PIXELS,
        **kwargs: Any,
    ) -> None:
        # TensorDataModule's arguments (a test split of its own, unlike the torchvision sets)
        TensorDataModule.__init__(self, **kwargs)
        if channels not in (1, 3):
            raise ZooError(f"data.channels: need channels 1 or 3, got {channels!r}")
        if (
            isinstance(image_size, bool)
            or not isinstance(image_size, int)
            or not 4 <= image_size <= MAX_IMAGE_SIZE
        ):
            raise ZooError(
                f"data.image_size must be an integer in [4, {MAX_IMAGE_SIZE}], got {image_size!r} "
                "(every image is held in memory at image_size x image_size x channels bytes)"
            )
        if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
            raise ZooError(f"data.max_pixels must be an integer >= 1, got {max_pixels!r}")
        self.max_pixels = max_pixels
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
        limit = {"max_pixels": self.max_pixels}
        if (root / "train").is_dir() and (root / "test").is_dir():
            train, names = read_folder(root / "train", *args, **limit)
            test, _ = read_folder(root / "test", *args, classes=names, **limit)
            val = (
                read_folder(root / "val", *args, classes=names, **limit)[0]
                if (root / "val").is_dir()
                else None
            )
        else:
            (train, names), test, val = read_folder(root, *args, **limit), None, None
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

    def describe_inputs(self) -> dict[str, Any] | None:
        """How a raw image file becomes the network's input ``x``, and what its classes are, as
        plain JSON (scripts/export.py writes it into export.json as ``preprocessing``; the format
        is in the README, "Using a trained model"). None before setup or a checkpoint's state."""
        if not self.class_names:
            return None
        mode = {1: "L", 3: "RGB"}[self.channels]
        normalize = "imagenet" if self.normalize_with == "imagenet" else bool(self.normalize)
        return {
            "format": PREPROCESSING_FORMAT,
            "kind": "image",
            "input": "x",
            "mode": mode,
            "channels": self.channels,
            "image_size": [self.image_size, self.image_size],
            # PIL: Image.open(f).convert(mode).resize((width, height), Resampling.BILINEAR)
            "resize": {
                "library": "PIL",
                "method": "bilinear",
                "keep_aspect_ratio": False,
                "crop": None,
                "exif_transpose": False,
            },
            "layout": "NCHW",
            "dtype": "float32",
            "scale": 255.0,
            "value_range": [0.0, 1.0],
            "normalize": normalize,
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
            "recipe": "x[c] = (pixels[c] / scale - mean[c]) / std[c]",
            "target": {"task": "classification", "class_names": list(self.class_names)},
        }

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
        """What ``state_dict`` wrote, checked (a checkpoint is data from outside): two or more
        distinct class names, a finite mean and a positive std per channel, and the image size,
        channels and normalisation of this data module's config (the run's); else one line
        naming ``ImageFolderDataModule.<key>``. An empty state (saved before setup) is
        nothing to restore."""
        where = type(self).__qualname__
        keys = ("class_names", "mean", "std", "image_size", "channels", "normalize")
        state = saved_mapping(state, where, keys)
        if not state:
            return
        saved_mapping(state, where, keys, required=("class_names", "mean", "std"))
        names = saved_names(state["class_names"], f"{where}.class_names")
        if len(names) < 2 or len(set(names)) < len(names):
            shown = listed(repr(n) for n in names) or "none"
            raise bad_state(f"{where}.class_names", f"{shown} are not two or more distinct names")
        for key, own in (
            ("image_size", self.image_size),
            ("channels", self.channels),
            ("normalize", self.normalize),
        ):
            if key in state and (type(state[key]) is not type(own) or state[key] != own):
                raise ZooError(  # (the type too: True == 1)
                    f"{where}.{key}: the checkpoint's {one_line(repr(state[key]), 80)} is not "
                    f"data.{key}={own!r} of the run's config (an edited checkpoint?)"
                )
        stats = {}
        for key in ("mean", "std"):
            values = state[key]
            if not isinstance(values, list | tuple) or len(values) != self.channels:
                raise bad_state(
                    f"{where}.{key}",
                    f"{one_line(repr(values), 80)} is not {self.channels} number(s), one a "
                    f"channel (data.channels={self.channels})",
                )
            stats[key] = tuple(
                saved_number(v, f"{where}.{key}[{i}]", positive=key == "std")
                for i, v in enumerate(values)
            )
        self.class_names, self.mean, self.std = names, stats["mean"], stats["std"]
