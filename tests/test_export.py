"""scripts/export.py --format onnx|torchscript: every exportable network, run by onnxruntime and
by torch.jit.load, gives the PyTorch module's outputs within 1e-4 on a batch size it was not
traced with; an exported RL policy plays its environment as the checkpoint does; the exporter
writes what a model declares (exported_networks, exported_facts, exported_hf), for a concept it
has never heard of too."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mlzoo.base.errors import ZooError
from mlzoo.base.module import Exported, ZooModule
from mlzoo.run.export import export, exported
from mlzoo.run.load import load_checkpoint

from conftest import load_script, run_training

RUNS = {
    "mlp": ["model=mlp"],
    "cnn": ["model=cnn"],
    "rnn": ["model=rnn"],
    "transfer": ["experiment=transfer_imagenet", "model.mode=lora"],  # Lite0 with LoRA layers
    "autoencoder": ["model=autoencoder"],
    "vae": ["model=vae", "callbacks.sample_quality.num_samples=16"],
    "ddpm": ["model=ddpm", "data.image_size=16", "callbacks.sample_quality.num_samples=16"],
    "dqn": ["model=dqn"],
    "ppo": ["model=ppo"],
}


def outputs(result) -> list[np.ndarray]:
    items = result if isinstance(result, list | tuple) else [result]
    return [np.asarray(r.detach() if isinstance(r, torch.Tensor) else r) for r in items]


@pytest.mark.parametrize("concept", list(RUNS))
def test_exported_networks_match_pytorch(concept: str, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    export = load_script("export")
    summary = run_training([*RUNS[concept], "trainer=debug", "logger=none"], tmp_path / "logs")
    ckpt = summary["last_checkpoint"]
    model, _, _ = load_checkpoint(ckpt)
    for fmt in ("onnx", "torchscript"):
        out = tmp_path / fmt
        assert export.main([ckpt, "--format", fmt, "-o", str(out)]) == 0
        manifest = json.loads((out / "export.json").read_text())
        for name, (module, inputs, in_names, _) in model.exported_networks().items():
            big = tuple(torch.cat([x, x, x[:1]]) for x in inputs)  # batch 5: traced with 2
            with torch.no_grad():
                want = outputs(module.eval()(*big))
                if name == "net":  # the exported network is the model (LoRA folded in)
                    np.testing.assert_allclose(want[0], model(*big).numpy(), atol=1e-4)
            file = out / manifest["networks"][name]["file"]
            if fmt == "onnx":
                session = ort.InferenceSession(str(file), providers=["CPUExecutionProvider"])
                feed = {n: x.numpy() for n, x in zip(in_names, big, strict=True)}
                got = session.run(None, feed)
            else:
                got = outputs(torch.jit.load(str(file))(*big))
            assert len(got) == len(want), (concept, name, fmt)
            for g, w in zip(got, want, strict=True):
                np.testing.assert_allclose(g, w, atol=1e-4, rtol=1e-4, err_msg=f"{name} {fmt}")


def test_an_exported_policy_plays_as_the_checkpoint_does(tmp_path: Path) -> None:
    """PPO on CartPole, greedy: the ONNX policy's episode returns equal the checkpoint's."""
    ort = pytest.importorskip("onnxruntime")
    from mlzoo.rl.episodes import run_episodes

    export = load_script("export")
    overrides = ["model=ppo", "trainer=debug", "model.normalize_obs=true", "logger=none"]
    summary = run_training(overrides, tmp_path / "logs")
    ckpt = summary["last_checkpoint"]
    assert export.main([ckpt, "--format", "onnx", "-o", str(tmp_path / "onnx")]) == 0
    model, envs, _ = load_checkpoint(ckpt)
    session = ort.InferenceSession(str(tmp_path / "onnx" / "policy.onnx"))

    def onnx_act(obs: torch.Tensor):
        return int(session.run(None, {"obs": obs.numpy()})[0][0])

    states = torch.randn(256, 4, generator=torch.Generator().manual_seed(0)) * 2
    exported = session.run(None, {"obs": states.numpy()})[0]
    assert (exported == model.act(states).numpy()).all()  # normalised as the agent does
    mine = run_episodes(envs.make_env(0), onnx_act, 3, seed=0)
    theirs = run_episodes(envs.make_env(0), lambda o: int(model.act(o)[0]), 3, seed=0)
    assert mine == theirs


def test_export_refuses_what_it_cannot_write(tmp_path: Path, capsys) -> None:
    export = load_script("export")
    summary = run_training(["model=simclr", "trainer=debug", "logger=none"], tmp_path / "logs")
    mlp = run_training(["model=mlp", "trainer=debug", "logger=none"], tmp_path / "logs2")
    (tmp_path / "taken").mkdir()
    cases = [
        ([summary["last_checkpoint"], "--format", "onnx"], "no exportable network"),
        ([summary["last_checkpoint"], "--format", "hf"], "no Hugging Face policy"),
        ([mlp["last_checkpoint"], "--format", "onnx", "-o", str(tmp_path / "taken")], "exists"),
        ([str(tmp_path / "missing.ckpt"), "--format", "torchscript"], "no checkpoint file"),
    ]
    for args, message in cases:
        assert export.main(args) == 1
        err = capsys.readouterr().err
        assert err.startswith("error:") and message in err, (args, err)
    assert not (Path(summary["run_dir"]) / "export").exists()
    assert not list((tmp_path / "taken").iterdir())


class Scaler(ZooModule):
    """A concept the exporter has never heard of: one network and one fact."""

    def __init__(self) -> None:
        super().__init__(torch.optim.SGD)
        self.lin = torch.nn.Linear(3, 2)

    def exported_networks(self) -> dict[str, Exported]:
        return {"scaler": Exported(self.lin, (torch.rand(2, 3),), ["x"], ["y"])}

    def exported_facts(self) -> dict:
        return {"scale": 2.0}


class FakeHF:
    """Stands for a transformers model or tokenizer: records the dtype and the folder."""

    dtype = None

    def to(self, dtype):
        self.dtype = dtype
        return self

    def save_pretrained(self, out: Path) -> None:
        (out / f"{type(self).__name__}-{id(self)}").write_text(str(self.dtype))


class Chat(ZooModule):
    def __init__(self) -> None:
        super().__init__(torch.optim.SGD)
        self.hf, self.tok = FakeHF(), FakeHF()

    def exported_hf(self):
        return self.hf, self.tok


def test_the_exporter_writes_what_a_model_declares(tmp_path: Path) -> None:
    model = Scaler().eval()
    export(model, tmp_path, "torchscript")
    manifest = json.loads((tmp_path / "export.json").read_text())
    assert manifest == {
        "format": "torchscript",
        "networks": {
            "scaler": {
                "file": "scaler.pt",
                "inputs": {"x": [[3], "torch.float32"]},
                "outputs": ["y"],
            }
        },
        "scale": 2.0,
    }
    x = torch.rand(5, 3)
    torch.testing.assert_close(torch.jit.load(str(tmp_path / "scaler.pt"))(x), model.lin(x))

    chat = Chat()
    (tmp_path / "hf").mkdir()
    export(chat, tmp_path / "hf", "hf", "bfloat16")
    assert chat.hf.dtype == torch.bfloat16
    assert sorted(f.read_text() for f in (tmp_path / "hf").iterdir()) == ["None", "torch.bfloat16"]


def test_a_model_that_exports_nothing_in_a_format_says_what_it_does_export() -> None:
    cases = [
        (Scaler(), "hf", "Scaler has no Hugging Face policy or model to export; it exports "
         "--format onnx or torchscript (scaler)"),
        (Chat(), "onnx", "--format onnx: Chat has no exportable network; it exports --format hf"),
        (ZooModule(torch.optim.SGD), "torchscript", "ZooModule has no exportable network; it "
         "exports nothing"),
    ]  # fmt: skip
    for model, fmt, message in cases:
        with pytest.raises(ZooError) as caught:
            exported(model, fmt)
        assert message in str(caught.value) and "\n" not in str(caught.value)


# --- export.json's preprocessing: a raw row or image file, encoded from the JSON alone -------


def encode_row(row: dict[str, str], spec: dict) -> np.ndarray:
    """A table row as read from the CSV file (text cells) -> the network's x, from export.json's
    ``preprocessing`` alone (numpy, no pandas, no zoo)."""
    assert spec["format"] == 1 and spec["kind"] == "table"
    na = set(spec["missing"]["na_strings"])
    parts = []
    for column in spec["columns"]:
        cell = row[column["name"]]
        if column["kind"] == "numeric":  # missing: the training mean, 0 after scaling
            parts.append([0.0 if cell in na else (float(cell) - column["mean"]) / column["std"]])
        else:  # one-hot; an unknown category or a missing cell: all zeros
            parts.append([float(cell not in na and cell == c) for c in column["categories"]])
    x = np.concatenate(parts).astype(spec["dtype"])
    assert x.shape == (spec["width"],)
    return x


def encode_image(path: Path, spec: dict) -> np.ndarray:
    """An image file -> the network's x (C, H, W), from export.json's ``preprocessing`` alone
    (PIL and numpy)."""
    from PIL import Image

    assert spec["format"] == 1 and spec["kind"] == "image" and spec["layout"] == "NCHW"
    assert spec["resize"] == {
        "library": "PIL",
        "method": "bilinear",
        "keep_aspect_ratio": False,
        "crop": None,
        "exif_transpose": False,
    }
    height, width = spec["image_size"]
    with Image.open(path) as image:
        image = image.convert(spec["mode"]).resize((width, height), Image.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.float32).reshape(height, width, spec["channels"])
    x = (pixels / spec["scale"] - np.float32(spec["mean"])) / np.float32(spec["std"])
    return x.transpose(2, 0, 1).astype(spec["dtype"])


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def onnx_answers(folder: Path, x: np.ndarray) -> tuple[list[str], np.ndarray]:
    """(class names, probabilities) of a classifier's export folder for inputs x."""
    ort = pytest.importorskip("onnxruntime")
    manifest = json.loads((folder / "export.json").read_text())
    spec = manifest["preprocessing"]
    session = ort.InferenceSession(str(folder / manifest["networks"]["net"]["file"]))
    (logits,) = session.run(None, {spec["input"]: x})
    probs = softmax(logits)
    names = spec["target"]["class_names"]
    return [names[i] for i in probs.argmax(axis=1)], probs


