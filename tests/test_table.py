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

from mlzoo.base.errors import ZooError
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
        ([ckpt, str(tmp_path / "lacks.csv")], "lacks the column(s) 'colour'"),
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
    ok[["a", "t", "t"]].to_csv(tmp_path / "twice.csv", index=False)  # read back: t, t.1
    ok.assign(a=[np.inf, *range(89)]).to_csv(tmp_path / "inf.csv", index=False)
    ok.head(2).to_csv(tmp_path / "two.csv", index=False)
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
        ([*table, f"data.path={tmp_path / 'twice.csv'}", "data.target=t"], "column name 't'"),
        ([*table, f"data.path={tmp_path / 'inf.csv'}", "data.target=t"], "in 'a': 1 row"),
        (
            [*table, f"data.path={tmp_path / 'two.csv'}", "data.target=t", "data.batch_size=1"],
            "too few examples to split",
        ),
        (
            [*table, f"data.path={tmp_path / 'ok.csv'}", "data.target=t", "data.features=[a,b,a]"],
            "data.features names the column(s) 'a' more than once",
        ),
        (
            [*table, f"data.path={tmp_path / 'ok.csv'}", "data.target=t", "data.batch_size=0"],
            "data.batch_size must be >= 1, got 0",
        ),
    ]
    failures = run_cases([("train", a, r) for a, r in cases], tmp_path)
    assert not failures, "\n".join(failures)
    assert not list(tmp_path.glob("logs/runs/*/*")), "a failed run left its folder behind"


def setup_error(path: Path, target: str = "y", **kwargs) -> str:
    """The one-line ZooError that setting up a table data module on ``path`` raises."""
    with pytest.raises(ZooError) as caught:
        TableDataModule(str(path), target, batch_size=1, **kwargs).setup()
    return str(caught.value)


