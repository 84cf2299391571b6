"""Small fake data sets in the real on-disk formats torchvision reads; nothing touches the network.

- ``write_mnist(root)``: uncompressed IDX files in ``root/MNIST/raw`` (``folder="FashionMNIST"``
  for Fashion-MNIST), exactly the files torchvision's ``MNIST``/``FashionMNIST`` look for.
- ``write_cifar10(root)``: pickled batches in ``root/cifar-10-batches-py`` as in the published
  archive. torchvision's ``CIFAR10`` checks the md5 sum of every file, which fake files cannot
  match: a test that reads them must call ``skip_cifar_md5(monkeypatch)`` (or use the
  ``no_cifar_md5`` fixture) first.

Images depend on their label (a bright block at a label-dependent position, plus noise), so a
model could learn them; labels cycle through 0..9. The ``*_arrays`` helpers return exactly what the
writers write, so tests can compare what a data module read with what is on disk.
"""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_LABEL_NAMES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]


def labels_for(n: int, offset: int = 0) -> np.ndarray:
    """Labels 0..9 cycling, starting at ``offset % 10``."""
    return ((np.arange(n) + offset) % 10).astype(np.uint8)


def _images(labels: np.ndarray, channels: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """(N, C, size, size) uint8: dim noise plus a bright 6x6 block whose position encodes the label."""
    n = len(labels)
    x = rng.integers(0, 60, size=(n, channels, size, size), dtype=np.int64)
    step = (size - 8) // 3  # 6x6 blocks on a 3x4 grid, 1-pixel margin, no overlap
    for i, label in enumerate(labels):
        row, col = divmod(int(label), 4)
        r, c = 1 + row * step, 1 + col * step
        x[i, :, r : r + 6, c : c + 6] = rng.integers(200, 256, size=(channels, 6, 6))
        if channels > 1:  # colour also carries the label
            x[i, int(label) % channels] //= 2
    return x.astype(np.uint8)


# --- MNIST / Fashion-MNIST (IDX) --------------------------------------------------------------
def mnist_arrays(n: int, seed: int = 0, train: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The (N, 28, 28) uint8 images and (N,) uint8 labels that ``write_mnist`` writes."""
    rng = np.random.default_rng([seed, int(train)])
    y = labels_for(n, offset=0 if train else 3)
    return _images(y, 1, 28, rng)[:, 0], y


def _write_idx(path: Path, array: np.ndarray) -> None:
    """IDX: magic 0x0000080<ndim> (0x08 = unsigned byte), big-endian int32 dims, then the bytes."""
    assert array.dtype == np.uint8 and 1 <= array.ndim <= 3
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array).tobytes())


def write_mnist(
    root: Path, folder: str = "MNIST", n_train: int = 120, n_test: int = 40, seed: int = 0
) -> None:
    """Write ``root/<folder>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`` (uncompressed)."""
    raw = Path(root) / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n, train in (("train", n_train, True), ("t10k", n_test, False)):
        x, y = mnist_arrays(n, seed, train)
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", x)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", y)


# --- CIFAR-10 (pickled batches) ---------------------------------------------------------------
def cifar10_arrays(
    n_per_batch: int = 20, n_test: int = 40, seed: int = 0
) -> dict[str, tuple[np.ndarray, list[int]]]:
    """What ``write_cifar10`` writes: file name -> ((N, 3072) uint8 CHW-flattened, labels)."""
    rng = np.random.default_rng(seed)
    out = {}
    sizes = [(f"data_batch_{i}", n_per_batch) for i in range(1, 6)] + [("test_batch", n_test)]
    for k, (name, n) in enumerate(sizes):
        y = labels_for(n, offset=k)
        x = _images(y, 3, 32, rng).reshape(n, 3 * 32 * 32)  # R plane, G plane, B plane, row-major
        out[name] = (x, [int(v) for v in y])
    return out


def write_cifar10(root: Path, n_per_batch: int = 20, n_test: int = 40, seed: int = 0) -> None:
    """Write ``root/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}``.

    torchvision unpickles with ``encoding="latin1"`` and indexes ``entry["data"]`` and
    ``entry["labels"]`` with str keys: the published files were pickled by Python 2, whose str keys
    load as str that way. (Read with ``encoding="bytes"``, as the CIFAR web page shows, they load
    as b"data"/b"labels"; a Python 3 pickle with bytes keys would NOT be readable by torchvision.)
    So the keys written here are str.
    """
    folder = Path(root) / CIFAR_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for name, (x, y) in cifar10_arrays(n_per_batch, n_test, seed).items():
        batch = {
            "batch_label": f"fake {name}",
            "labels": y,
            "data": x,
            "filenames": [f"fake_{name}_{i}.png" for i in range(len(y))],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
    meta = {"label_names": CIFAR_LABEL_NAMES, "num_cases_per_batch": n_per_batch, "num_vis": 3072}
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)


def skip_cifar_md5(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make torchvision's CIFAR10 accept files whose md5 sums differ from the published ones.

    Two checks must be lifted: ``CIFAR10._check_integrity`` (the batches) and the module-level
    ``torchvision.datasets.cifar.check_integrity`` that ``_load_meta`` calls for batches.meta.
    Both still require the files to exist, so a missing folder is still reported as missing.
    """
    import torchvision.datasets.cifar as cifar

    def exists(fpath, md5=None) -> bool:
        return os.path.isfile(fpath)

    def check(self) -> bool:
        return all(
            exists(os.path.join(self.root, self.base_folder, name))
            for name, _ in self.train_list + self.test_list
        )

    monkeypatch.setattr(cifar, "check_integrity", exists)
    monkeypatch.setattr(cifar.CIFAR10, "_check_integrity", check)


@pytest.fixture
def no_cifar_md5(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixture form of ``skip_cifar_md5`` (import it into a test module to use it)."""
    skip_cifar_md5(monkeypatch)
