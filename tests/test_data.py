"""Data modules: seeded splits, epoch-seeded shuffling, and torchvision sets read from fake files.

Fast and offline: the sklearn sets ship with scikit-learn, and the torchvision sets are read from
small files written by ``tests/fakedata.py`` in the published formats. Any download attempt fails.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torchvision.datasets.cifar
import torchvision.datasets.mnist

from mlzoo.base.errors import ZooError
from mlzoo.data.base import EpochSampler, Loaded, Split, TensorDataModule
from mlzoo.data.sklearn import DiabetesDataModule, DigitsDataModule
from mlzoo.data.vision import (
    CIFAR10DataModule,
    FashionMNISTDataModule,
    MNISTDataModule,
    TorchvisionDataModule,
)

from fakedata import cifar10_arrays, mnist_arrays, skip_cifar_md5, write_cifar10, write_mnist


@pytest.fixture(autouse=True)
def no_download(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test here is offline: a download attempt is a test failure, not a network call."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"tests must not download anything: {args} {kwargs}")

    for module in (torchvision.datasets.mnist, torchvision.datasets.cifar):
        monkeypatch.setattr(module, "download_and_extract_archive", refuse)


def rows(x: torch.Tensor) -> set[bytes]:
    """Each example as bytes, to compare splits by content."""
    flat = x.reshape(len(x), -1).contiguous().numpy()
    return {r.tobytes() for r in flat}


def splits_of(dm: TensorDataModule) -> dict[str, Split]:
    dm.setup()
    return dm.splits


def assert_same_splits(a: dict[str, Split], b: dict[str, Split]) -> None:
    for name in ("train", "val", "test"):
        assert torch.equal(a[name].x, b[name].x), name
        assert torch.equal(a[name].y, b[name].y), name


# --- digits -----------------------------------------------------------------------------------
def test_digits_split_sizes_and_disjoint() -> None:
    s = splits_of(DigitsDataModule())
    sizes = {k: len(v) for k, v in s.items()}
    assert sum(sizes.values()) == 1797
    assert sizes["test"] == 270  # ceil(0.15 * 1797)
    assert sizes["val"] == 230  # ceil(0.15 * 1527)
    assert sizes["train"] == 1797 - 270 - 230
    train, val, test = (rows(s[k].x) for k in ("train", "val", "test"))
    assert len(train) + len(val) + len(test) == 1797  # no example repeated inside a split
    assert not train & val
    assert not train & test
    assert not val & test


def test_digits_split_depends_on_split_seed_only() -> None:
    torch.manual_seed(1)
    a = splits_of(DigitsDataModule(split_seed=0))
    torch.manual_seed(12345)
    b = splits_of(DigitsDataModule(split_seed=0))
    assert_same_splits(a, b)  # the run's torch seed does not move the split

    c = splits_of(DigitsDataModule(split_seed=1))
    assert not torch.equal(a["test"].x, c["test"].x)
    assert rows(a["test"].x) != rows(c["test"].x)
    assert len(c["test"]) == len(a["test"])


def test_digits_split_is_stratified() -> None:
    s = splits_of(DigitsDataModule())
    for split in s.values():
        counts = torch.bincount(split.y, minlength=10).float()
        share = counts / counts.sum()
        assert torch.all((share - 0.1).abs() < 0.02)


def test_digits_spec_and_values() -> None:
    dm = DigitsDataModule()
    assert dm.spec == {
        "input_shape": [1, 8, 8],
        "task": "classification",
        "num_classes": 10,
        "num_targets": 1,
        "target_mean": 0.0,
        "target_std": 1.0,
    }
    for split in dm.splits.values():
        assert split.x.shape[1:] == (1, 8, 8)
        assert split.x.dtype == torch.float32
        assert split.y.dtype == torch.long
        assert split.x.min() >= 0.0 and split.x.max() <= 1.0
        assert set(split.y.unique().tolist()) == set(range(10))
    assert dm.splits["train"].x.max() == 1.0  # 16/16: the scale is really [0, 1]


# --- diabetes ---------------------------------------------------------------------------------
def raw_diabetes_splits(**kwargs) -> dict[str, Split]:
    """The same split before standardization."""

    class Raw(DiabetesDataModule):
        standardize_features = standardize_target = False

    dm = Raw(**kwargs)
    dm.setup()
    return dm.splits


def test_diabetes_standardized_on_train() -> None:
    dm = DiabetesDataModule()
    spec = dm.spec
    assert spec["task"] == "regression"
    assert spec["input_shape"] == [10]
    assert sum(len(s) for s in dm.splits.values()) == 442
    train = dm.splits["train"]
    assert train.x.shape[1] == 10
    assert torch.allclose(train.x.mean(0), torch.zeros(10), atol=1e-5)
    assert torch.allclose(train.x.std(0), torch.ones(10), atol=1e-4)
    assert abs(float(train.y.mean())) < 1e-5
    assert abs(float(train.y.std()) - 1.0) < 1e-4

    raw = raw_diabetes_splits()
    raw_y = raw["train"].y
    assert spec["target_mean"] == pytest.approx(float(raw_y.mean()), rel=1e-6)
    assert spec["target_std"] == pytest.approx(float(raw_y.std()), rel=1e-6)
    assert 100 < spec["target_mean"] < 200 and 50 < spec["target_std"] < 100  # original units

    # val and test use the training statistics (no peeking at held-out rows)
    x_mean, x_std = raw["train"].x.mean(0), raw["train"].x.std(0)
    for name in ("val", "test"):
        expected = (raw[name].x - x_mean) / x_std
        assert torch.allclose(dm.splits[name].x, expected, atol=1e-5)
        y = dm.splits[name].y * spec["target_std"] + spec["target_mean"]
        assert torch.allclose(y, raw[name].y, atol=1e-3)


# --- shuffling --------------------------------------------------------------------------------
def test_epoch_sampler_order_is_function_of_seed_and_epoch() -> None:
    a, b = EpochSampler(100, seed=3), EpochSampler(100, seed=3)
    for epoch in (0, 1, 7):
        a.set_epoch(epoch)
        b.set_epoch(epoch)
        assert list(a) == list(b)
        assert list(a) == list(a)  # iterating again repeats the epoch
        assert sorted(a) == list(range(100))
        assert len(a) == 100
    a.set_epoch(0)
    b.set_epoch(1)
    assert list(a) != list(b)
    assert list(a) != list(EpochSampler(100, seed=4))
    assert list(a) != list(range(100))


def loader_order(dm: TensorDataModule, torch_seed: int, epoch: int) -> list[bytes]:
    """The training examples in the order one epoch's batches deliver them."""
    torch.manual_seed(torch_seed)
    loader = dm.train_dataloader()
    assert isinstance(loader.sampler, EpochSampler)
    loader.sampler.set_epoch(epoch)
    torch.manual_seed(torch_seed + 999)  # global RNG use after the loader is built must not matter
    return [r.numpy().tobytes() for x, _ in loader for r in x]


