"""data=image_folder: your own images in class folders. A CNN learns drawn shapes; the
train/val/test layout is used as it is; every image concept runs on it; predict reads images
with the checkpoint's preprocessing; bad folders give one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from cli_cases import run_cases
from PIL import Image, ImageDraw

from mlzoo.data.image_folder import ImageFolderDataModule

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
    data = ["model=cnn", "data=image_folder", "data.image_size=16"]
    cases = [
        ([*data, f"data.root={tmp_path / 'empty'}"], "class folder"),
        ([*data, f"data.root={tmp_path / 'one'}"], "one class"),
        ([*data, f"data.root={tmp_path / 'broken'}"], "cannot read the image"),
        ([*data, f"data.root={tmp_path / 'missing'}"], "no folder"),
        ([*data, f"data.root={tmp_path / 'one'}", "data.channels=2"], "channels 1 or 3"),
    ]
    failures = run_cases([("train", a, r) for a, r in cases], tmp_path)
    assert not failures, "\n".join(failures)
    assert not list(tmp_path.glob("logs/runs/*/*")), "a failed run left its folder behind"
