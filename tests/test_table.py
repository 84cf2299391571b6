"""data=table: your own CSV / Parquet file. The diabetes set as a CSV scores as the built-in one;
categorical columns and text targets; preprocessing fitted on the training rows and kept in the
checkpoint; bad tables give one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from cli_cases import run_cases

from mlzoo.core.errors import ZooError
from mlzoo.data.table import TableDataModule

from conftest import load_script, run_training


def diabetes_csv(path: Path) -> Path:
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes(as_frame=True)
    bunch.frame.to_csv(path, index=False)  # ten features and "target", in sklearn's row order
    return path


def test_diabetes_as_a_csv_scores_as_the_built_in_set(tmp_path: Path) -> None:
    """Same rows, same split seed, the tuned MLP of diabetes: the same test metrics."""
    csv = diabetes_csv(tmp_path / "diabetes.csv")
    built_in = run_training(["model=mlp", "data=diabetes"], tmp_path / "a")["metrics"]
    table = ["data=table", f"data.path={csv}", "data.target=target", "tuned=mlp_diabetes"]
    summary = run_training(["model=mlp", *table], tmp_path / "b")
    mine = summary["metrics"]
    assert built_in["test/r2"] > 0.2  # it learned (least squares on this split: 0.23)
    for key in ("test/rmse", "test/r2"):
        assert mine[key] == pytest.approx(built_in[key], rel=1e-3), key
    out = tmp_path / "preds.csv"  # predictions in the target's own units, from the checkpoint
    assert load_script("predict").main([summary["last_checkpoint"], str(csv), "-o", str(out)]) == 0
    error = pd.read_csv(out)["prediction"] - pd.read_csv(csv)["target"]
    assert float(np.sqrt((error**2).mean())) < 1.2 * mine["test/rmse"]  # all rows, train included


def test_text_and_categorical_columns_train_a_classifier(tmp_path: Path, capsys) -> None:
    """A text target and a text feature that decides it: the MLP must find it (chance: 1/3)."""
    rng = np.random.default_rng(0)
    colour = rng.choice(["red", "green", "blue"], 600)
    frame = pd.DataFrame(
        {
            "colour": colour,
            "noise": rng.normal(size=600),
            "size": rng.integers(0, 5, 600),
            "fruit": pd.Series(colour).map({"red": "apple", "green": "pear", "blue": "plum"}),
        }
    )
    frame.to_parquet(tmp_path / "fruit.parquet")
    table = ["data=table", f"data.path={tmp_path / 'fruit.parquet'}", "data.target=fruit"]
    summary = run_training(["model=mlp", *table, "trainer.max_epochs=15"], tmp_path / "logs")
    assert summary["metrics"]["test/acc"] > 0.95
    ckpt = torch.load(summary["last_checkpoint"], weights_only=True)
    state = ckpt["TableDataModule"]
    assert state["class_names"] == ["apple", "pear", "plum"]
    assert state["preprocessor"]["categories"]["colour"] == ["blue", "green", "red"]
    new = pd.DataFrame({"colour": ["blue", "red", "green"], "noise": [0.0] * 3, "size": [1] * 3})
    new.to_csv(tmp_path / "new.csv", index=False)
    out = tmp_path / "preds.csv"
    predict = load_script("predict")
    assert (
        predict.main([summary["last_checkpoint"], str(tmp_path / "new.csv"), "-o", str(out)]) == 0
    )
    preds = pd.read_csv(out)
    assert list(preds["prediction"]) == ["plum", "apple", "pear"]
    assert list(preds.columns) == ["input", "prediction", "p_apple", "p_pear", "p_plum"]
    assert np.allclose(preds[["p_apple", "p_pear", "p_plum"]].sum(axis=1), 1.0, atol=1e-4)
    new.drop(columns="colour").to_csv(tmp_path / "lacks.csv", index=False)
    digits = run_training(["model=mlp", "trainer=debug"], tmp_path / "digits")
    ckpt = summary["last_checkpoint"]
    capsys.readouterr()
    for args, message in [
        ([ckpt, str(tmp_path / "new.csv"), "-o", str(out)], "exists"),
        ([ckpt, str(tmp_path / "lacks.csv")], "lacks the column(s) ['colour']"),
        ([ckpt, str(tmp_path / "none.csv")], "no file"),
        ([digits["last_checkpoint"], str(tmp_path / "new.csv")], "trained on DigitsDataModule"),
    ]:
        assert predict.main(args) == 1
        err = capsys.readouterr().err
        assert err.startswith("error:") and message in err, (args, err)
    assert pd.read_csv(out).equals(preds)  # the earlier file is untouched


def test_preprocessing_is_fitted_on_the_training_rows_alone(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": np.arange(100.0), "y": np.arange(100.0) * 2})
    frame.to_csv(tmp_path / "t.csv", index=False)
    dm = TableDataModule(str(tmp_path / "t.csv"), "y", batch_size=8)
    dm.setup()
    assert dm.task == "regression" and dm.spec["input_shape"] == [1]
    raw_train = dm.splits["train"].x[:, 0] * dm.preprocessor.std["x"] + dm.preprocessor.mean["x"]
    assert dm.preprocessor.mean["x"] == pytest.approx(float(raw_train.mean()), abs=1e-4)
    assert dm.preprocessor.mean["x"] != pytest.approx(49.5, abs=1e-3)  # not all rows' mean
    assert float(dm.splits["train"].x.mean()) == pytest.approx(0.0, abs=1e-5)
    again = TableDataModule(str(tmp_path / "t.csv"), "y")
    again.load_state_dict(dm.state_dict())  # what a checkpoint restores: the same encoding
    torch.testing.assert_close(
        again.preprocessor.transform(frame), dm.preprocessor.transform(frame)
    )


def test_missing_values_drop_or_fill(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": [1.0, None, 3.0, 4.0] * 10, "c": ["a", "b", None, "a"] * 10})
    frame["y"] = [0, 1, 0, 1] * 10
    frame.to_csv(tmp_path / "t.csv", index=False)
    dropped = TableDataModule(str(tmp_path / "t.csv"), "y", missing="drop", batch_size=4)
    dropped.setup()
    assert sum(len(s) for s in dropped.splits.values()) == 20
    filled = TableDataModule(str(tmp_path / "t.csv"), "y", missing="fill", batch_size=4)
    filled.setup()
    assert sum(len(s) for s in filled.splits.values()) == 40
    assert torch.isfinite(filled.splits["train"].x).all()
    with pytest.raises(ZooError, match="missing values in"):
        TableDataModule(str(tmp_path / "t.csv"), "y").setup()


def test_bad_tables_give_one_line_and_no_run_folder(tmp_path: Path) -> None:
    ok = pd.DataFrame({"a": range(90), "b": ["x", "y", "z"] * 30, "t": [0.5, 1.5, 2.5] * 30})
    ok.to_csv(tmp_path / "ok.csv", index=False)
    ok.assign(t=1.0).to_csv(tmp_path / "one.csv", index=False)
    ok.assign(b=[f"id{i}" for i in range(90)]).to_csv(tmp_path / "ids.csv", index=False)
    table = ["model=mlp", "data=table"]
    cases = [
        ([*table, f"data.path={tmp_path / 'ok.csv'}", "data.target=price"], "its columns: a, b, t"),
        ([*table, f"data.path={tmp_path / 'no.csv'}", "data.target=t"], "no file"),
        ([*table, f"data.path={tmp_path / 'one.csv'}", "data.target=t"], "one value only"),
        (
            [
                *table,
                f"data.path={tmp_path / 'ids.csv'}",
                "data.target=t",
                "data.max_categories=20",
            ],
            "column 'b' is not numeric",
        ),
        ([*table, f"data.path={tmp_path / 'ok.csv'}", "data.target=t", "data.task=x"], "data.task"),
    ]
    failures = run_cases([("train", a, r) for a, r in cases], tmp_path)
    assert not failures, "\n".join(failures)
    assert not list(tmp_path.glob("logs/runs/*/*")), "a failed run left its folder behind"