def test_train_dataloader_seeded_per_epoch() -> None:
    dm = DigitsDataModule(batch_size=64)
    dm.setup()
    n = len(dm.splits["train"])
    assert n % 64 not in (0, 1)  # a ragged last batch, kept
    first = loader_order(dm, torch_seed=7, epoch=2)
    assert len(first) == n
    assert set(first) == rows(dm.splits["train"].x)  # every example exactly once
    assert loader_order(dm, torch_seed=7, epoch=2) == first
    assert loader_order(dm, torch_seed=7, epoch=3) != first
    assert loader_order(dm, torch_seed=8, epoch=2) != first


def test_eval_loaders_not_shuffled() -> None:
    dm = DigitsDataModule(batch_size=100)
    dm.setup()
    for name, loader in (("val", dm.val_dataloader()), ("test", dm.test_dataloader())):
        x = torch.cat([x for x, _ in loader])
        assert torch.equal(x, dm.splits[name].x)


def test_last_batch_of_one_dropped() -> None:
    dm = DigitsDataModule(batch_size=32, train_subset=65)
    sizes = [len(y) for _, y in dm.train_dataloader()]
    assert sizes == [32, 32]


# --- train_subset -----------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 10, 100])
def test_train_subset_keeps_n(n: int) -> None:
    full = splits_of(DigitsDataModule())
    sub = splits_of(DigitsDataModule(train_subset=n))
    assert len(sub["train"]) == n
    assert torch.equal(sub["train"].x, full["train"].x[:n])
    for name in ("val", "test"):  # held-out sets do not shrink
        assert torch.equal(sub[name].x, full[name].x)


def test_train_subset_larger_than_train_keeps_all() -> None:
    full = splits_of(DigitsDataModule())
    sub = splits_of(DigitsDataModule(train_subset=10**6))
    assert torch.equal(sub["train"].x, full["train"].x)


