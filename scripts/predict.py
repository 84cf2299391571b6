"""Predict with a trained supervised model: one row out per input row.

    python scripts/predict.py logs/runs/mlp-table/<run>/checkpoints/last.ckpt new_rows.csv
    python scripts/predict.py <ckpt> new_rows.parquet -o preds.csv
    python scripts/predict.py logs/runs/cnn-image_folder/<run>/checkpoints/last.ckpt photo.jpg
    python scripts/predict.py <ckpt> more_photos/ -o preds.csv      # every image under it

Inputs: a CSV, TSV or Parquet table for a ``data=table`` run (the feature columns it trained on;
other columns, the target included, are ignored), or an image file or a folder of images for a
``data=image_folder`` run. The preprocessing (column encoding and scaling; grey or RGB, size and
normalisation) comes from the checkpoint, so it equals the training run's; the training data is
not needed.

Output (CSV; to stdout without -o, never over an existing file): ``input`` (the row number, or
the image's path), ``prediction`` (the class name, or the regression value in the target's own
units) and, for a classifier, one ``p_<class>`` column per class (softmax probabilities).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mlzoo.run.targets import add_allow_targets_argument


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("checkpoint", type=Path, help="a .ckpt file in <run>/checkpoints/")
    p.add_argument("inputs", type=Path, help="a .csv, .tsv or .parquet table, an image or a folder")
    p.add_argument("-o", "--out", type=Path, default=None, help="CSV to write (must not exist)")
    p.add_argument("--batch", type=int, default=256, help="inputs per forward pass")
    add_allow_targets_argument(p)
    return p.parse_args(argv)


def restore(ckpt: dict, datamodule, checkpoint: Path, what: str) -> dict:
    """The data module's state saved in the checkpoint, loaded into it; a state that is missing
    or not what the zoo writes is one line naming the checkpoint (and the state's key)."""
    from mlzoo.base.errors import ZooError

    state = ckpt.get(type(datamodule).__qualname__)
    if not state:
        raise ZooError(f"{checkpoint}: holds no {what} (written before this data module saved it?)")
    try:
        datamodule.load_state_dict(state)
    except ZooError as err:
        raise ZooError(f"{checkpoint}: {err}") from None
    return state


def table_inputs(ckpt: dict, datamodule, path: Path, checkpoint: Path):
    """(features tensor, row labels) of a table, encoded by the checkpoint's preprocessing."""
    from mlzoo.base.errors import ZooError
    from mlzoo.data.table import TableDataModule, read_table

    if not isinstance(datamodule, TableDataModule):
        raise ZooError(
            f"{path.name}: a table predicts with a data=table run; this one trained on "
            f"{type(datamodule).__name__}"
        )
    restore(ckpt, datamodule, checkpoint, "table preprocessing")
    frame = read_table(path, "inputs")
    return datamodule.preprocessor.transform(frame), list(range(len(frame)))


def image_inputs(ckpt: dict, datamodule, path: Path, checkpoint: Path):
    """(images as the network takes them, their paths) of an image file or a folder's images."""
    from torchvision.datasets.folder import IMG_EXTENSIONS

    from mlzoo.base.errors import ZooError
    from mlzoo.data.image_folder import ImageFolderDataModule, read_images

    if not isinstance(datamodule, ImageFolderDataModule):
        raise ZooError(
            f"{path.name}: images predict with a data=image_folder run; this one trained on "
            f"{type(datamodule).__name__}"
        )
    restore(ckpt, datamodule, checkpoint, "image preprocessing (class names, mean and std)")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMG_EXTENSIONS)
        if not files:
            raise ZooError(f"inputs: no image in {path}")
    elif path.is_file():
        files = [path]
    else:
        raise ZooError(f"inputs: no file or folder {path}")
    x = read_images(files, datamodule.image_size, datamodule.channels)
    return datamodule.transform(x), [str(f) for f in files]


