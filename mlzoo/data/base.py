"""TensorDataModule: a small data set held in memory as tensors, split once with a fixed seed.

Every data module in the zoo derives from it. A subclass implements ``load()`` and returns either
one pool of examples (split here into train/val/test) or the official train and test sets (train is
split into train/val here). The split depends only on ``split_seed``, never on the run's ``seed``,
so runs with different seeds are compared on the same held-out examples.

Shuffling uses ``EpochSampler``: the order of epoch ``e`` is a function of (run seed, e) alone, so a
run resumed from a checkpoint sees exactly the batches an uninterrupted run would have seen.

``on_device=true`` keeps each split on the training device (a GPU: MNIST's 60,000 training
images are 47 MB as uint8) and builds every batch there with one indexing operation, instead of a
DataLoader collating examples one by one on the CPU and copying each batch over. The batches are
the same ones, in the same order (``EpochBatches`` cuts ``EpochSampler``'s permutation);
augmentation runs batched on the device (``train_batch_augmentation``), seeded by (run seed,
epoch, batch).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch
from sklearn.model_selection import train_test_split
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset

from mlzoo.base.errors import ZooError, listed, one_line
from mlzoo.data.settings import check_split_settings

log = logging.getLogger(__name__)


def bad_state(where: str, what: str) -> ZooError:
    """A data module's saved state (a checkpoint's ``<DataModule>`` entry, read back by its
    ``load_state_dict``) that is not what ``state_dict`` writes: one line naming the key."""
    return ZooError(f"{where}: {what}: not what this zoo writes (an edited or foreign checkpoint)")


def saved_mapping(
    value: Any, where: str, keys: Iterable[str] | None = None, required: Iterable[str] = ()
) -> dict[str, Any]:
    """``value`` as a dict with string keys; with ``keys``, only those (and all of ``required``)."""
    if not isinstance(value, dict):
        raise bad_state(where, f"a {type(value).__name__}, not a mapping")
    odd = [k for k in value if not isinstance(k, str)]
    if odd:
        raise bad_state(where, f"a key that is not a string ({listed(repr(k) for k in odd)})")
    if keys is not None:
        keys = list(keys)
        unknown = [k for k in value if k not in keys]
        if unknown:
            raise bad_state(
                where,
                f"unknown key(s) {listed(repr(k) for k in unknown)} (it holds {listed(keys)})",
            )
    lacking = [k for k in required if k not in value]
    if lacking:
        raise bad_state(where, f"no {listed(repr(k) for k in lacking)}")
    return value


def saved_names(value: Any, where: str) -> list[str]:
    """``value`` as a list of strings (class names, columns, categories)."""
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise bad_state(where, f"{one_line(repr(value), 80)} is not a list of names")
    return list(value)


def saved_number(value: Any, where: str, positive: bool = False) -> float:
    """``value`` as a finite float (> 0 with ``positive``)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or (positive and value <= 0):
        wanted = "a positive finite number" if positive else "a finite number"
        raise bad_state(where, f"{one_line(repr(value), 80)} is not {wanted}")
    return float(value)


@dataclass
class Split:
    """Inputs and targets of one split (inputs may be uint8 images: see ``transform``)."""

    x: Tensor
    y: Tensor

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Loaded:
    """What ``load()`` returns: a pool to split three ways, or official train and test sets
    (and validation set)."""

    train: Split
    test: Split | None = None
    info: dict[str, Any] = field(default_factory=dict)
    val: Split | None = None  # a validation set of its own (else held out of train)


class AugmentedDataset(Dataset):
    """A split whose inputs pass through a random augmentation each time they are drawn."""

    def __init__(self, split: Split, augment: Callable[[Tensor], Tensor]) -> None:
        self.split, self.augment = split, augment

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.augment(self.split.x[i]), self.split.y[i]