# --- torchvision sets from fake files ---------------------------------------------------------
MNIST_LIKE = [(MNISTDataModule, "MNIST", 0), (FashionMNISTDataModule, "FashionMNIST", 1)]


@pytest.mark.parametrize(("cls", "folder", "seed"), MNIST_LIKE)
def test_mnist_like_reads_idx_files(tmp_path: Path, cls: type, folder: str, seed: int) -> None:
    write_mnist(tmp_path, folder=folder, n_train=120, n_test=40, seed=seed)
    dm = cls(root=str(tmp_path), batch_size=16)
    s = splits_of(dm)
    assert {k: len(v) for k, v in s.items()} == {"train": 108, "val": 12, "test": 40}
    for split in s.values():
        assert split.x.dtype == torch.uint8
        assert split.x.shape[1:] == (1, 28, 28)
        assert split.y.dtype == torch.long

    test_x, test_y = mnist_arrays(40, seed, train=False)
    assert torch.equal(s["test"].x[:, 0], torch.from_numpy(test_x))
    assert s["test"].y.tolist() == test_y.tolist()  # official test split, in file order

    train_x, train_y = mnist_arrays(120, seed, train=True)
    pool_y = torch.cat([s["train"].y, s["val"].y])
    assert torch.bincount(pool_y, minlength=10).tolist() == np.bincount(train_y).tolist()
    assert rows(torch.cat([s["train"].x, s["val"].x])[:, 0]) == rows(torch.from_numpy(train_x))
    # each image still carries its own label
    by_image = {r.tobytes(): int(y) for r, y in zip(train_x, train_y, strict=True)}
    for x, y in zip(s["train"].x[:, 0].numpy(), s["train"].y.tolist(), strict=True):
        assert by_image[x.tobytes()] == y

    assert dm.spec["input_shape"] == [1, 28, 28]
    assert dm.spec["num_classes"] == 10
    assert dm.spec["task"] == "classification"


@pytest.mark.parametrize(("cls", "folder", "seed"), MNIST_LIKE)
def test_mnist_like_transform(tmp_path: Path, cls: type, folder: str, seed: int) -> None:
    write_mnist(tmp_path, folder=folder, seed=seed)
    dm = cls(root=str(tmp_path), batch_size=16)
    x, y = next(iter(dm.train_dataloader()))
    assert x.dtype == torch.uint8
    tx, ty = dm.on_after_batch_transfer((x, y), 0)
    assert tx.dtype == torch.float32 and tx.shape == x.shape
    assert torch.equal(ty, y)
    expected = (x.float() / 255.0 - dm.mean[0]) / dm.std[0]
    assert torch.allclose(tx, expected, atol=1e-6)
    assert tx.min() < 0 < tx.max()

    raw = cls(root=str(tmp_path), normalize=False).transform(x)
    assert raw.dtype == torch.float32
    assert raw.min() >= 0.0 and raw.max() <= 1.0
    assert torch.allclose(raw * 255.0, x.float(), atol=1e-4)


def cifar_chw(arrays: tuple[np.ndarray, list[int]]) -> torch.Tensor:
    return torch.from_numpy(arrays[0]).reshape(-1, 3, 32, 32)


def test_cifar10_reads_pickled_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    skip_cifar_md5(monkeypatch)
    write_cifar10(tmp_path, n_per_batch=20, n_test=40)
    written = cifar10_arrays(n_per_batch=20, n_test=40)
    # a larger share than the default 0.1 keeps every class in this small validation split
    dm = CIFAR10DataModule(root=str(tmp_path), batch_size=16, val_fraction=0.2)
    s = splits_of(dm)
    assert {k: len(v) for k, v in s.items()} == {"train": 80, "val": 20, "test": 40}
    for split in s.values():
        assert split.x.dtype == torch.uint8
        assert split.x.shape[1:] == (3, 32, 32)

    # images come back in channel-first order, identical to the CHW-flattened rows written
    assert torch.equal(s["test"].x, cifar_chw(written["test_batch"]))
    assert s["test"].y.tolist() == written["test_batch"][1]
    train_names = [f"data_batch_{i}" for i in range(1, 6)]
    train_x = torch.cat([cifar_chw(written[n]) for n in train_names])
    train_y = [y for n in train_names for y in written[n][1]]
    label_of = {r: y for r, y in zip((r.numpy().tobytes() for r in train_x), train_y, strict=True)}
    for name in ("train", "val"):
        for x, y in zip(s[name].x, s[name].y.tolist(), strict=True):
            assert label_of[x.numpy().tobytes()] == y
    assert rows(torch.cat([s["train"].x, s["val"].x])) == rows(train_x)

    assert dm.spec["input_shape"] == [3, 32, 32]
    assert dm.spec["num_classes"] == 10

    x = s["test"].x[:8]
    tx = dm.transform(x)
    mean = torch.tensor(dm.mean).view(1, 3, 1, 1)
    std = torch.tensor(dm.std).view(1, 3, 1, 1)
    assert tx.dtype == torch.float32 and tx.shape == (8, 3, 32, 32)
    assert torch.allclose(tx, (x.float() / 255.0 - mean) / std, atol=1e-6)