def check_fit(model, datamodule, x, checkpoint: Path) -> None:
    """The inputs the data module's saved state makes, and its task and classes, fit the
    network (the checkpoint's weights): else one line naming the checkpoint."""
    from mlzoo.base.errors import ZooError

    where = type(datamodule).__qualname__
    shape = model.hparams.get("input_shape")
    if shape is not None and tuple(x.shape[1:]) != tuple(int(d) for d in shape):
        raise ZooError(
            f"{checkpoint}: its {where} state encodes inputs of shape {list(x.shape[1:])}, the "
            f"network takes {list(shape)}: the checkpoint's parts do not match"
        )
    task = getattr(datamodule, "task", model.task)
    if task != model.task:
        raise ZooError(
            f"{checkpoint}: its {where}.task is {task}, the network's {model.task}: the "
            "checkpoint's parts do not match"
        )
    names = list(getattr(datamodule, "class_names", None) or [])
    if model.task == "classification" and names and len(names) != model.num_classes:
        raise ZooError(
            f"{checkpoint}: its {where}.class_names has {len(names)} names, the network "
            f"{model.num_classes} outputs: the checkpoint's parts do not match"
        )


def predict_rows(model, x, class_names: list[str], batch: int) -> list[dict]:
    import torch

    rows = []
    with torch.no_grad():
        out = torch.cat([model(x[i : i + batch]) for i in range(0, len(x), batch)])
    if model.task == "classification":
        probs = out.softmax(dim=-1)
        names = class_names or [str(i) for i in range(probs.shape[1])]
        for p in probs:
            row = {"prediction": names[int(p.argmax())]}
            row.update({f"p_{n}": f"{float(v):.6g}" for n, v in zip(names, p, strict=True)})
            rows.append(row)
    else:
        values = out.reshape(len(x), -1) * model.target_std + model.target_mean
        for v in values:
            rows.append(
                {"prediction": f"{float(v[0]):.6g}"}
                if len(v) == 1
                else {f"prediction_{j}": f"{float(u):.6g}" for j, u in enumerate(v)}
            )
    return rows


def write_rows(out, rows: list[dict]) -> None:
    import csv

    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from mlzoo.base.errors import ZooError, fault
    from mlzoo.run.files import check_output

    try:
        if args.out is not None:  # before any work: a new file in a writable folder
            check_output(args.out, "-o")
        if args.batch < 1:
            raise ZooError("--batch must be >= 1")
        from mlzoo.base.supervised import SupervisedModule
        from mlzoo.run.checkpoint import read_checkpoint  # (torch: seconds)
        from mlzoo.run.load import load_checkpoint

        model, datamodule, _ = load_checkpoint(args.checkpoint, allow_targets=args.allow_targets)
        if not isinstance(model, SupervisedModule):
            raise ZooError(
                f"{type(model).__name__} is not a supervised model (predict takes MLP, CNN, "
                "RNN and transfer runs)"
            )
        ckpt = read_checkpoint(args.checkpoint)
        tables = (".csv", ".tsv", ".parquet")
        read = table_inputs if args.inputs.suffix.lower() in tables else image_inputs
        x, labels = read(ckpt, datamodule, args.inputs, args.checkpoint)
        check_fit(model, datamodule, x, args.checkpoint)
        rows = predict_rows(model, x, getattr(datamodule, "class_names", []), args.batch)
        rows = [{"input": label, **row} for label, row in zip(labels, rows, strict=True)]
        if args.out is None:
            write_rows(sys.stdout, rows)
        else:
            try:
                out = open(args.out, "x", newline="")  # noqa: SIM115
            except OSError as err:  # it appeared, or its folder changed, since the check
                raise fault(err, args.out, "write") from None
            try:
                with out:
                    write_rows(out, rows)
            except OSError as err:  # no space, ...: no half-written file stays
                args.out.unlink(missing_ok=True)
                raise fault(err, args.out, "write") from None
        if args.out:
            print(f"{len(rows)} predictions -> {args.out}", file=sys.stderr)
        return 0
    except ZooError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