def test_a_raw_csv_row_through_export_json_and_onnxruntime_answers_as_predict(
    tmp_path: Path,
) -> None:
    """A table run exported as ONNX: the rows of a CSV file, read as text (a categorical
    column, an unseen category, empty and NA cells included) and encoded with numpy from
    export.json alone, give predict.py's classes and probabilities."""
    import csv

    import pandas as pd

    pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(0)
    n = 240
    colour = rng.choice(["red", "green", "blue"], n)
    age = rng.normal(40, 10, n).round(1)
    fruit = np.where(colour == "red", "apple", np.where(age > 40, "pear", "plum"))
    frame = pd.DataFrame({"age": age, "colour": colour, "size": rng.integers(0, 5, n)})
    frame.assign(fruit=fruit).to_csv(tmp_path / "train.csv", index=False)
    table = ["data=table", f"data.path={tmp_path / 'train.csv'}", "data.target=fruit"]
    summary = run_training(["model=mlp", *table, "trainer.max_epochs=3"], tmp_path / "logs")
    ckpt = summary["last_checkpoint"]
    export = load_script("export")
    assert export.main([ckpt, "--format", "onnx", "-o", str(tmp_path / "onnx")]) == 0
    rows = tmp_path / "rows.csv"
    rows.write_text(
        "size,colour,age,note\n"  # another column order, and a column the model never saw
        "3,red,52.5,x\n1,blue,33.0,y\n0,green,47.25,\n4,purple,40,z\n2,,38,\n,blue,NA,w\n"
        + "".join(f"{s},{c},{a},\n" for s, c, a in zip(frame["size"], colour, age, strict=True))
    )
    out = tmp_path / "preds.csv"
    assert load_script("predict").main([ckpt, str(rows), "-o", str(out)]) == 0
    want = pd.read_csv(out)
    spec = json.loads((tmp_path / "onnx" / "export.json").read_text())["preprocessing"]
    with open(rows, newline="") as f:
        raw = list(csv.DictReader(f))  # every cell as the text in the file
    x = np.stack([encode_row(row, spec) for row in raw])
    classes, probs = onnx_answers(tmp_path / "onnx", x)
    assert len(raw) == len(want) == n + 6
    assert classes == list(want["prediction"])
    names = spec["target"]["class_names"]
    assert names == ["apple", "pear", "plum"]
    p_want = want[[f"p_{c}" for c in names]].to_numpy()
    np.testing.assert_allclose(probs, p_want, atol=1e-5)  # predict writes 6 digits