class EpochSampler(Sampler[int]):
    """A random permutation per epoch, seeded by (seed, epoch); Lightning calls ``set_epoch``."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def epoch_seed(self) -> int:
        return (self.seed * 100_003 + self.epoch) % 2**63

    def permutation(self) -> Tensor:
        g = torch.Generator().manual_seed(self.epoch_seed())
        return torch.randperm(self.n, generator=g)

    def __iter__(self) -> Iterator[int]:
        return iter(self.permutation().tolist())

    def __len__(self) -> int:
        return self.n


class EpochBatches(Sampler[tuple[Tensor, int]]):
    """Batches of indices for data held on the device: ``EpochSampler``'s order when shuffling
    (the same batches a DataLoader would draw), else 0..n-1. Each batch comes with a seed for its
    augmentation, a function of (seed, epoch, batch number): a resumed run augments alike."""

    def __init__(
        self, n: int, batch_size: int, seed: int, shuffle: bool, drop_last: bool, device
    ) -> None:
        self.order = EpochSampler(n, seed)
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.device = device

    def set_epoch(self, epoch: int) -> None:
        self.order.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[Tensor, int]]:
        n = self.order.n
        idx = self.order.permutation() if self.shuffle else torch.arange(n)
        idx = idx.to(self.device)
        base = self.order.epoch_seed() * 100_003
        for k in range(len(self)):
            yield idx[k * self.batch_size : (k + 1) * self.batch_size], (base + k) % 2**63

    def __len__(self) -> int:
        full, rest = divmod(self.order.n, self.batch_size)
        return full + (rest > 0 and not self.drop_last)


class DeviceBatches(Dataset):
    """A split held on the device, read a whole batch at a time: ``dataset[(indices, seed)]``."""

    def __init__(self, split: Split, augment: Callable[[Tensor, torch.Generator], Tensor] | None):
        self.split, self.augment = split, augment

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, key: tuple[Tensor, int]) -> tuple[Tensor, Tensor]:
        indices, seed = key
        x, y = self.split.x[indices], self.split.y[indices]
        if self.augment is not None:
            x = self.augment(x, torch.Generator(x.device).manual_seed(seed))
        return x, y


class TensorDataModule(L.LightningDataModule):
    """Base class: seeded splits, in-memory tensors, and a ``spec`` that models size themselves by.

    Args:
        batch_size: examples per optimizer step (train) and per evaluation batch.
        val_fraction: share of the training pool held out for validation (checkpoint selection).
        test_fraction: share of the pool held out for testing, when the set has no official test split.
        split_seed: seed of the train/val/test split (fixed by default: keep it across runs).
        train_subset: keep only the first N training examples (few-label and overfitting studies).
        labels_per_class: keep only the first k training examples of each class (few-label
            transfer; classification only). Validation and test sets stay whole.
        num_workers: DataLoader workers; 0 is fastest for in-memory tensors.
        on_device: keep the splits on the training device and batch them there (see the module
            docstring); needs a batched augmentation when the data set augments.
    """

    task = "classification"
    input_shape: tuple[int, ...] = ()
    # Standardize with the training split's statistics (val and test use the same ones):
    standardize_features = False  # each input feature to mean 0, std 1
    standardize_target = False  # a regression target (models report metrics in original units)

    def __init__(
        self,
        batch_size: int = 64,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        split_seed: int = 0,
        train_subset: int | None = None,
        num_workers: int = 0,
        labels_per_class: int | None = None,
        on_device: bool = False,
    ) -> None:
        super().__init__()
        check_split_settings(
            batch_size=batch_size,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            train_subset=train_subset,
            labels_per_class=labels_per_class,
            num_workers=num_workers,
        )
        self.labels_per_class = labels_per_class
        self.batch_size = batch_size
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.split_seed = split_seed
        self.train_subset = train_subset
        self.num_workers = num_workers
        self.on_device = on_device
        if on_device and num_workers:
            raise ZooError(
                "data.on_device=true builds batches on the device: set data.num_workers=0"
            )
        self.splits: dict[str, Split] = {}
        self._device_splits: dict[tuple[str, str], Split] = {}
        self.info: dict[str, Any] = {}

    # --- what a subclass provides -------------------------------------------------------------
    def load(self) -> Loaded:
        raise NotImplementedError

    def transform(self, x: Tensor) -> Tensor:
        """Per-batch input transform, applied on the training device (e.g. uint8 -> float)."""
        return x

    def train_augmentation(self) -> Callable[[Tensor], Tensor] | None:
        """Per-example random augmentation of training inputs (None: no augmentation)."""
        return None

    def train_batch_augmentation(self) -> Callable[[Tensor, torch.Generator], Tensor] | None:
        """The same augmentation for a whole batch on its device, each example drawn on its own
        (``on_device=true``); None: this data set has none."""
        return None

    # --- splitting ----------------------------------------------------------------------------
    def _split(
        self, pool: Split, fraction: float, option: str = "data.val_fraction"
    ) -> tuple[Split, Split]:
        """(kept, held out) of ``pool``, ``fraction`` held out (``option``: the setting that
        says so, for messages); stratified by class where every class has enough examples."""
        idx = torch.arange(len(pool))
        stratify = pool.y.numpy() if self.task == "classification" else None
        try:  # class proportions kept in every split
            keep, held = train_test_split(
                idx.numpy(), test_size=fraction, random_state=self.split_seed, stratify=stratify
            )
        except ValueError:  # too few examples per class to stratify (tiny sets): plain random
            try:
                keep, held = train_test_split(
                    idx.numpy(), test_size=fraction, random_state=self.split_seed
                )
            except ValueError:  # too few examples for both parts: one line, with the counts
                raise ZooError(self._too_few(pool, fraction, option)) from None
            if stratify is not None:
                log.warning(
                    f"data: the {option} split is random, not stratified by class (too few "
                    "examples to give every class some on each side); examples per class: "
                    f"{self._per_class(pool)}"
                )
        keep, held = torch.as_tensor(keep), torch.as_tensor(held)
        return Split(pool.x[keep], pool.y[keep]), Split(pool.x[held], pool.y[held])

    def _per_class(self, pool: Split) -> str:
        """``cat: 1, dog: 3``, fewest first (class names where the data module has them)."""
        names = list(getattr(self, "class_names", None) or [])
        classes, counts = pool.y.unique(return_counts=True)
        pairs = sorted(zip(counts.tolist(), classes.tolist(), strict=True))
        return listed(f"{names[c] if c < len(names) else c}: {k}" for k, c in pairs)

    def _too_few(self, pool: Split, fraction: float, option: str) -> str:
        whole = "" if option == "data.test_fraction" else " left after the test split"
        text = (
            f"data: too few examples to split ({len(pool)}{whole}): {option}={fraction} leaves "
            "either no example to hold out or none to train on (each part needs at least one)"
        )
        if self.task == "classification":
            text += f"; examples per class: {self._per_class(pool)}"
        return text + "; add examples, or change data.val_fraction / data.test_fraction"

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        loaded = self.load()
        self.info = dict(loaded.info)
        if loaded.test is None:
            pool, test = self._split(loaded.train, self.test_fraction, "data.test_fraction")
        else:
            pool, test = loaded.train, loaded.test
        if loaded.val is not None:
            train, val = pool, loaded.val
        else:
            train, val = self._split(pool, self.val_fraction)
        if self.train_subset is not None:
            train = Split(train.x[: self.train_subset], train.y[: self.train_subset])
        if self.labels_per_class is not None:
            if self.task != "classification":
                raise ZooError("data.labels_per_class needs a classification data set")
            keep = (
                torch.cat(
                    [
                        (train.y == c).nonzero().flatten()[: self.labels_per_class]
                        for c in train.y.unique()
                    ]
                )
                .sort()
                .values
            )
            train = Split(train.x[keep], train.y[keep])
        self.splits = {"train": train, "val": val, "test": test}
        self._clamp_batch_size(len(train))
        self._standardize()

    def _clamp_batch_size(self, n_train: int) -> None:
        """A batch larger than the training split becomes the whole split (one batch an
        epoch), with one logged note: a small folder of one's own trains with the defaults,
        and a sweep over batch sizes shows which of its values ran as another."""
        if self.batch_size > n_train:
            log.warning(
                f"data.batch_size={self.batch_size} is larger than the training split "
                f"({n_train} examples): using batch_size={n_train} (one batch an epoch)"
            )
            self.batch_size = n_train

    def _standardize(self) -> None:
        train = self.splits["train"]
        if self.standardize_features:
            mean, std = train.x.mean(0), train.x.std(0)
            for name, split in self.splits.items():
                self.splits[name] = Split((split.x - mean) / std, split.y)
        if self.standardize_target:
            mean, std = train.y.mean(), train.y.std()
            for name, split in self.splits.items():
                self.splits[name] = Split(split.x, (split.y - mean) / std)
            self.info.update(target_mean=float(mean), target_std=float(std))

    @property
    def spec(self) -> dict[str, Any]:
        """What a model needs to size itself: input shape, task, classes or number of regression
        targets, and the target's scale (regression metrics are reported in original units)."""
        self.setup()
        return {
            "input_shape": list(self.input_shape),
            "task": self.task,
            "num_classes": int(self.info.get("num_classes", 0)),
            "num_targets": int(self.info.get("num_targets", 1)),
            "target_mean": float(self.info.get("target_mean", 0.0)),
            "target_std": float(self.info.get("target_std", 1.0)),
        }

    # --- loaders ------------------------------------------------------------------------------
    def _device(self) -> torch.device:
        if self.trainer is None:  # used outside a Trainer (tests, scripts)
            return torch.device("cpu")
        return self.trainer.strategy.root_device

    def _loader(self, stage: str) -> DataLoader:
        self.setup()
        split, train = self.splits[stage], stage == "train"
        # a last training batch of one example breaks batch norm: drop it (and only it)
        drop_last = train and len(split) % self.batch_size == 1
        if self.on_device:
            return self._device_loader(stage, drop_last)
        augment = self.train_augmentation() if train else None
        dataset = AugmentedDataset(split, augment) if augment else TensorDataset(split.x, split.y)
        sampler = EpochSampler(len(split), seed=torch.initial_seed()) if train else None
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=drop_last,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            # page-locked batches: the copy to a GPU can then overlap with its compute
            pin_memory=self._device().type == "cuda",
        )

    def _device_loader(self, stage: str, drop_last: bool) -> DataLoader:
        """One indexing operation per batch, on the device (see the module docstring)."""
        device, train = self._device(), stage == "train"
        augment = self.train_batch_augmentation() if train else None
        if train and augment is None and self.train_augmentation() is not None:
            raise ZooError(
                f"data.on_device=true: {type(self).__name__} has no batched augmentation; set "
                "data.on_device=false or data.augment=false"
            )
        key = (stage, str(device))
        if key not in self._device_splits:  # moved once, kept for the next loader
            split = self.splits[stage]
            self._device_splits[key] = Split(split.x.to(device), split.y.to(device))
        split = self._device_splits[key]
        seed = torch.initial_seed()
        batches = EpochBatches(len(split), self.batch_size, seed, train, drop_last, device)
        return DataLoader(DeviceBatches(split, augment), sampler=batches, batch_size=None)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        x, y = batch
        return self.transform(x), y
