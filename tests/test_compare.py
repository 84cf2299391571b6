"""scripts/compare_runs.py on a real 2x2 sweep: 4 run folders, a table of 4 rows, curves."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from test_cli import cli, summaries

from conftest import load_script


def test_a_2x2_sweep_gives_4_runs_and_a_4_row_table(tmp_path: Path, capsys) -> None:
    out = cli("-m", "trainer=debug", "model.optimizer.lr=0.01,0.001", "seed=0,1", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    found = summaries(tmp_path / "logs" / "multiruns")
    assert len({s["run_dir"] for s in found}) == 4
    (sweep,) = (tmp_path / "logs" / "multiruns").iterdir()
    assert all(list(Path(s["run_dir"]).glob("events.out.tfevents.*")) for s in found)

    compare = load_script("compare_runs")
    assert compare.main([str(sweep), "--format", "csv", "-o", str(tmp_path / "runs.csv")]) == 0
    rows = list(csv.DictReader(io.StringIO((tmp_path / "runs.csv").read_text())))
    assert len(rows) == 4
    # the swept hyperparameters are columns; the ones all runs share are not
    assert {r["model.optimizer.lr"] for r in rows} == {"0.01", "0.001"}
    assert {r["seed"] for r in rows} == {"0", "1"}
    assert "model.net.hidden_sizes" not in rows[0]
    assert all(float(r["test/acc"]) >= 0 and r["best val/loss"] for r in rows)

    assert compare.main([str(sweep), "--format", "markdown"]) == 0
    table = capsys.readouterr().out.strip().splitlines()
    assert len(table) == 2 + 4 and table[1].startswith("| ---")
    png = tmp_path / "curves.png"
    assert compare.main([str(sweep), "--plot", str(png), "--curve", "train/loss"]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert compare.main([str(sweep), "--model", "cnn"]) == 1  # filtered out: a clear error
    capsys.readouterr()
    names = sorted(Path(s["run_dir"]).name.split("-", 1)[1] for s in found)
    assert names == [
        f"model.optimizer.lr={lr},seed={seed}" for lr in ("0.001", "0.01") for seed in (0, 1)
    ]
    assert compare.main([str(sweep), "--glob", "*lr=0.01,seed=0"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2 + 1
    assert compare.main([str(tmp_path / "nowhere")]) == 1

    # nothing earlier is overwritten; a hostile config.yaml is one line, not a tree of billions
    before = (tmp_path / "runs.csv").read_bytes()
    for flag, path in (("-o", tmp_path / "runs.csv"), ("--plot", png)):
        assert compare.main([str(sweep), flag, str(path)]) == 1
        assert "exists: choose a new name" in capsys.readouterr().err
    assert (tmp_path / "runs.csv").read_bytes() == before
    run = Path(found[0]["run_dir"])
    laughs = "".join(f"l{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 7))
    (run / "config.yaml").write_text("l0: &a0 [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]\n" + laughs)
    assert compare.main([str(sweep)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "more than 100,000 entries" in err[0]


def test_sweep_run_labels_name_what_was_swept() -> None:
    from mlzoo.run.sweep import MAX_LABEL, run_label

    argv = ["-m", "optimizer=sgd,adamw", "seed=range(2)", "trainer=debug"]
    assert run_label(["optimizer=sgd", "seed=1", "trainer=debug"], "mlp-digits", argv) == (
        "optimizer=sgd,seed=1"
    )
    # a preset's own sweep (its hydra.sweeper.params): every job override not fixed on the line
    argv = ["-m", "experiment=transfer_modes"]
    assert (
        run_label(["experiment=transfer_modes", "model.mode=lora"], "x", argv) == "model.mode=lora"
    )
    assert run_label(["trainer=debug"], "mlp-digits", ["-m", "trainer=debug"]) == "mlp-digits"
    assert "/" not in run_label(["data.root=/a/b"], "x") and " " not in run_label(["k='a b'"], "x")
    long = run_label([f"model.net.hidden_sizes=[{','.join(['1024'] * 20)}]"], "x")
    assert len(long) == MAX_LABEL and long.startswith("model.net.hidden_sizes=")


def test_by_default_only_the_columns_that_tell_the_runs_apart(tmp_path: Path, capsys) -> None:
    """Two MLP seeds and a DQN run: the table shows what differs (seed, the model, the metrics
    only some runs have), the shared values are named on stderr; --all shows every column and
    the settings only one concept has."""
    import json

    def fake_run(name: str, model: str, seed: int, metric: str, settings: dict) -> None:
        run = tmp_path / "logs" / name
        run.mkdir(parents=True)
        summary = {"model": model, "data": "d", "seed": seed, "status": "completed",
                   "duration_s": 1.0, "metrics": {metric: 0.5}}  # fmt: skip
        (run / "summary.json").write_text(json.dumps(summary))
        config = {"seed": seed, "model": {"optimizer": {"lr": 0.01}, **settings}}
        (run / "config.yaml").write_text(json.dumps(config))  # JSON is YAML

    fake_run("a", "mlp", 0, "test/acc", {"hidden": 64})
    fake_run("b", "mlp", 1, "test/acc", {"hidden": 64})
    fake_run("c", "dqn", 0, "test/return", {"gamma": 0.99})
    compare = load_script("compare_runs")

    def header(*args: str) -> tuple[list[str], str]:
        assert compare.main([*args, "--format", "csv"]) == 0
        out = capsys.readouterr()
        return next(csv.reader(io.StringIO(out.out))), out.err

    columns, err = header(str(tmp_path / "logs" / "a"), str(tmp_path / "logs" / "b"))
    assert columns == ["run", "seed"], columns
    assert "the same in all 2 runs: model=mlp, data=d" in err and "--all" in err
    columns, _ = header(str(tmp_path / "logs"))
    assert columns == ["run", "model", "seed", "test/acc", "test/return"], columns
    columns, err = header(str(tmp_path / "logs"), "--all")
    assert {"model", "data", "seed", "status", "duration_s", "model.gamma"} <= set(columns)
    assert "model.optimizer.lr" not in columns and err == ""  # hyperparameters: what differs
    columns, _ = header(str(tmp_path / "logs" / "a"))  # one run: all there is
    assert {"model", "data", "seed", "test/acc"} <= set(columns)