def xy(n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"x": rng.normal(size=n), "z": rng.normal(size=n), "y": [0, 1] * (n // 2)})


@pytest.mark.parametrize("copy", ["y", "x"], ids=["target", "feature"])
def test_a_column_name_used_twice_is_refused(tmp_path: Path, copy: str) -> None:
    """pandas reads a second ``y`` as ``y.1``: a copy of the target would have been a feature."""
    frame = xy()
    frame.insert(1, "copy", frame[copy])
    frame.rename(columns={"copy": copy}).to_csv(tmp_path / "t.csv", index=False)
    assert f"{copy}.1" in pd.read_csv(tmp_path / "t.csv").columns  # what pandas makes of it
    message = setup_error(tmp_path / "t.csv")
    assert f"repeats the column name {copy!r} (2 columns)" in message
    assert "\n" not in message
    import pyarrow as pa
    import pyarrow.parquet as pq

    # pyarrow writes a schema with two ``y``s (pandas' to_parquet refuses to)
    columns = [pa.array(frame.iloc[:, i].to_numpy()) for i in range(frame.shape[1])]
    pq.write_table(
        pa.table(columns, names=[copy if c == "copy" else c for c in frame]), tmp_path / "t.parquet"
    )
    assert f"column name {copy!r} (2 columns)" in setup_error(tmp_path / "t.parquet")


@pytest.mark.parametrize("missing", ["error", "fill", "drop"])
def test_infinite_values_are_refused_naming_the_column(tmp_path: Path, missing: str) -> None:
    """inf is no missing value (data.missing does not apply): scaled, it made the loss NaN."""
    frame = xy()
    frame.loc[[3, 7], "z"] = [np.inf, -np.inf]
    frame.to_csv(tmp_path / "feature.csv", index=False)
    message = setup_error(tmp_path / "feature.csv", missing=missing)
    assert "infinite values (inf, -inf) in 'z': 2 rows" in message
    frame = xy().assign(y=np.linspace(0, 1, 40))
    frame.loc[5, "y"] = np.inf  # a regression target
    frame.to_csv(tmp_path / "target.csv", index=False)
    assert "in 'y': 1 row;" in setup_error(tmp_path / "target.csv", missing=missing)


def test_predicting_rows_with_inf_is_refused(tmp_path: Path) -> None:
    xy().to_csv(tmp_path / "t.csv", index=False)
    dm = TableDataModule(str(tmp_path / "t.csv"), "y", batch_size=8)
    dm.setup()
    new = xy(4).drop(columns="y")
    new.loc[0, "x"] = -np.inf
    with pytest.raises(ZooError, match="infinite values \\(inf, -inf\\) in 'x': 1 row"):
        dm.preprocessor.transform(new)


def test_a_table_too_small_to_split_names_the_counts_and_settings(tmp_path: Path) -> None:
    xy(2).to_csv(tmp_path / "two.csv", index=False)
    message = setup_error(tmp_path / "two.csv")
    assert message.startswith("data: too few examples to split (1 left after the test split)")
    for part in (
        "data.val_fraction=0.15",
        "examples per class:",
        "add examples",
        "data.val_fraction / data.test_fraction",
    ):
        assert part in message, part
    xy(2).assign(y=[0.5, 1.5]).to_csv(tmp_path / "regression.csv", index=False)
    message = setup_error(tmp_path / "regression.csv", test_fraction=0.5)
    assert "too few examples to split (1 left after the test split)" in message
    assert "per class" not in message


def test_a_class_with_one_member_splits_at_random_and_says_so(tmp_path: Path, caplog) -> None:
    """sklearn cannot stratify a class of one example: the split is plain random (as before),
    with a warning naming the classes' sizes; too few rows for that too: the one-line error."""
    xy().assign(y=["a"] * 39 + ["b"]).to_csv(tmp_path / "t.csv", index=False)
    dm = TableDataModule(str(tmp_path / "t.csv"), "y", batch_size=8)
    with caplog.at_level("WARNING", logger="mlzoo.data.base"):
        dm.setup()
    assert sum(len(s) for s in dm.splits.values()) == 40
    assert "data.test_fraction split is random, not stratified" in caplog.text
    assert "examples per class: b: 1, a: 39" in caplog.text
    pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": ["a", "a", "b"]}).to_csv(tmp_path / "three.csv")
    message = setup_error(tmp_path / "three.csv", val_fraction=0.9)
    assert "data.val_fraction=0.9" in message and "examples per class:" in message


def test_a_wide_table_without_the_target_gives_a_short_line(tmp_path: Path) -> None:
    columns = [f"feature_{i}" for i in range(5000)]
    pd.DataFrame(np.zeros((3, 5000)), columns=columns).to_csv(tmp_path / "wide.csv", index=False)
    message = setup_error(tmp_path / "wide.csv", target="label")
    assert len(message) < 400, len(message)
    assert "data.target='label' is not a column" in message and "(5,000 in all)" in message
    message = setup_error(tmp_path / "wide.csv", target="feature_0", features=[*columns[::-1], "x"])
    assert len(message) < 400 and "'feature_0', 'x' are not feature columns" in message


def test_data_features_naming_a_column_twice_is_refused(tmp_path: Path) -> None:
    """[a, a] would encode the column twice (a model input the user never meant)."""
    xy().to_csv(tmp_path / "t.csv", index=False)
    message = setup_error(tmp_path / "t.csv", features=["x", "z", "x", "z", "x"])
    assert message == (
        "data.features names the column(s) 'x', 'z' more than once: name each column once"
    )
    with pytest.raises(ZooError, match=r"^data\.max_classes must be >= 0, got -1"):
        TableDataModule(str(tmp_path / "t.csv"), "y", max_classes=-1)


def doctor(checkpoint: dict, name: str, change) -> dict:
    """A copy of ``checkpoint`` whose ``name`` state (the data module's) ``change`` edited."""
    import copy

    edited = copy.deepcopy(checkpoint)
    change(edited[name])
    return edited


def test_predict_checks_the_checkpoints_table_state(tmp_path: Path, capsys) -> None:
    """The TableDataModule state in a checkpoint is someone else's data: load_state_dict checks
    its shape and types (an extra key, a string, a feature without its mean were TypeError or
    KeyError tracebacks), and predict checks that it fits the network (class names for fewer
    outputs were zip()'s ValueError): each is one line naming the checkpoint and the key."""
    xy(60).to_csv(tmp_path / "t.csv", index=False)
    table = ["data=table", f"data.path={tmp_path / 't.csv'}", "data.target=y"]
    summary = run_training(["model=mlp", *table, "trainer=debug"], tmp_path / "logs")
    last = Path(summary["last_checkpoint"])
    ckpt = torch.load(last, weights_only=True)
    state = ckpt["TableDataModule"]
    assert state["task"] == "classification" and state["class_names"] == ["0", "1"]
    module = TableDataModule(str(tmp_path / "t.csv"), "y")
    module.load_state_dict({})  # saved before setup: nothing to restore
    assert module.preprocessor is None

    def drop_z(s: dict) -> None:  # a feature fewer: the network takes two inputs
        s["preprocessor"]["features"].remove("z")
        s["preprocessor"]["mean"].pop("z")
        s["preprocessor"]["std"].pop("z")

    pre = "TableDataModule.preprocessor"
    cases = [
        (lambda s: s["preprocessor"].update(evil=1), f"{pre}: unknown key(s) 'evil'"),
        (lambda s: s.update(preprocessor="x"), f"{pre}: a str, not a mapping"),
        (lambda s: s["preprocessor"]["mean"].pop("x"), f"{pre}: the feature 'x' has a mean"),
        (
            lambda s: [s["preprocessor"][k].pop("x") for k in ("mean", "std")],
            f"{pre}: the feature 'x' has neither",
        ),
        (lambda s: s["preprocessor"]["std"].update(x=0.0), f"{pre}.std['x']: 0.0 is not"),
        (lambda s: s["preprocessor"]["mean"].update(x="1"), f"{pre}.mean['x']: '1' is not"),
        (lambda s: s["preprocessor"].update(features=["x", "x"]), f"{pre}.features: names 'x'"),
        (lambda s: s["preprocessor"]["categories"].update(x=["a"]), "both a mean and categories"),
        (lambda s: s["preprocessor"]["categories"].update(w=["a"]), "unknown key(s) 'w'"),
        (lambda s: s.update(class_names=["0"]), "TableDataModule.class_names: '0' are not two"),
        (lambda s: s.update(task="ranking"), "TableDataModule.task: 'ranking' is not"),
        (lambda s: s.update(extra=1), "TableDataModule: unknown key(s) 'extra'"),
        (lambda s: s.update(target_mean=0.0), "a target_mean without a target_std"),
        (
            lambda s: s.update(target_mean=0.0, target_std=1.0),
            "TableDataModule.target_mean: a target scale for a classification",
        ),
        (lambda s: s.update(class_names=["0", "1", "2"]), "class_names has 3 names, the network 2"),
        (drop_z, "encodes inputs of shape [1], the network takes [2]"),
        (
            lambda s: s.update(task="regression", class_names=[]),
            "TableDataModule.task is regression, the network's classification",
        ),
    ]
    folder = last.parent
    assert load_script("predict").main([str(last), str(tmp_path / "t.csv")]) == 0  # as written
    for i, (change, message) in enumerate(cases):
        path = folder / f"edited{i}.ckpt"
        torch.save(doctor(ckpt, "TableDataModule", change), path)
        capsys.readouterr()
        assert load_script("predict").main([str(path), str(tmp_path / "t.csv")]) == 1, message
        err = capsys.readouterr().err
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {path}: "), err
        assert message in lines[0], (message, err)
        if "the network" not in message and "encodes" not in message:
            assert "not what this zoo writes" in lines[0], err
    torch.save({k: v for k, v in ckpt.items() if k != "TableDataModule"}, folder / "none.ckpt")
    assert load_script("predict").main([str(folder / "none.ckpt"), str(tmp_path / "t.csv")]) == 1
    assert "holds no table preprocessing" in capsys.readouterr().err