def test_cifar10_default_val_fraction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    skip_cifar_md5(monkeypatch)
    write_cifar10(tmp_path, n_per_batch=20)  # 100 training images: 10 held out, one per class
    s = splits_of(CIFAR10DataModule(root=str(tmp_path)))
    assert len(s["val"]) == 10
    assert sorted(s["val"].y.tolist()) == list(range(10))


# --- missing files ----------------------------------------------------------------------------
MISSING = [
    (MNISTDataModule, "MNIST/raw"),
    (FashionMNISTDataModule, "FashionMNIST/raw"),
    (CIFAR10DataModule, "cifar-10-batches-py"),
]


def assert_missing_error(dm: TorchvisionDataModule, root: Path, folder: str) -> None:
    with pytest.raises(ZooError) as info:
        dm.setup()
    msg = str(info.value)
    assert folder in msg
    assert str(root.resolve() / folder) in msg
    assert "data.download=true" in msg
    assert "\n" not in msg and "\r" not in msg


@pytest.mark.parametrize(("cls", "folder"), MISSING)
def test_missing_files_raise_zoo_error(tmp_path: Path, cls: type, folder: str) -> None:
    dm = cls(root=str(tmp_path), download=False)
    dm.prepare_data()  # download=False: nothing is fetched (the autouse fixture would fail)
    assert_missing_error(dm, tmp_path, folder)


def test_missing_cifar_with_md5_check_lifted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    skip_cifar_md5(monkeypatch)  # files must still exist
    assert_missing_error(CIFAR10DataModule(root=str(tmp_path)), tmp_path, "cifar-10-batches-py")


def test_fashion_mnist_does_not_read_mnist_folder(tmp_path: Path) -> None:
    write_mnist(tmp_path, folder="MNIST")
    assert_missing_error(FashionMNISTDataModule(root=str(tmp_path)), tmp_path, "FashionMNIST/raw")
    assert len(splits_of(MNISTDataModule(root=str(tmp_path)))["test"]) == 40


def test_cifar_real_md5_check_rejects_fake_files(tmp_path: Path) -> None:
    write_cifar10(tmp_path)  # without skip_cifar_md5: torchvision refuses the fake files
    assert_missing_error(CIFAR10DataModule(root=str(tmp_path)), tmp_path, "cifar-10-batches-py")


def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every torchvision download fail as it does without a network."""

    def fail(url, *args, **kwargs):
        raise URLError(f"[Errno -3] Temporary failure in name resolution ({url})")

    for module in (torchvision.datasets.mnist, torchvision.datasets.cifar):
        monkeypatch.setattr(module, "download_and_extract_archive", fail)


@pytest.mark.parametrize(("cls", "folder"), MISSING)
def test_failed_download_in_setup_is_one_line_zoo_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cls: type, folder: str
) -> None:
    """download=True with no network: one line (MNIST's error lists every mirror on its own line;
    CIFAR10 raises URLError, an OSError), not the advice to add data.download=true."""
    offline(monkeypatch)
    dm = cls(root=str(tmp_path), download=True)
    with pytest.raises(ZooError) as info:
        dm.setup()
    msg = str(info.value)
    assert folder in msg
    assert "\n" not in msg
    assert "add data.download=true" not in msg  # it already is: say the download failed instead


@pytest.mark.parametrize(("cls", "folder"), MISSING)
def test_failed_download_in_prepare_data_is_zoo_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cls: type, folder: str
) -> None:
    """Lightning calls prepare_data() before setup(): a failed download there is a ZooError too."""
    offline(monkeypatch)
    dm = cls(root=str(tmp_path), download=True)
    with pytest.raises(ZooError) as info:
        dm.prepare_data()
    assert folder in str(info.value)
    assert "\n" not in str(info.value)


# --- bad arguments ----------------------------------------------------------------------------
BAD = [
    {"batch_size": 0},
    {"batch_size": -3},
    {"val_fraction": 1.5},
    {"val_fraction": 0.0},
    {"val_fraction": 1.0},
    {"train_subset": 0},
    {"train_subset": -1},
    {"labels_per_class": 0},
    {"num_workers": -1},
]


@pytest.mark.parametrize("kwargs", BAD, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
@pytest.mark.parametrize("cls", [DigitsDataModule, DiabetesDataModule, MNISTDataModule])
def test_a_bad_argument_is_one_line_naming_its_data_key(cls: type, kwargs: dict) -> None:
    """A user's setting: a ZooError (one line, no traceback) naming it as the user writes it."""
    with pytest.raises(ZooError, match=rf"^data\.{next(iter(kwargs))} must be"):
        cls(**kwargs)


