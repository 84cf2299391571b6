"""benchmarks/run.py: the gpu comparison and the overhead runs (interleaved, side by side) end to
end (here on the CPU, tiny epochs), their tables say what they measured and their records land in
--results. Timings themselves are never asserted (a shared, noisy machine); the interleaved
instrument is checked against a known cost (a sleep) far larger than any noise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import ROOT


def benchmark(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "benchmarks/run.py", *args], cwd=ROOT, capture_output=True, text=True
    )


@pytest.fixture(autouse=True)
def benchmarks_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    """The repository root on sys.path, as `python benchmarks/run.py` puts it."""
    monkeypatch.syspath_prepend(str(ROOT))


def records(folder: Path, name: str) -> list[dict]:
    return [json.loads(line) for line in (folder / f"{name}.jsonl").read_text().splitlines()]


def test_the_benchmarks_help_lists_every_benchmark_without_importing_torch() -> None:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "benchmarks/run.py", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    for name in ("startup", "overhead", "quality", "gpu", "rl", "dpo", "envs"):
        assert name in out.stdout
    imported = {line.split("|")[-1].strip() for line in out.stderr.splitlines()}
    assert "torch" not in imported and "mlzoo" not in imported


def test_the_package_never_imports_the_benchmarks() -> None:
    """benchmarks/ imports mlzoo; mlzoo (and the user's scripts/) never import benchmarks/."""
    import ast

    for path in [*(ROOT / "mlzoo").rglob("*.py"), *(ROOT / "scripts").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n.split(".")[0] == "benchmarks" for n in names), path


def test_every_recorded_result_says_what_ran_where_and_when() -> None:
    """benchmarks/results/: one JSON record a line, each with its benchmark, date, machine,
    command and rows (those converted from BENCHMARKS.md's tables say so)."""
    folder = ROOT / "benchmarks" / "results"
    files = sorted(folder.glob("*.jsonl"))
    assert {f.stem for f in files} >= {"overhead", "quality", "gpu", "rl", "dpo", "envs"}
    for file in files:
        for record in records(folder, file.stem):
            assert record["benchmark"] == file.stem and record["rows"], (file, record["title"])
            assert record["date"][:2] == "20" and record["command"].startswith("python ")
            assert {"cpu", "cores", "gpu", "python", "torch"} <= set(record["machine"])
            assert record.get("imported_from", "BENCHMARKS.md") == "BENCHMARKS.md"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message a CPU-only machine gets")
def test_gpu_benchmark_without_cuda_says_how_to_run_it_on_the_cpu(tmp_path: Path) -> None:
    out = benchmark("--report", str(tmp_path / "B.md"), "--results", str(tmp_path), "gpu")
    assert out.returncode != 0 and "--device cpu" in out.stderr
    assert not (tmp_path / "B.md").exists() and not (tmp_path / "gpu.jsonl").exists()


@pytest.mark.slow
def test_gpu_benchmark_compares_the_data_paths_on_synthetic_mnist(tmp_path: Path) -> None:
    report = tmp_path / "B.md"
    args = ["--sets", "mnist", "--epochs", "2", "--limit-batches", "3", "--device", "cpu"]
    args += ["--num-workers", "0", "2"]
    out = benchmark("--report", str(report), "--results", str(tmp_path), "gpu", *args)
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
    if not (ROOT / "data" / "MNIST" / "raw").is_dir():  # benchmarks/synthetic.py stood in
        assert {c[0] for c in cells} == {"mnist (synthetic)"}
    (record,) = records(tmp_path, "gpu")  # the same rows, as data, with where and when
    assert [[str(v) for v in r.values()] for r in record["rows"]] == cells
    assert record["benchmark"] == "gpu" and record["command"].startswith("python benchmarks/run.py")
    assert {"cpu", "cores", "gpu"} <= set(record["machine"]) and "torch" in record["versions"]
    assert record["date"] and record["title"].startswith("gpu: ")


@pytest.mark.slow
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="side by side needs two cores")
def test_overhead_side_by_side_runs_each_pair_at_once(tmp_path: Path) -> None:
    report = tmp_path / "B.md"
    only = ["--only", "8x8, on_device"]  # one row: the MLP with data.on_device
    out = benchmark(
        *("--report", str(report), "--results", str(tmp_path)),
        *("overhead", *only, "--repeats", "2", "--mode", "side-by-side"),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    text = report.read_text()
    assert "2 pairs side by side, one core each" in text
    rows = [ln for ln in text.splitlines() if ln.startswith("| mlp")]
    assert len(rows) == 1, text
    for cells in ([c.strip() for c in ln.strip("|").split("|")] for ln in rows):
        assert int(cells[2]) > 0 and int(cells[3]) > 0  # zoo and plain samples/s
        assert cells[-1] == cells[-3] == "-"  # the plain loop was stopped with the zoo: no totals


@pytest.mark.slow
def test_overhead_interleaved_is_the_default_and_reports_per_epoch_ratios(tmp_path: Path) -> None:
    report = tmp_path / "B.md"
    out = benchmark(
        *("--report", str(report), "--results", str(tmp_path)),
        *("overhead", "--only", "8x8, on_device", "--repeats", "1"),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    text = report.read_text()
    assert "1 runs, each taking a plain-loop step after every zoo step" in text
    (row,) = [ln for ln in text.splitlines() if ln.startswith("| mlp")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert int(cells[2]) > 0 and int(cells[3]) > 0  # zoo and plain samples/s
    assert 0 < float(cells[4]) < 2  # the ratio
    assert float(cells[-2]) > 0 and float(cells[-1]) > 0  # seconds to the first step


SLEEP_CALLBACK = """
import time
import lightning as L

class Sleep(L.Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        time.sleep(0.02)
"""


@pytest.mark.slow
def test_interleaved_counts_a_cost_in_the_zoos_step_to_the_zoo_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The instrument, checked against a known overhead: a callback sleeping 20 ms after each
    zoo step (the MLP's whole step is a few ms) lands in the zoo's time, not the plain loop's."""
    (tmp_path / "sleepy.py").write_text(SLEEP_CALLBACK)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    from hydra.core.global_hydra import GlobalHydra

    from benchmarks import overhead_runs

    GlobalHydra.instance().clear()  # plain_inputs composes the config in this process
    overrides = ["model=mlp", "torch_threads=1"]
    spec = overhead_runs.plain_inputs(overrides, tmp_path)
    sleepy = [*overrides, "+callbacks.sleep._target_=sleepy.Sleep"]
    run = overhead_runs.run_interleaved(sleepy, spec, 2, tmp_path, allow=("sleepy",))
    assert len(run["epochs"]) == 2 and run["first_step_at"] > run["launched"]
    for epoch in run["epochs"]:
        steps = epoch["steps"]
        assert steps > 10 and epoch["samples"] == epoch["plain_samples"]
        assert epoch["seconds"] >= 0.02 * steps  # every sleep counted to the zoo (its seconds)
        assert epoch["plain_seconds"] < 0.02 * steps  # none to the plain loop
    assert max(overhead_runs.ratios(run)) < 0.5


def test_rl_benchmark_pairs_evaluate_once_per_zoo_epoch_with_the_presets_budget(
    tmp_path: Path,
) -> None:
    """Both libraries are evaluated at the same env steps only if a pair's ``every`` is the zoo
    run's epoch (it validates once per epoch), and its budget is the preset's own."""
    from benchmarks.rl import BENCHES

    from conftest import compose_config

    for (algo, env), bench in BENCHES.items():
        cfg = compose_config(list(bench.zoo), tmp_path)
        assert cfg.model._target_.endswith(f"{algo.upper()}Module"), (algo, env)
        per_iteration = cfg.model.train_frequency if algo == "dqn" else cfg.model.num_steps
        epoch = cfg.data.iterations_per_epoch * per_iteration * cfg.data.num_envs
        assert epoch == bench.every, (algo, env, epoch, bench.every)
        assert cfg.data.num_envs == bench.n_envs and cfg.data.env_id == bench.env_id, (algo, env)
        if bench.zoo[0].startswith("experiment="):  # a preset: its own max_epochs
            assert cfg.trainer.max_epochs * epoch == bench.steps, (algo, env)


def test_envs_benchmark_counts_each_cases_env_steps_per_iteration(tmp_path: Path) -> None:
    """env steps/s = iterations/s x the case's env steps per iteration (PPO: num_steps x
    num_envs), which must be the config's own."""
    from benchmarks.envs import CASES

    from conftest import compose_config

    for case, (overrides, per_iteration) in CASES.items():
        cfg = compose_config(overrides, tmp_path)
        assert cfg.model.num_steps * cfg.data.num_envs == per_iteration, case


@pytest.mark.slow
def test_envs_benchmark_times_sync_and_async_envs_alternately(tmp_path: Path) -> None:
    report = tmp_path / "B.md"
    args = ["--cases", "cartpole", "--epochs", "2", "--iterations", "2", "--repeats", "1"]
    out = benchmark("--report", str(report), "--results", str(tmp_path), "envs", *args)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [ln.split(" | ") for ln in report.read_text().splitlines() if ln.startswith("| cart")]
    assert [r[2] for r in rows] == ["sync", "async"] and rows[0][4] == "1.00x", rows
    assert all(float(r[3]) > 0 for r in rows), rows


@pytest.mark.slow
def test_startup_benchmark_times_every_answer_and_both_first_steps(tmp_path: Path) -> None:
    out = benchmark(
        *("--report", str(tmp_path / "B.md"), "--results", str(tmp_path)),
        *("startup", "--repeats", "1"),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    [record] = records(tmp_path, "startup")
    commands = [row["command"] for row in record["rows"]]
    assert commands[0] == "train.py --help" and len(commands) == 6, commands
    assert "launch to 1st step: plain PyTorch" in commands
    for row in record["rows"]:
        assert 0 < float(row["median s"]) < 600, row
    assert "the zoo over the plain script" in record["notes"]