def colour_folder(root: Path, per_class: int = 20) -> Path:
    """root/<colour>/*.png: noisy images of mixed sizes, one colour channel raised per class."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, name in enumerate(("red", "green", "blue")):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 100, (18 + i % 3, 22, 3), dtype=np.uint8)
            pixels[..., c] += 120
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_a_raw_image_file_through_export_json_and_onnxruntime_answers_as_predict(
    tmp_path: Path,
) -> None:
    """An image-folder run exported as ONNX: image files of other sizes and modes (RGBA, grey
    JPEG, palette), read with PIL and encoded with numpy from export.json alone, give
    predict.py's classes and probabilities; TorchScript's export.json says the same."""
    import pandas as pd
    from PIL import Image

    pytest.importorskip("onnxruntime")
    root = colour_folder(tmp_path / "photos")
    data = ["data=image_folder", f"data.root={root}", "data.image_size=16", "data.batch_size=16"]
    summary = run_training(["model=cnn", *data, "trainer.max_epochs=2"], tmp_path / "logs")
    ckpt = summary["last_checkpoint"]
    export = load_script("export")
    for fmt in ("onnx", "torchscript"):
        assert export.main([ckpt, "--format", fmt, "-o", str(tmp_path / fmt)]) == 0
    new = tmp_path / "new"
    new.mkdir()
    rng = np.random.default_rng(1)
    for i, c in enumerate((0, 1, 2, 0, 1, 2)):
        pixels = rng.integers(0, 100, (31 + i, 27, 3), dtype=np.uint8)
        pixels[..., c] += 140
        image = Image.fromarray(pixels)
        if i == 0:
            image.convert("RGBA").save(new / f"{i}.png")
        elif i == 1:
            image.convert("L").save(new / f"{i}.jpg")
        elif i == 2:
            image.convert("P").save(new / f"{i}.png")
        else:
            image.save(new / f"{i}.{'jpg' if i == 4 else 'png'}")
    out = tmp_path / "preds.csv"
    assert load_script("predict").main([ckpt, str(new), "-o", str(out)]) == 0
    want = pd.read_csv(out)
    manifest = json.loads((tmp_path / "onnx" / "export.json").read_text())
    spec = manifest["preprocessing"]
    assert json.loads((tmp_path / "torchscript" / "export.json").read_text())["preprocessing"] == (
        spec
    )
    assert spec["target"]["class_names"] == ["blue", "green", "red"]
    assert spec["channels"] == 3 and spec["image_size"] == [16, 16]
    assert spec["normalize"] is True and len(spec["mean"]) == len(spec["std"]) == 3
    files = [Path(p) for p in want["input"]]
    x = np.stack([encode_image(f, spec) for f in files])
    assert list(x.shape[1:]) == manifest["networks"]["net"]["inputs"]["x"][0]
    classes, probs = onnx_answers(tmp_path / "onnx", x)
    assert len(files) == 6 and classes == list(want["prediction"])
    p_want = want[[f"p_{c}" for c in spec["target"]["class_names"]]].to_numpy()
    np.testing.assert_allclose(probs, p_want, atol=1e-5)


def test_a_regression_tables_description_encodes_as_the_preprocessor_does(tmp_path: Path) -> None:
    """The description is plain JSON; encoding rows from it equals the preprocessor's own
    encoding; a regression's target scale is in it, and comes back from a checkpoint's state."""
    import pandas as pd

    from mlzoo.data.table import NA_STRINGS, TableDataModule

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "x": rng.normal(5, 2, 80),
            "kind": rng.choice(["a", "b", "c"], 80),
            "y": rng.normal(100, 15, 80),
        }
    )
    frame.to_csv(tmp_path / "t.csv", index=False)
    dm = TableDataModule(str(tmp_path / "t.csv"), "y", batch_size=8)
    assert dm.describe_inputs() is None  # before setup
    dm.setup()
    spec = json.loads(json.dumps(dm.describe_inputs()))  # plain JSON
    assert spec["target"] == {
        "name": "y",
        "task": "regression",
        "target_mean": dm.info["target_mean"],
        "target_std": dm.info["target_std"],
    }
    assert [c["name"] for c in spec["columns"]] == ["x", "kind"]
    text = frame.astype(str).to_dict("records")  # cells as text, as a CSV holds them
    x = np.stack([encode_row(row, spec) for row in text])
    np.testing.assert_allclose(x, dm.preprocessor.transform(frame).numpy(), atol=1e-6)
    again = TableDataModule(str(tmp_path / "t.csv"), "y")
    again.load_state_dict(dm.state_dict())  # what a checkpoint restores
    assert again.describe_inputs() == dm.describe_inputs()
    try:  # the strings pandas reads as missing, as written into the description
        from pandas._libs.parsers import STR_NA_VALUES
    except ImportError:
        return
    assert set(NA_STRINGS) == set(STR_NA_VALUES)


def test_torchscript_export_shows_no_deprecation_warning(tmp_path: Path) -> None:
    """torch.jit.trace and torch.jit.save warn that they are deprecated (three FutureWarnings);
    the export shows none of them (the README names the supported path: ONNX)."""
    import subprocess
    import sys

    code = (
        "import sys, torch\n"
        "from pathlib import Path\n"
        "from mlzoo.run.export import export_graphs\n"
        "net = torch.nn.Linear(3, 2)\n"
        "export_graphs({'net': (net, (torch.rand(2, 3),), ['x'], ['y'])}, {}, Path(sys.argv[1]),"
        " 'torchscript')\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "default", "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "net.pt").is_file()
    assert "Warning" not in done.stderr and "deprecated" not in done.stderr, done.stderr


# --- the built-in sets: sklearn's digits and diabetes, the torchvision sets -------------------


def encode_digits(images: np.ndarray, spec: dict) -> np.ndarray:
    """Raw digits (N, 8, 8), values 0..16 as ``load_digits().images`` holds them -> the
    network's x (N, 1, H, W), from export.json's ``preprocessing`` alone (numpy; PIL for a
    resize, as the description names it)."""
    from PIL import Image

    assert spec["format"] == 1 and spec["kind"] == "array" and spec["layout"] == "NCHW"
    assert spec["source"] == "sklearn.datasets.load_digits().images"
    assert list(images.shape[1:]) == spec["raw_shape"] == [8, 8]
    x = np.asarray(images, dtype=np.float32) / np.float32(spec["scale"])
    height, width = spec["image_size"]
    resize = spec["resize"]
    if resize is not None:
        assert resize["method"] == "bilinear" and resize["antialias"] is True
        assert resize["align_corners"] is False and "mode F" in resize["pil"]
        bilinear = Image.Resampling.BILINEAR
        x = np.stack([np.asarray(Image.fromarray(d).resize((width, height), bilinear)) for d in x])
        x = x.clip(*resize["clamp"])
    assert x.shape[1:] == (height, width)
    mean = np.float32(spec["mean"])[:, None, None]
    std = np.float32(spec["std"])[:, None, None]
    return ((x[:, None] - mean) / std).astype(spec["dtype"])


@pytest.mark.parametrize(
    "overrides",
    [["model=mlp"], ["model=cnn"], ["model=cnn", "data.image_size=12"]],
    ids=["mlp", "cnn", "cnn-resized"],
)
def test_a_raw_digit_through_export_json_and_onnxruntime_answers_as_the_model(
    overrides: list[str], tmp_path: Path
) -> None:
    """A digits run exported as ONNX: every digit of load_digits (8x8, 0..16), encoded with
    numpy from export.json alone, is the input the data module makes of it, and onnxruntime
    gives the checkpoint's own classes and probabilities."""
    from sklearn.datasets import load_digits

    pytest.importorskip("onnxruntime")
    summary = run_training([*overrides, "trainer=debug", "logger=none"], tmp_path / "logs")
    ckpt = summary["last_checkpoint"]
    assert load_script("export").main([ckpt, "--format", "onnx", "-o", str(tmp_path / "o")]) == 0
    manifest = json.loads((tmp_path / "o" / "export.json").read_text())
    spec = manifest["preprocessing"]
    assert spec["target"] == {"task": "classification", "class_names": list("0123456789")}
    raw = load_digits().images  # (1797, 8, 8) float64
    x = encode_digits(raw, spec)
    assert list(x.shape[1:]) == manifest["networks"]["net"]["inputs"]["x"][0]
    model, datamodule, _ = load_checkpoint(ckpt)
    mine = datamodule.encode(raw)  # what the data module trains on
    np.testing.assert_allclose(x, mine.numpy(), atol=1e-6, rtol=0)
    datamodule.setup()
    for split in datamodule.splits.values():  # each input of the run's splits is one of them
        same = (split.x[:, None] == mine[None]).flatten(2).all(dim=2)  # (split, raw digit)
        assert same.any(dim=1).all()
    classes, probs = onnx_answers(tmp_path / "o", x)
    with torch.no_grad():
        want = model(mine).softmax(dim=-1).numpy()
    assert classes == [spec["target"]["class_names"][i] for i in want.argmax(axis=1)]
    np.testing.assert_allclose(probs, want, atol=1e-5)


