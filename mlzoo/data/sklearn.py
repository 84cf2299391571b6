"""Data sets that ship inside scikit-learn: they need no download, so they are the offline defaults.

- ``digits``: 1,797 handwritten digits, 8x8 pixels with values 0..16, 10 classes (UCI optdigits).
- ``diabetes``: 442 patients, 10 standardized features, a disease-progression score one year later
  (Efron et al. 2004): a small, noisy regression problem on which least squares is a strong baseline.

Both say how a raw example becomes the network's input ``x`` (``describe_inputs()``, plain JSON):
scripts/export.py writes it into export.json as ``preprocessing`` (the format: README, "Using a
trained model: predict and export"), so that an exported network is usable without the zoo.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_diabetes, load_digits

from mlzoo.base.errors import ZooError
from mlzoo.data.base import Loaded, Split, TensorDataModule

# The version of the ``preprocessing`` description export.json carries (describe_inputs)
PREPROCESSING_FORMAT = 1
DIGIT_SCALE = 16.0  # load_digits' pixels are counts of 0..16 ink pixels (a 4x4 block of 32x32)


class DigitsDataModule(TensorDataModule):
    """8x8 grey digits as (1, 8, 8) float tensors in [0, 1]; a 70/15/15 stratified split.

    ``image_size`` resizes them (bilinear, antialiased, then clamped to [0, 1]) for architectures
    that need bigger images, e.g. 16 for a DCGAN whose generator doubles 4x4 -> 8x8 -> 16x16.
    ``encode`` is that preprocessing for any 8x8 arrays of 0..16 (what ``load`` applies);
    ``describe_inputs()`` the same as plain JSON, with the class names "0".."9".
    """

    task = "classification"
    class_names = tuple(str(d) for d in range(10))

    def __init__(self, image_size: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if image_size is not None and image_size < 4:
            raise ZooError(f"data.image_size must be >= 4 or null, got {image_size}")
        self.image_size = image_size or 8
        self.input_shape = (1, self.image_size, self.image_size)

    def encode(self, images: Any) -> torch.Tensor:
        """(N, 8, 8) raw digits, values 0..16 (``load_digits().images``) -> the network's input
        (N, 1, image_size, image_size) float32 in [0, 1]: x = pixels / 16, resized (torch's
        bilinear interpolation, antialiased) and clamped to [0, 1] when image_size is not 8."""
        x = torch.as_tensor(np.asarray(images), dtype=torch.float32).unsqueeze(1) / DIGIT_SCALE
        if self.image_size != 8:
            size = (self.image_size, self.image_size)
            x = F.interpolate(x, size=size, mode="bilinear", antialias=True).clamp(0.0, 1.0)
        return x

    def load(self) -> Loaded:
        bunch = load_digits()
        y = torch.tensor(bunch.target, dtype=torch.long)
        return Loaded(Split(self.encode(bunch.images), y), info={"num_classes": 10})

    def describe_inputs(self) -> dict[str, Any]:
        """How a raw digit (an 8x8 array of 0..16, as ``load_digits().images`` holds them)
        becomes the network's input ``x``, and its output a class, as plain JSON
        (scripts/export.py writes it into export.json as ``preprocessing``; the format is in
        the README, "Using a trained model"). Nothing here is learned: no setup needed."""
        size = self.image_size
        resize = None
        if size != 8:  # torch's antialiased bilinear equals PIL's BILINEAR on a float image
            resize = {
                "library": "torch",  # torch.nn.functional.interpolate
                "method": "bilinear",
                "antialias": True,
                "align_corners": False,
                "pil": "BILINEAR of a float32 (mode F) image",  # the same within 5e-7
                "clamp": [0.0, 1.0],
            }
        return {
            "format": PREPROCESSING_FORMAT,
            "kind": "array",
            "source": "sklearn.datasets.load_digits().images",
            "raw_shape": [8, 8],
            "raw_range": [0.0, DIGIT_SCALE],
            "input": "x",
            "channels": 1,
            "image_size": [size, size],
            "resize": resize,
            "layout": "NCHW",
            "dtype": "float32",
            "scale": DIGIT_SCALE,
            "value_range": [0.0, 1.0],
            "normalize": False,
            "mean": [0.0],
            "std": [1.0],
            "recipe": "x = pixels / scale as (1, 8, 8)"
            + ("" if resize is None else ", then resized and clamped to [0, 1] (resize)"),
            "target": {"task": "classification", "class_names": list(self.class_names)},
        }


class DiabetesDataModule(TensorDataModule):
    """Ten features standardized on the training rows; the target standardized for the loss.

    Models report RMSE and R^2 in the target's original units (``info`` carries its mean and std).
    ``describe_inputs()`` gives the features' and the target's scaling as plain JSON (the split,
    and so its statistics, depend on the split settings alone: computed again from them).
    """

    task = "regression"
    input_shape = (10,)
    standardize_features = True
    standardize_target = True

    feature_mean: torch.Tensor | None = None
    feature_std: torch.Tensor | None = None

    def load(self) -> Loaded:
        x, y = load_diabetes(return_X_y=True)
        return Loaded(
            Split(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32))
        )

    def _standardize(self) -> None:
        train = self.splits["train"].x
        self.feature_mean, self.feature_std = train.mean(0), train.std(0)  # as the base does
        super()._standardize()

    def describe_inputs(self) -> dict[str, Any]:
        """How a raw row (``load_diabetes().data``: sklearn's own scaled features, in
        ``feature_names`` order) becomes the network's input ``x``, and its output the
        disease-progression score, as plain JSON (scripts/export.py writes it into export.json
        as ``preprocessing``; the format is in the README, "Using a trained model"). The
        statistics are the training split's, which depends on the split settings alone
        (``setup`` computes them again from the shipped data)."""
        self.setup()
        names = list(load_diabetes().feature_names)
        columns = [
            {"name": n, "kind": "numeric", "mean": float(m), "std": float(s)}
            for n, m, s in zip(names, self.feature_mean, self.feature_std, strict=True)
        ]
        return {
            "format": PREPROCESSING_FORMAT,
            "kind": "table",
            "source": "sklearn.datasets.load_diabetes().data",
            "input": "x",
            "dtype": "float32",
            "width": len(columns),
            "columns": columns,
            "target": {
                "name": "target",
                "task": "regression",
                "target_mean": float(self.info["target_mean"]),
                "target_std": float(self.info["target_std"]),
            },
        }
