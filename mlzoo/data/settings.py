"""The data settings every tensor data module takes, checked without importing torch.

The checks live here, apart from the data modules (which import torch and Lightning), so that the
command line can refuse ``data.batch_size=0`` in a second, before the run imports anything heavy
(mlzoo.run.typecheck.check_before_imports); the data module's constructor runs the same function.
"""

from __future__ import annotations

from typing import Any

from mlzoo.base.errors import ZooError

SPLIT_SETTINGS = (
    "batch_size",
    "val_fraction",
    "test_fraction",
    "train_subset",
    "labels_per_class",
    "num_workers",
)


def check_split_settings(**settings: Any) -> None:
    """Refuse a split or batching setting no data set can take; the ones not given are not
    checked."""
    batch_size = settings.get("batch_size")
    if batch_size is not None and batch_size < 1:
        raise ZooError(f"data.batch_size must be >= 1, got {batch_size}")
    for name in ("val_fraction", "test_fraction"):
        frac = settings.get(name)
        if frac is not None and not 0.0 < frac < 1.0:
            raise ZooError(f"data.{name} must be in (0, 1), got {frac}")
    for name in ("train_subset", "labels_per_class"):
        value = settings.get(name)
        if value is not None and value < 1:
            raise ZooError(f"data.{name} must be >= 1 or null, got {value}")
    workers = settings.get("num_workers")
    if workers is not None and workers < 0:
        raise ZooError(f"data.num_workers must be >= 0, got {workers}")