def test_a_raw_diabetes_row_through_export_json_and_onnxruntime_answers_as_the_model(
    tmp_path: Path,
) -> None:
    """A diabetes run exported as ONNX: load_diabetes' rows, encoded with numpy from
    export.json alone, are the rows the run's splits hold, and onnxruntime's value (in the
    target's units, from the description's target scale) is the checkpoint's."""
    from sklearn.datasets import load_diabetes

    ort = pytest.importorskip("onnxruntime")
    run = ["model=mlp", "data=diabetes", "trainer=debug", "logger=none"]
    ckpt = run_training(run, tmp_path / "logs")["last_checkpoint"]
    assert load_script("export").main([ckpt, "--format", "onnx", "-o", str(tmp_path / "o")]) == 0
    manifest = json.loads((tmp_path / "o" / "export.json").read_text())
    spec = manifest["preprocessing"]
    bunch = load_diabetes()
    assert [c["name"] for c in spec["columns"]] == list(bunch.feature_names)
    assert spec["width"] == 10 and spec["target"]["task"] == "regression"
    assert spec["target"]["target_mean"] == pytest.approx(manifest["target_mean"])
    assert spec["target"]["target_std"] == pytest.approx(manifest["target_std"])
    rows = [dict(zip(bunch.feature_names, map(str, r), strict=True)) for r in bunch.data]
    x = np.stack([encode_row(row, {**spec, "missing": {"na_strings": []}}) for row in rows])
    model, datamodule, _ = load_checkpoint(ckpt)
    datamodule.setup()
    held = torch.cat([s.x for s in datamodule.splits.values()]).numpy()  # standardised rows
    gap = np.abs(held[:, None, :] - x[None, :, :]).max(axis=2)
    assert gap.min(axis=1).max() < 1e-5  # every row of the run's splits is an encoded raw row
    session = ort.InferenceSession(str(tmp_path / "o" / manifest["networks"]["net"]["file"]))
    (out,) = session.run(None, {"x": x})
    got = out.reshape(-1) * spec["target"]["target_std"] + spec["target"]["target_mean"]
    with torch.no_grad():
        want = model(torch.from_numpy(held)).reshape(-1) * model.target_std + model.target_mean
    np.testing.assert_allclose(got[gap.argmin(axis=1)], want.numpy(), rtol=1e-5, atol=1e-3)