def test_a_batch_larger_than_the_training_split_is_clamped_with_a_note(caplog) -> None:
    dm = DigitsDataModule(batch_size=5000)
    with caplog.at_level(logging.WARNING):
        dm.setup()
    assert dm.batch_size == len(dm.splits["train"]) < 5000
    assert (
        f"data.batch_size=5000 is larger than the training split ({dm.batch_size} " in caplog.text
    )
    with pytest.raises(ZooError, match=r"^data\.image_size must be >= 4"):
        DigitsDataModule(image_size=2)


class Pool(TensorDataModule):
    """A pool of examples with these targets (and an official test set, if given)."""

    def __init__(self, y: list, task: str = "classification", test: int = 0, **kwargs) -> None:
        super().__init__(batch_size=1, **kwargs)
        self.y, self.task, self.test = torch.tensor(y), task, test

    def load(self) -> Loaded:
        pool = Split(torch.arange(len(self.y)).float()[:, None], self.y)
        test = Split(torch.zeros(self.test, 1), self.y[: self.test]) if self.test else None
        return Loaded(pool, test=test)


@pytest.mark.parametrize(
    ("y", "kwargs", "expected"),
    [
        # one example per class (an image folder with one image per class): the val split fails
        ([0, 1], {}, "(1 left after the test split): data.val_fraction=0.15"),
        ([0], {}, "(1): data.test_fraction=0.15"),
        ([0.5] * 50, {"task": "regression", "test_fraction": 0.99}, "(50): data.test_fraction"),
        (
            [0, 1, 1],
            {"test": 2, "val_fraction": 0.9},
            "(3 left after the test split): data.val_fraction=0.9",
        ),
    ],
)
def test_too_few_examples_to_split_is_one_line_with_the_counts(y, kwargs, expected) -> None:
    """Not scikit-learn's ValueError ("With n_samples=1, test_size=0.15 ..."): the counts, the
    examples of each class, and the settings that fix it."""
    with pytest.raises(ZooError) as caught:
        Pool(y, **kwargs).setup()
    message = str(caught.value)
    assert message.startswith(f"data: too few examples to split {expected}"), message
    assert message.endswith("add examples, or change data.val_fraction / data.test_fraction")
    assert ("examples per class:" in message) == (kwargs.get("task") != "regression")


def test_a_class_of_one_splits_at_random_with_a_warning(caplog) -> None:
    """Too few of a class to stratify: the random split it always fell back to, now said."""
    y = [0] * 30 + [1] * 9 + [2]
    with caplog.at_level("WARNING", logger="mlzoo.data.base"):
        splits = splits_of(Pool(y))
    assert sorted(torch.cat([s.x for s in splits.values()]).flatten().tolist()) == list(range(40))
    assert "examples per class: 2: 1, 1: 9, 0: 30" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="mlzoo.data.base"):
        splits_of(Pool([0, 1] * 20))  # stratified: no warning
    assert not caplog.text


@pytest.mark.parametrize("frac", [0.0, 1.5, -0.1])
def test_bad_test_fraction_names_data_test_fraction(frac: float) -> None:
    with pytest.raises(ZooError, match=r"^data\.test_fraction must be in \(0, 1\)"):
        DigitsDataModule(test_fraction=frac)


