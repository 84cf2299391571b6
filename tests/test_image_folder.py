"""data=image_folder: your own images in class folders. A CNN learns drawn shapes; the
train/val/test layout is used as it is; every image concept runs on it; predict reads images
with the checkpoint's preprocessing; bad folders give one line."""

from __future__ import annotations

import json
import logging
import os
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from cli_cases import run_cases
from PIL import Image, ImageDraw

from mlzoo.base.errors import ZooError
from mlzoo.data.image_folder import ImageFolderDataModule, read_images

from conftest import load_script, run_training

SHAPES = ("circle", "cross", "square")


def draw(shape: str, size: int, rng: np.random.Generator, grey: bool) -> Image.Image:
    """A shape at a random place and scale, in a random colour, on a noisy background."""
    background = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
    image = Image.fromarray(background)
    pen = ImageDraw.Draw(image)
    r = int(rng.integers(size // 5, size // 3))
    cx, cy = (int(v) for v in rng.integers(r, size - r, 2))
    colour = tuple(int(v) for v in rng.integers(150, 256, 3))
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == "circle":
        pen.ellipse(box, outline=colour, width=2)
    elif shape == "square":
        pen.rectangle(box, outline=colour, width=2)
    else:
        pen.line((cx - r, cy - r, cx + r, cy + r), fill=colour, width=2)
        pen.line((cx - r, cy + r, cx + r, cy - r), fill=colour, width=2)
    return image.convert("L") if grey else image


def shapes_folder(root: Path, per_class: int = 60, seed: int = 0) -> Path:
    """root/<shape>/*.png|jpg: mixed sizes (24 and 40 pixels), grey and RGB, PNG and JPEG."""
    rng = np.random.default_rng(seed)
    for shape in SHAPES:
        (root / shape).mkdir(parents=True)
        for i in range(per_class):
            image = draw(shape, (24, 40)[i % 2], rng, grey=i % 3 == 0)
            image.save(root / shape / f"{i}.{'png' if i % 4 else 'jpg'}")
    return root


def test_a_cnn_learns_shapes_from_a_folder_and_predict_reads_images(tmp_path: Path, capsys) -> None:
    root = shapes_folder(tmp_path / "shapes", per_class=120)
    data = ["data=image_folder", f"data.root={root}", "data.image_size=24"]
    summary = run_training(["model=cnn", *data, "trainer.max_epochs=25"], tmp_path / "logs")
    assert summary["metrics"]["test/acc"] >= 0.9, summary["metrics"]  # chance: 1/3
    ckpt = summary["last_checkpoint"]
    state = torch.load(ckpt, weights_only=True)["ImageFolderDataModule"]
    assert state["class_names"] == list(SHAPES) and len(state["mean"]) == 3
    new = tmp_path / "new"
    new.mkdir()
    rng = np.random.default_rng(99)
    for shape in SHAPES:
        for i in range(4):
            draw(shape, 32, rng, grey=False).save(new / f"{shape}{i}.png")
    out = tmp_path / "preds.csv"
    predict = load_script("predict")
    assert predict.main([ckpt, str(new), "-o", str(out)]) == 0
    preds = pd.read_csv(out)
    truth = [Path(p).stem.rstrip("0123456789") for p in preds["input"]]
    assert len(preds) == 12 and (preds["prediction"] == truth).mean() >= 0.75
    assert list(preds.columns) == ["input", "prediction", *[f"p_{s}" for s in SHAPES]]
    assert predict.main([ckpt, str(new / "cross0.png")]) == 0
    assert "cross0.png" in capsys.readouterr().out
    assert predict.main([ckpt, str(tmp_path / "nothing")]) == 1
    assert "no file or folder" in capsys.readouterr().err


def test_train_val_test_folders_are_used_as_they_are(tmp_path: Path) -> None:
    for split, n in (("train", 20), ("val", 5), ("test", 7)):
        shapes_folder(tmp_path / "d" / split, per_class=n, seed=len(split))
    dm = ImageFolderDataModule(str(tmp_path / "d"), image_size=16, channels=1, batch_size=8)
    dm.setup()
    assert [len(dm.splits[s]) for s in ("train", "val", "test")] == [60, 15, 21]
    assert (
        dm.splits["train"].x.shape[1:] == (1, 16, 16) and dm.splits["train"].x.dtype == torch.uint8
    )
    x = dm.transform(dm.splits["train"].x)  # standardised with the training images' own statistics
    assert float(x.mean()) == pytest.approx(0.0, abs=1e-4) and float(x.std()) == pytest.approx(
        1, abs=1e-3
    )
    imagenet = ImageFolderDataModule(str(tmp_path / "d"), normalize="imagenet", batch_size=8)
    imagenet.setup()
    assert imagenet.mean == (0.485, 0.456, 0.406)


@pytest.mark.parametrize(
    "overrides",
    [
        ["model=autoencoder"],
        ["model=vae", "callbacks.sample_quality.num_samples=16"],
        ["model=dcgan", "callbacks.sample_quality.num_samples=16"],
        ["model=ddpm", "callbacks.sample_quality.num_samples=16"],
        ["model=simclr"],
        ["experiment=transfer_imagenet", "model.mode=linear"],
    ],
    ids=lambda o: o[0].split("=")[1],
)
def test_the_image_concepts_run_on_a_folder(overrides: list[str], tmp_path: Path) -> None:
    root = shapes_folder(tmp_path / "shapes", per_class=20)
    data = ["data=image_folder", f"data.root={root}", "data.image_size=16", "data.batch_size=16"]
    summary = run_training([*overrides, *data, "trainer=debug", "logger=none"], tmp_path / "logs")
    assert summary["metrics"] and all(np.isfinite(v) for v in summary["metrics"].values())


def test_bad_image_folders_give_one_line_and_no_run_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    shapes_folder(tmp_path / "one", per_class=10)
    for shape in SHAPES[1:]:
        for f in (tmp_path / "one" / shape).iterdir():
            f.unlink()
        (tmp_path / "one" / shape).rmdir()
    shapes_folder(tmp_path / "broken", per_class=10)
    (tmp_path / "broken" / "circle" / "bad.png").write_bytes(b"not a png")
    shapes_folder(tmp_path / "bomb", per_class=10)
    png_header(tmp_path / "bomb" / "square" / "huge.png", 20000, 20000)
    data = ["model=cnn", "data=image_folder", "data.image_size=16"]
    big = [*data, f"data.root={tmp_path / 'broken'}"]
    cases = [
        ([*data, f"data.root={tmp_path / 'empty'}"], "class folder"),
        ([*data, f"data.root={tmp_path / 'one'}"], "one class"),
        ([*data, f"data.root={tmp_path / 'broken'}"], "cannot read the image"),
        ([*data, f"data.root={tmp_path / 'missing'}"], "no folder"),
        ([*data, f"data.root={tmp_path / 'one'}", "data.channels=2"], "channels 1 or 3"),
        ([*data, f"data.root={tmp_path / 'bomb'}"], "huge.png: over the limit"),
        ([*big, "data.max_pixels=1000"], "40x40 = 1,600 pixels is over the limit of 1,000"),
        ([*big, "data.image_size=100000"], "data.image_size must be an integer in [4, 1024]"),
    ]
    failures = run_cases([("train", a, r) for a, r in cases], tmp_path)
    assert not failures, "\n".join(failures)
    assert not list(tmp_path.glob("logs/runs/*/*")), "a failed run left its folder behind"


def png_header(path: Path, width: int, height: int) -> Path:
    """A PNG file that claims width x height pixels: its header only (no pixel data), so a
    reader that decodes it fails, one that checks the size first refuses it at once."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"")[:8])
    return path


def finishes(fn, seconds: float = 60.0):
    """fn()'s result, or a test failure (not a hang) if it has not returned within ``seconds``."""
    result: dict = {}

    def run() -> None:
        try:
            result["value"] = fn()
        except BaseException as err:  # re-raised in the test's thread
            result["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still reading after {seconds:.0f} s"
    if "error" in result:
        raise result["error"]
    return result["value"]


def loaded(root: Path, **kwargs) -> ImageFolderDataModule:
    dm = ImageFolderDataModule(str(root), image_size=8, batch_size=4, **kwargs)
    dm.setup()
    return dm


def test_symlink_loops_in_class_folders_are_not_followed(tmp_path: Path, caplog) -> None:
    root = shapes_folder(tmp_path / "shapes", per_class=6)
    (root / "cross" / "again").symlink_to(".")  # a loop onto itself
    (root / "circle" / "back").symlink_to("..")  # back into the root: every class again
    (root / "square" / "sub").mkdir()  # a real subfolder is still read
    Image.new("RGB", (10, 10)).save(root / "square" / "sub" / "extra.png")
    with caplog.at_level(logging.WARNING, logger="mlzoo"):
        dm = finishes(lambda: loaded(root))
    assert sum(len(s) for s in dm.splits.values()) == 3 * 6 + 1  # each real image once
    assert dm.class_names == list(SHAPES)
    assert "skipped 2 entries" in caplog.text and "symlinked folder" in caplog.text


def test_fifos_and_other_non_regular_files_are_skipped_never_opened(tmp_path: Path, caplog) -> None:
    root = shapes_folder(tmp_path / "shapes", per_class=6)
    os.mkfifo(root / "circle" / "pipe.png")  # opening it would wait for a writer forever
    (root / "cross" / "link.png").symlink_to(root / "circle" / "pipe.png")
    (root / "square" / "gone.png").symlink_to(root / "nowhere.png")
    with caplog.at_level(logging.WARNING, logger="mlzoo"):
        dm = finishes(lambda: loaded(root))
    assert sum(len(s) for s in dm.splits.values()) == 3 * 6
    assert "skipped 3 entries" in caplog.text and "pipe.png (not a regular file)" in caplog.text
    # predict reads the files it is given with read_images: a FIFO is refused, not opened
    with pytest.raises(ZooError, match=r"link\.png is not a regular file"):
        finishes(lambda: read_images([root / "cross" / "link.png"], 8, 3))


def test_images_over_the_pixel_limit_are_refused_from_their_header(tmp_path: Path) -> None:
    root = shapes_folder(tmp_path / "shapes", per_class=4)  # 24x24 and 40x40 images
    with pytest.raises(ZooError, match=r"40x40 = 1,600 pixels is over the limit of 1,000 \(data"):
        loaded(root, max_pixels=1000)
    assert len(loaded(root, max_pixels=1600).splits["train"]) > 0
    # Headers only: decoding any of these would fail (no pixel data), so the refusal is the check
    bomb = png_header(tmp_path / "bomb.png", 20000, 20000)  # over twice Pillow's own limit
    with pytest.raises(ZooError, match=r"bomb\.png: over the limit of 89,478,485 pixels"):
        read_images([bomb], 8, 3)
    warned = png_header(tmp_path / "warned.png", 10000, 10000)  # between Pillow's two limits
    with pytest.raises(ZooError, match=r"warned\.png: over the limit"):
        read_images([warned], 8, 3)
    with pytest.raises(ZooError, match=r"warned\.png: over the limit of 99,999,999 pixels"):
        read_images([warned], 8, 3, max_pixels=99_999_999)  # over Pillow's: ours decides


@pytest.mark.parametrize(
    ("key", "value"), [("image_size", 100000), ("image_size", 0), ("max_pixels", 0)]
)
def test_image_size_and_max_pixels_are_bounded(tmp_path: Path, key: str, value: int) -> None:
    with pytest.raises(ZooError, match=f"data.{key} must be an integer"):
        ImageFolderDataModule(str(tmp_path), batch_size=4, **{key: value})


def test_predict_checks_the_checkpoints_image_state(tmp_path: Path, capsys) -> None:
    """The ImageFolderDataModule state in a checkpoint is checked when loaded (a mean for one
    channel of three, an image size or channels the run's config does not say, a string were
    used as they were, silently) and against the network (two class names for three outputs
    was zip()'s ValueError): one line naming the checkpoint and the key."""
    root = shapes_folder(tmp_path / "shapes", per_class=8)
    data = ["data=image_folder", f"data.root={root}", "data.image_size=8", "data.batch_size=8"]
    summary = run_training(["model=cnn", *data, "trainer=debug"], tmp_path / "logs")
    last = Path(summary["last_checkpoint"])
    ckpt = torch.load(last, weights_only=True)
    where = "ImageFolderDataModule"
    cases = [
        ({"mean": [0.5]}, f"{where}.mean: [0.5] is not 3 number(s)"),
        ({"std": [0.2, 0.2, -1.0]}, f"{where}.std[2]: -1.0 is not a positive"),
        ({"mean": ["a", 0.0, 0.0]}, f"{where}.mean[0]: 'a' is not a finite number"),
        ({"image_size": 100_000}, f"{where}.image_size: the checkpoint's 100000 is not data."),
        ({"channels": 5}, f"{where}.channels: the checkpoint's 5 is not data.channels=3"),
        ({"normalize": 1}, f"{where}.normalize: the checkpoint's 1 is not"),
        ({"class_names": ["circle"]}, f"{where}.class_names: 'circle' are not two"),
        ({"class_names": "circle"}, f"{where}.class_names: 'circle' is not a list of names"),
        ({"evil": 1}, f"{where}: unknown key(s) 'evil'"),
        ({"class_names": ["circle", "cross"]}, "class_names has 2 names, the network 3 outputs"),
    ]
    image = next(root.glob("circle/*.png"))
    assert load_script("predict").main([str(last), str(image)]) == 0  # as written: fine
    for i, (change, message) in enumerate([*cases, ("a string", f"{where}: a str, not a")]):
        edited = dict(ckpt)
        edited[where] = {**ckpt[where], **change} if isinstance(change, dict) else change
        path = last.parent / f"edited{i}.ckpt"
        torch.save(edited, path)
        capsys.readouterr()
        assert load_script("predict").main([str(path), str(image)]) == 1, message
        err = capsys.readouterr().err
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {path}: "), err
        assert message in lines[0], (message, err)
    edited = {k: v for k, v in ckpt.items() if k != where}
    torch.save(edited, last.parent / "none.ckpt")
    assert load_script("predict").main([str(last.parent / "none.ckpt"), str(image)]) == 1
    assert "holds no image preprocessing" in capsys.readouterr().err


@pytest.mark.slow
def test_a_small_folder_trains_with_the_defaults_and_the_batch_size_clamps(tmp_path: Path) -> None:
    """60 images (20 a class) with every default through the command line: data.batch_size=64
    is more than the training split, so the run uses the whole split as its batch, and says so
    in one line (a sweep over batch sizes shows which values ran as another)."""
    import subprocess
    import sys

    from conftest import ROOT

    root = shapes_folder(tmp_path / "photos", per_class=20)
    args = ["data=image_folder", f"data.root={root}", "trainer.max_epochs=1", "logger=none"]
    done = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    said = done.stdout + done.stderr
    note = "data.batch_size=64 is larger than the training split (43 examples): using batch_size=43"
    assert said.count(note) == 1, said[-3000:]
    (summary,) = (tmp_path / "logs").glob("runs/*/*/summary.json")
    assert "test/acc" in json.loads(summary.read_text())["metrics"]
