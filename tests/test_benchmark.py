"""scripts/benchmark.py: the gpu comparison and the side-by-side overhead run end to end (here on
the CPU, tiny epochs) and their tables say what they measured. Timings themselves are never
asserted (a shared, noisy machine)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import ROOT


def benchmark(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "scripts/benchmark.py", *args], cwd=ROOT, capture_output=True, text=True
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message a CPU-only machine gets")
def test_gpu_benchmark_without_cuda_says_how_to_run_it_on_the_cpu(tmp_path: Path) -> None:
    out = benchmark("--report", str(tmp_path / "B.md"), "gpu")
    assert out.returncode != 0 and "--device cpu" in out.stderr
    assert not (tmp_path / "B.md").exists()


@pytest.mark.slow
def test_gpu_benchmark_compares_the_data_paths_on_synthetic_mnist(tmp_path: Path) -> None:
    report = tmp_path / "B.md"
    args = ["--sets", "mnist", "--epochs", "2", "--limit-batches", "3", "--device", "cpu"]
    args += ["--num-workers", "0", "2"]
    out = benchmark("--report", str(report), "gpu", *args)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [ln for ln in report.read_text().splitlines() if ln.startswith("| mnist")]
    assert len(rows) == 6, report.read_text()
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in rows]
    assert {(c[1], c[2]) for c in cells} == {
        (path, precision)
        for path in ("DataLoader, 0 workers", "DataLoader, 2 workers", "on the device")
        for precision in ("32-true", "bf16-mixed")
    }
    assert all(float(c[3]) > 0 for c in cells)
    assert cells[0][4] == "1.00"  # the baseline: DataLoader, fp32


@pytest.mark.slow
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="side by side needs two cores")
def test_overhead_side_by_side_runs_each_pair_at_once(tmp_path: Path) -> None:
    report = tmp_path / "B.md"
    only = ["--only", "8x8, on_device"]  # one row: the MLP with data.on_device
    out = benchmark("--report", str(report), "overhead", *only, "--repeats", "2", "--side-by-side")
    assert out.returncode == 0, out.stderr[-3000:]
    text = report.read_text()
    assert "2 pairs side by side, one core each" in text
    rows = [ln for ln in text.splitlines() if ln.startswith("| mlp")]
    assert len(rows) == 1, text
    for cells in ([c.strip() for c in ln.strip("|").split("|")] for ln in rows):
        assert int(cells[2]) > 0 and int(cells[3]) > 0  # zoo and plain samples/s
        assert cells[-1] == cells[-3] == "-"  # the plain loop was stopped with the zoo: no totals
