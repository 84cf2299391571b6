"""Data sets that ship inside scikit-learn: they need no download, so they are the offline defaults.

- ``digits``: 1,797 handwritten digits, 8x8 pixels with values 0..16, 10 classes (UCI optdigits).
- ``diabetes``: 442 patients, 10 standardized features, a disease-progression score one year later
  (Efron et al. 2004): a small, noisy regression problem on which least squares is a strong baseline.
"""

from __future__ import annotations

import torch
from sklearn.datasets import load_diabetes, load_digits

from mlzoo.data.base import Loaded, Split, TensorDataModule


class DigitsDataModule(TensorDataModule):
    """8x8 grey digits as (1, 8, 8) float tensors in [0, 1]; a 70/15/15 stratified split."""

    task = "classification"
    input_shape = (1, 8, 8)

    def load(self) -> Loaded:
        bunch = load_digits()
        x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
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
