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
    assert compare.main([str(sweep), "--plot", str(png), "--curve", "train/loss_step"]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert compare.main([str(sweep), "--model", "cnn"]) == 1  # filtered out: a clear error
    capsys.readouterr()
    assert compare.main([str(sweep), "--glob", "0-mlp*"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2 + 1
    assert compare.main([str(tmp_path / "nowhere")]) == 1
