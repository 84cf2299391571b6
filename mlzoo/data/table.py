"""Your own table: a CSV or Parquet file, one row an example, one column the target.

    python train.py model=mlp data=table data.path=houses.csv data.target=price

Preprocessing is fitted on the training split alone (a statistic of the validation or test rows
would leak into training), held by a ``TablePreprocessor`` and saved in every checkpoint (the
data module's ``state_dict``), so that scripts/predict.py encodes new rows exactly as training
did, without the training file:

- numeric columns: standardised, x' = (x - mean_train) / std_train (a constant column: x - mean);
- text / categorical columns: one-hot over the categories seen in the training split (a category
  first seen later encodes as all zeros); a column with more distinct values than
  ``max_categories`` is refused (an id or free text: leave it out with ``data.features``);
- missing values (``missing``): ``error`` (one line naming the columns), ``drop`` (the rows), or
  ``fill`` (numeric: the training mean, i.e. 0 after scaling; categorical: no category, all
  zeros). A row without a target is always dropped unless ``missing=error``.
- infinite values (``inf``, ``-inf``) are refused, whatever ``missing`` says, naming the columns
  and how many rows hold one (an overflow or a sentinel, not a missing value: scaled, one would
  turn the loss into NaN at the first step); make them empty cells for ``missing`` to handle them.
  The same holds for the target, and for the rows scripts/predict.py encodes.
- column names must be distinct (pandas would read a second ``label`` as ``label.1``, and a copy
  of the target would become a feature): a table naming a column twice is refused, and so is
  ``data.features`` naming one twice.
- a checkpoint's ``TableDataModule`` state is checked when loaded (``load_state_dict``): the
  keys, types and shape ``state_dict`` writes, else one line naming the key.
- ``describe_inputs()`` gives the same encoding as plain JSON (column order, mean and std,
  categories, the missing and unknown-category rules, the target's classes or scale):
  scripts/export.py writes it into export.json, so that an exported network is usable alone
  (the format: README, "Using a trained model: predict and export").

The task (``task: auto``): classification when the target is text, boolean, or integers with at
most ``max_classes`` distinct values; otherwise regression (the target standardised for the loss,
metrics reported in its own units). Class names are the target's sorted distinct values.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from mlzoo.base.errors import ZooError, listed, one_line
from mlzoo.base.extras import require
from mlzoo.data.base import (
    Loaded,
    Split,
    TensorDataModule,
    bad_state,
    saved_mapping,
    saved_names,
    saved_number,
)

MISSING = ("error", "drop", "fill")
# The version of the ``preprocessing`` description export.json carries (describe_inputs)
PREPROCESSING_FORMAT = 1
# The text cells pandas' read_csv reads as missing (its default na_values), as predict.py reads
# a CSV or TSV: written into the description so that code without pandas encodes rows alike.
NA_STRINGS = (
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
)  # fmt: skip


def read_table(path: str | Path, option: str = "data.path"):
    """A pandas DataFrame from a .csv, .tsv or .parquet file; one line for anything unreadable."""
    pd = require("pandas", "tables", f"{option}: reading tables")
    if str(path).lower().endswith(".parquet"):
        require("pyarrow.parquet", "tables", f"{option}: a Parquet file", package="pyarrow")

    path = Path(path).expanduser()
    if not path.is_file():
        raise ZooError(f"{option}: no file {path}")
    readers = {".csv": pd.read_csv, ".tsv": lambda p: pd.read_csv(p, sep="\t")}
    readers[".parquet"] = pd.read_parquet
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise ZooError(f"{option}: {path} is not .csv, .tsv or .parquet")
    _refuse_duplicate_columns(path, option)  # before pandas renames (or fails on) a copy
    try:
        frame = reader(path)
    except Exception as err:  # pandas / pyarrow: many error types, one message
        raise ZooError(f"{option}: cannot read {path} ({one_line(err, 200)})") from None
    if frame.empty:
        raise ZooError(f"{option}: {path} has no rows")
    return frame


def _header(path: Path) -> list[str]:
    """A table's column names as the file writes them: read_csv renames a second ``label``
    ``label.1`` (and pyarrow keeps both in a Parquet schema, which pandas then cannot read)."""
    import pandas as pd

    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            return [str(n) for n in pq.read_schema(path).names if not n.startswith("__index")]
        sep = "\t" if path.suffix.lower() == ".tsv" else ","
        row = pd.read_csv(path, sep=sep, header=None, nrows=1, dtype=str).iloc[0]
    except Exception:  # unreadable: reading the whole table says why
        return []
    return [n for n in row if isinstance(n, str)]  # an empty cell: pandas' "Unnamed: k"


def _refuse_duplicate_columns(path: Path, option: str) -> None:
    from collections import Counter

    names = Counter(_header(path))
    twice = [f"{n!r} ({k} columns)" for n, k in names.items() if k > 1]
    if twice:
        raise ZooError(
            f"{option}: {path} repeats the column name {listed(twice)}: give every column a "
            "name of its own"
        )


def infinite_counts(frame, columns) -> dict[str, int]:
    """{column: rows holding inf or -inf} over the numeric ``columns`` that hold any."""
    import numpy as np

    counts = {}
    for name in columns:
        column = frame[name]
        if TablePreprocessor.is_numeric(column):
            n = int(np.isinf(column.to_numpy(dtype=float, na_value=np.nan)).sum())
            if n:
                counts[name] = n
    return counts


def counted(counts: dict[str, int]) -> str:
    """``'x': 3 rows, 'y': 1 row`` (a few columns; many are cut with their count)."""
    return listed(f"{n!r}: {k:,} row{'s' * (k != 1)}" for n, k in counts.items())


@dataclass
class TablePreprocessor:
    """Column encoding fitted on training rows; a plain dict in checkpoints (``to_dict``)."""

    features: list[str]
    missing: str = "error"
    categories: dict[str, list[str]] = field(default_factory=dict)  # categorical columns
    mean: dict[str, float] = field(default_factory=dict)  # numeric columns
    std: dict[str, float] = field(default_factory=dict)

    @staticmethod
    def is_numeric(column) -> bool:
        import pandas as pd

        return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)

    def fit(self, frame, max_categories: int) -> TablePreprocessor:
        for name in self.features:
            column = frame[name]
            if self.is_numeric(column):
                mean, std = float(column.mean()), float(column.std(ddof=1))
                self.mean[name] = mean
                self.std[name] = std if std > 0 and std == std else 1.0  # constant: x - mean
                continue
            values = sorted(column.dropna().astype(str).unique())
            if len(values) > max_categories:
                raise ZooError(
                    f"data.features: column {name!r} is not numeric and has {len(values)} "
                    f"distinct values (> data.max_categories={max_categories}): an id or free "
                    "text cannot be one-hot encoded; leave it out with data.features=[...]"
                )
            self.categories[name] = values
        return self

    @property
    def width(self) -> int:
        return sum(len(self.categories.get(n, [])) + (n in self.mean) for n in self.features)

    def transform(self, frame) -> torch.Tensor:
        """(rows, width) float32 features, columns in ``features`` order."""
        missing = [n for n in self.features if n not in frame.columns]
        if missing:
            raise ZooError(
                f"the table lacks the column(s) {listed(repr(n) for n in missing)} the model was "
                "trained on"
            )
        infinite = infinite_counts(frame, [n for n in self.features if n in self.mean])
        if infinite:
            raise ZooError(
                f"infinite values (inf, -inf) in {counted(infinite)}: make them empty cells "
                "(missing values) or finite numbers"
            )
        parts = []
        for name in self.features:
            column = frame[name]
            if name in self.mean:
                try:
                    values = torch.tensor(column.astype(float).to_numpy(), dtype=torch.float32)
                except (TypeError, ValueError):
                    raise ZooError(f"column {name!r}: numbers expected") from None
                values = ((values - self.mean[name]) / self.std[name]).nan_to_num(0.0)
                parts.append(values[:, None])  # fill: the training mean, 0 after scaling
            else:
                text = column.astype(str).where(column.notna(), None)
                cats = self.categories[name]
                onehot = torch.tensor([[v == c for c in cats] for v in text], dtype=torch.float32)
                parts.append(onehot.reshape(len(frame), len(cats)))
        return torch.cat(parts, dim=1)

    def describe(self) -> list[dict[str, Any]]:
        """The encoding as plain numbers, one entry a feature column in input order: numeric
        ``(x - mean) / std`` (one input), or categorical, one input per category."""
        columns: list[dict[str, Any]] = []
        for name in self.features:
            if name in self.mean:
                entry = {"kind": "numeric", "mean": self.mean[name], "std": self.std[name]}
            else:
                entry = {"kind": "categorical", "categories": list(self.categories[name])}
            columns.append({"name": name, **entry})
        return columns

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, state: Any, where: str = "preprocessor") -> TablePreprocessor:
        """The preprocessor ``to_dict`` wrote, checked before use (a checkpoint is data from
        outside): the keys and types it writes, every feature numeric (a mean and a std > 0) or
        categorical (its categories), and nothing else. ``where`` names it in the message."""
        names = [f.name for f in fields(cls)]
        state = saved_mapping(state, where, names, required=("features",))
        features = saved_names(state["features"], f"{where}.features")
        twice = sorted({n for n in features if features.count(n) > 1})
        if not features or twice:
            said = f"names {listed(repr(n) for n in twice)} twice" if twice else "empty"
            raise bad_state(f"{where}.features", said)
        missing = state.get("missing", "error")
        if missing not in MISSING:
            raise bad_state(f"{where}.missing", f"{missing!r} is not one of {', '.join(MISSING)}")
        parts: dict[str, dict[str, Any]] = {}
        for part in ("categories", "mean", "std"):
            key = f"{where}.{part}"
            saved = saved_mapping(state.get(part, {}), key, features)
            if part == "categories":
                parts[part] = {n: saved_names(v, f"{key}[{n!r}]") for n, v in saved.items()}
            else:
                positive = part == "std"
                parts[part] = {
                    n: saved_number(v, f"{key}[{n!r}]", positive) for n, v in saved.items()
                }
        categories, mean, std = parts["categories"], parts["mean"], parts["std"]
        for name in features:
            numeric, categorical = name in mean and name in std, name in categories
            if numeric == categorical or (name in mean) != (name in std):
                said = (
                    "both a mean and categories"
                    if numeric and categorical
                    else "a mean without a std, or a std without a mean"
                    if (name in mean) != (name in std)
                    else "neither a mean and std (numeric) nor categories"
                )
                raise bad_state(where, f"the feature {name!r} has {said}")
        return cls(features, missing, categories, mean, std)


class TableDataModule(TensorDataModule):
    """A CSV / Parquet table (see the module docstring); seeded splits as every data module."""

    def __init__(
        self,
        path: str,
        target: str,
        features: list[str] | None = None,
        task: str = "auto",
        missing: str = "error",
        max_classes: int = 20,
        max_categories: int = 50,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if task not in ("auto", "classification", "regression"):
            raise ZooError(f"data.task must be auto, classification or regression, got {task!r}")
        if missing not in MISSING:
            raise ZooError(f"data.missing must be one of {MISSING}, got {missing!r}")
        seen: dict[str, int] = {}  # (by repr: an odd entry, a list say, is no dict key)
        for name in features or []:
            seen[repr(name)] = seen.get(repr(name), 0) + 1
        twice = [name for name, count in seen.items() if count > 1]
        if twice:
            raise ZooError(
                f"data.features names the column(s) {listed(twice)} more than once: name each "
                "column once"
            )
        for name, value in (("max_classes", max_classes), ("max_categories", max_categories)):
            if value < 0:
                raise ZooError(f"data.{name} must be >= 0, got {value}")
        self.path, self.target, self.features = path, target, features
        self.requested_task, self.missing = task, missing
        self.max_classes, self.max_categories = max_classes, max_categories
        self.frame = None
        self.preprocessor: TablePreprocessor | None = None
        self.class_names: list[str] = []
        self.target_scale: dict[str, float] = {}  # regression: target_mean, target_std

    def _columns(self, frame) -> list[str]:
        columns = [str(c) for c in frame.columns]
        if self.target not in columns:
            raise ZooError(
                f"data.target={self.target!r} is not a column of {self.path}; its columns: "
                f"{listed(columns)}"
            )
        features = (
            list(self.features) if self.features else [c for c in columns if c != self.target]
        )
        unknown = [c for c in features if c not in columns or c == self.target]
        if unknown or not features:
            named = listed(repr(c) for c in unknown) if unknown else "none"
            raise ZooError(
                f"data.features: {named} are not feature columns of {self.path}; "
                f"its columns: {listed(columns)}"
            )
        return features

    def _infer_task(self, y) -> str:
        import pandas as pd

        if self.requested_task != "auto":
            return self.requested_task
        if not TablePreprocessor.is_numeric(y):
            return "classification"
        few = y.nunique() <= self.max_classes
        return "classification" if pd.api.types.is_integer_dtype(y) and few else "regression"

    def load(self) -> Loaded:
        frame = read_table(self.path)
        features = self._columns(frame)
        used = frame[[*features, self.target]]
        holes = {c: int(n) for c, n in used.isna().sum().items() if n}
        if holes and self.missing == "error":
            raise ZooError(
                f"{self.path}: missing values in {counted(holes)}; set data.missing="
                "drop (those rows) or fill (the training mean; no category)"
            )
        if holes:  # a row without a target never counts; drop: nor one with a feature missing
            subset = [*features, self.target] if self.missing == "drop" else [self.target]
            frame = frame.dropna(subset=subset).reset_index(drop=True)
        infinite = infinite_counts(frame, [*features, self.target])
        if infinite:  # not a missing value: an overflow, a sentinel (see the module docstring)
            raise ZooError(
                f"{self.path}: infinite values (inf, -inf) in {counted(infinite)}; make them "
                "empty cells for data.missing to handle, or leave the column out with "
                "data.features=[...]"
            )
        y = frame[self.target]
        if y.nunique() < 2:
            raise ZooError(f"data.target={self.target!r} has one value only: nothing to learn")
        self.task = self._infer_task(y)
        self.standardize_target = self.task == "regression"
        if self.task == "classification":
            self.class_names = sorted(y.astype(str).unique())
            index = {c: i for i, c in enumerate(self.class_names)}
            target = torch.tensor([index[v] for v in y.astype(str)], dtype=torch.long)
            info: dict[str, Any] = {"num_classes": len(self.class_names)}
        else:
            try:
                target = torch.tensor(y.astype(float).to_numpy(), dtype=torch.float32)
            except (TypeError, ValueError):
                raise ZooError(f"data.target={self.target!r}: regression needs numbers") from None
            info = {}
        self.frame, self.preprocessor = frame, TablePreprocessor(features, self.missing)
        # rows travel through the split as their index; encoded once the training rows are known
        return Loaded(Split(torch.arange(len(frame)), target), info=info)

    def _standardize(self) -> None:
        train_rows = self.frame.iloc[self.splits["train"].x.numpy()]
        self.preprocessor.fit(train_rows, self.max_categories)
        for name, split in self.splits.items():
            rows = self.frame.iloc[split.x.numpy()]
            self.splits[name] = Split(self.preprocessor.transform(rows), split.y)
        self.input_shape = (self.preprocessor.width,)
        super()._standardize()  # the target (regression), on the training rows' mean and std
        if self.standardize_target:
            self.target_scale = {k: self.info[k] for k in ("target_mean", "target_std")}
        self.frame = None  # encoded: the raw rows are no longer needed

    def describe_inputs(self) -> dict[str, Any] | None:
        """How a raw row becomes the network's input ``x``, and its output an answer, as plain
        JSON (scripts/export.py writes it into export.json as ``preprocessing``; the format is
        in the README, "Using a trained model"). None before setup or a checkpoint's state."""
        if self.preprocessor is None:
            return None
        target: dict[str, Any] = {"name": self.target, "task": self.task}
        if self.task == "classification":
            target["class_names"] = list(self.class_names)
        elif self.target_scale:  # answer = out * target_std + target_mean
            target.update(self.target_scale)
        return {
            "format": PREPROCESSING_FORMAT,
            "kind": "table",
            "input": "x",
            "dtype": "float32",
            "width": self.preprocessor.width,
            "columns": self.preprocessor.describe(),
            "unknown_category": "zeros",
            "missing": {
                "na_strings": list(NA_STRINGS),
                "numeric": "mean",
                "categorical": "zeros",
                "training": self.preprocessor.missing,
            },
            "infinite": "refused",
            "target": target,
        }

    def state_dict(self) -> dict[str, Any]:
        """What predict needs to encode new rows as training did (saved in every checkpoint),
        and a regression's target scale (for export.json's description)."""
        if self.preprocessor is None:
            return {}
        state = {
            "preprocessor": self.preprocessor.to_dict(),
            "task": self.task,
            "class_names": list(self.class_names),
            "target": self.target,
        }
        if self.target_scale:
            state.update(self.target_scale)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """What ``state_dict`` wrote, checked: a checkpoint is data from outside, and a wrong
        shape or type would fail later, as a traceback, when predict encodes rows (one line
        naming ``TableDataModule.<key>`` instead). An empty state (saved before setup) is
        nothing to restore."""
        where = type(self).__qualname__
        keys = ("preprocessor", "task", "class_names", "target", "target_mean", "target_std")
        state = saved_mapping(state, where, keys)
        if not state:
            return
        saved_mapping(state, where, keys, required=("preprocessor", "task"))
        preprocessor = TablePreprocessor.from_dict(state["preprocessor"], f"{where}.preprocessor")
        task = state["task"]
        if task not in ("classification", "regression"):
            raise bad_state(f"{where}.task", f"{task!r} is not classification or regression")
        class_names = saved_names(state.get("class_names", []), f"{where}.class_names")
        if task == "classification" and (
            len(class_names) < 2 or len(set(class_names)) < len(class_names)
        ):
            raise bad_state(
                f"{where}.class_names",
                f"{listed(repr(c) for c in class_names) or 'none'} are not two or more distinct "
                "class names",
            )
        if task == "regression" and class_names:
            raise bad_state(f"{where}.class_names", "class names for a regression")
        if not isinstance(state.get("target", ""), str):
            raise bad_state(f"{where}.target", f"{state['target']!r} is not a column name")
        scale = {}
        if ("target_mean" in state) != ("target_std" in state):
            raise bad_state(where, "a target_mean without a target_std, or the reverse")
        if "target_mean" in state:
            if task != "regression":
                raise bad_state(f"{where}.target_mean", "a target scale for a classification")
            scale = {
                "target_mean": saved_number(state["target_mean"], f"{where}.target_mean"),
                "target_std": saved_number(state["target_std"], f"{where}.target_std", True),
            }
        self.preprocessor, self.class_names, self.task = preprocessor, class_names, task
        if "target" in state:
            self.target = state["target"]
        self.target_scale = scale  # (none in a checkpoint written before it was saved)
