"""Data sets that ship inside scikit-learn: they need no download, so they are the offline defaults.

- ``digits``: 1,797 handwritten digits, 8x8 pixels with values 0..16, 10 classes (UCI optdigits).
- ``diabetes``: 442 patients, 10 standardized features, a disease-progression score one year later
  (Efron et al. 2004): a small, noisy regression problem on which least squares is a strong baseline.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from sklearn.datasets import load_diabetes, load_digits

from mlzoo.base.errors import ZooError
from mlzoo.data.base import Loaded, Split, TensorDataModule


class DigitsDataModule(TensorDataModule):
    """8x8 grey digits as (1, 8, 8) float tensors in [0, 1]; a 70/15/15 stratified split.

    ``image_size`` resizes them (bilinear) for architectures that need bigger images, e.g. 16 for a
    DCGAN whose generator doubles 4x4 -> 8x8 -> 16x16.
    """

    task = "classification"

    def __init__(self, image_size: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if image_size is not None and image_size < 4:
            raise ZooError(f"data.image_size must be >= 4 or null, got {image_size}")
        self.image_size = image_size or 8
        self.input_shape = (1, self.image_size, self.image_size)

    def load(self) -> Loaded:
        bunch = load_digits()
        x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
        if self.image_size != 8:
            size = (self.image_size, self.image_size)
            x = F.interpolate(x, size=size, mode="bilinear", antialias=True).clamp(0.0, 1.0)
        y = torch.tensor(bunch.target, dtype=torch.long)
        return Loaded(Split(x, y), info={"num_classes": 10})


class DiabetesDataModule(TensorDataModule):
    """Ten features standardized on the training rows; the target standardized for the loss.

    Models report RMSE and R^2 in the target's original units (``info`` carries its mean and std).
    """

    task = "regression"
    input_shape = (10,)
    standardize_features = True
    standardize_target = True

    def load(self) -> Loaded:
        x, y = load_diabetes(return_X_y=True)
        return Loaded(
            Split(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32))
        )
