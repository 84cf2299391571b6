"""Linear probe: how linearly separable are the classes in a feature space?

The standard yardstick for learned representations (used by SimCLR and most self-supervised
papers): freeze the features, fit a multinomial logistic regression (scikit-learn) on the training
features, report test accuracy. Features are standardised on the training rows first.
"""

from __future__ import annotations

import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import Tensor, nn


@torch.no_grad()
def features(encoder: nn.Module, x: Tensor, batch: int = 512) -> Tensor:
    """encoder(x) in eval mode, flattened to (N, D), on the CPU."""
    was_training = encoder.training
    encoder.eval()
    out = torch.cat([encoder(x[i : i + batch]).flatten(1).cpu() for i in range(0, len(x), batch)])
    encoder.train(was_training)
    return out


def linear_probe_accuracy(
    train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor], c: float = 1.0
) -> float:
    """Test accuracy of logistic regression (inverse regularisation ``c``) fitted on train."""
    (xtr, ytr), (xte, yte) = train, test
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))
    clf.fit(xtr.flatten(1).numpy(), ytr.numpy())
    return float(clf.score(xte.flatten(1).numpy(), yte.numpy()))