# --- on_device: batches built on the training device ------------------------------------------
def batches(dm: TensorDataModule, stage: str, epoch: int = 0) -> list[tuple[torch.Tensor, ...]]:
    torch.manual_seed(7)  # the run seed EpochSampler and EpochBatches read
    loader = getattr(dm, f"{stage}_dataloader")()
    if hasattr(loader.sampler, "set_epoch"):  # as Lightning does
        loader.sampler.set_epoch(epoch)
    return [(x.clone(), y.clone()) for x, y in loader]


@pytest.mark.parametrize(("batch_size", "subset"), [(64, None), (32, 65), (50, 100)])
def test_on_device_batches_are_the_dataloaders_batches(batch_size: int, subset) -> None:
    """Same examples, same order, same batch sizes (the ragged and the dropped last batch too),
    every epoch and every split: on_device changes where batches are built, not which."""
    kwargs = dict(batch_size=batch_size, train_subset=subset)
    plain, resident = DigitsDataModule(**kwargs), DigitsDataModule(on_device=True, **kwargs)
    for stage, epoch in (("train", 0), ("train", 3), ("val", 0), ("test", 0)):
        a, b = batches(plain, stage, epoch), batches(resident, stage, epoch)
        assert [len(y) for _, y in a] == [len(y) for _, y in b]
        for (xa, ya), (xb, yb) in zip(a, b, strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert batches(resident, "train", 1)[0][0].ne(batches(resident, "train", 2)[0][0]).any()


# the batched augmentations run where the batch is: the CPU here, also the GPU on a GPU machine
DEVICES = [
    "cpu",
    pytest.param(
        "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
    ),
]


@pytest.mark.parametrize("device", DEVICES)
def test_random_shift_is_random_crop_with_zero_padding(device: str) -> None:
    """Each image equals its zero-padded self cropped at some offset in [0, 2p] (torchvision's
    RandomCrop(size, padding=p)); offsets differ between images and repeat with the seed."""
    from mlzoo.data.vision import random_shift

    x = torch.randint(1, 256, (300, 3, 6, 5), dtype=torch.uint8)  # no zeros: the padding shows
    out = random_shift(x.to(device), 2, torch.Generator(device).manual_seed(0)).cpu()
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    offsets = []
    for i in range(len(x)):
        found = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(out[i], padded[i, :, dy : dy + 6, dx : dx + 5])
        ]
        assert len(found) == 1, i
        offsets.append(found[0])
    assert len(set(offsets)) == 25  # every shift in [-2, 2]^2 drawn among 300 images
    x = x.to(device)
    again = random_shift(x, 2, torch.Generator(device).manual_seed(0)).cpu()
    assert torch.equal(out, again)
    assert not torch.equal(out, random_shift(x, 2, torch.Generator(device).manual_seed(1)).cpu())


@pytest.mark.parametrize("device", DEVICES)
def test_random_hflip_flips_about_half_the_images(device: str) -> None:
    from mlzoo.data.vision import random_hflip

    x = torch.randn(400, 3, 4, 4)
    out = random_hflip(x.to(device), torch.Generator(device).manual_seed(0)).cpu()
    same = (out == x).flatten(1).all(1)
    flipped = (out == x.flip(-1)).flatten(1).all(1)
    assert bool((same ^ flipped).all())  # every image one or the other (random images: not both)
    assert 150 < int(flipped.sum()) < 250


def test_on_device_augmentation_is_seeded_per_epoch_and_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CIFAR-10 with augment=true on_device: augmented batches repeat for the same (seed, epoch),
    change with the epoch, and keep the examples' labels and the order of a DataLoader."""
    write_cifar10(tmp_path, n_per_batch=40)
    skip_cifar_md5(monkeypatch)
    kwargs = dict(root=str(tmp_path), batch_size=32)
    resident = CIFAR10DataModule(augment=True, on_device=True, **kwargs)
    a, b = batches(resident, "train", 1), batches(resident, "train", 1)
    assert all(torch.equal(xa, xb) for (xa, _), (xb, _) in zip(a, b, strict=True))
    c = batches(resident, "train", 2)
    assert not torch.equal(a[0][0], c[0][0])
    plain = batches(CIFAR10DataModule(**kwargs), "train", 1)
    assert [y.tolist() for _, y in a] == [y.tolist() for _, y in plain]
    xs = torch.cat([x for x, _ in a])
    assert not torch.equal(xs, torch.cat([x for x, _ in plain]))  # augmented


def test_on_device_needs_no_workers() -> None:
    with pytest.raises(ZooError, match=r"data\.on_device=true .*set data\.num_workers=0"):
        DigitsDataModule(on_device=True, num_workers=2)