TORCHVISION_SETS = {  # name: (mode, size, torchvision's class names)
    "MNIST": ("L", 28, [f"{d} - {w}" for d, w in enumerate(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])]),
    "FashionMNIST": ("L", 28, ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                               "Shirt", "Sneaker", "Bag", "Ankle boot"]),
    "CIFAR10": ("RGB", 32, ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                            "horse", "ship", "truck"]),
}  # fmt: skip


@pytest.mark.parametrize("name", list(TORCHVISION_SETS))
def test_a_torchvision_sets_description_encodes_as_its_transform(
    name: str, tmp_path: Path, monkeypatch
) -> None:
    """MNIST, Fashion-MNIST and CIFAR-10 describe their inputs without any file (grey or RGB
    at the set's own size, no resize, [0, 1] then the set's mean and std; torchvision's class
    names); from fake files in the published formats, the raw uint8 images encoded from the
    description alone equal the data module's transform, normalised or not."""
    from mlzoo.data import vision

    from fakedata import skip_cifar_md5, write_cifar10, write_mnist

    mode, size, class_names = TORCHVISION_SETS[name]
    cls = {
        "MNIST": vision.MNISTDataModule,
        "FashionMNIST": vision.FashionMNISTDataModule,
        "CIFAR10": vision.CIFAR10DataModule,
    }[name]
    channels = len(mode)
    for normalize in (True, False):
        dm = cls(root=str(tmp_path / "nothing"), normalize=normalize)
        spec = json.loads(json.dumps(dm.describe_inputs()))  # plain JSON, no file read
        assert not (tmp_path / "nothing").exists()
        assert spec == {
            "format": 1,
            "kind": "image",
            "source": f"torchvision.datasets.{name}",
            "input": "x",
            "mode": mode,
            "channels": channels,
            "image_size": [size, size],
            "resize": None,
            "layout": "NCHW",
            "dtype": "float32",
            "scale": 255.0,
            "value_range": [0.0, 1.0],
            "normalize": normalize,
            "mean": list(cls.mean) if normalize else [0.0] * channels,
            "std": list(cls.std) if normalize else [1.0] * channels,
            "recipe": "x[c] = (pixels[c] / scale - mean[c]) / std[c]",
            "target": {"task": "classification", "class_names": class_names},
        }
    if name == "CIFAR10":
        skip_cifar_md5(monkeypatch)
        write_cifar10(tmp_path)
    else:
        write_mnist(tmp_path, folder=name)
    for normalize in (True, False):
        dm = cls(root=str(tmp_path), normalize=normalize, batch_size=16)
        dm.setup()
        spec = dm.describe_inputs()
        pixels = dm.splits["test"].x  # uint8 (N, C, H, W), as read from the files
        assert list(pixels.shape[1:]) == [spec["channels"], *spec["image_size"]]
        mean = np.float32(spec["mean"])[:, None, None]
        std = np.float32(spec["std"])[:, None, None]
        x = (pixels.numpy().astype(np.float32) / np.float32(spec["scale"]) - mean) / std
        np.testing.assert_allclose(x, dm.transform(pixels).numpy(), atol=1e-6, rtol=0)
