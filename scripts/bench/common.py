"""What the benchmarks share: the machine, the report (a markdown table appended to
BENCHMARKS.md, or --report), and the zoo's runs with the Throughput callback."""

from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "BENCHMARKS.md"  # where tables are appended; benchmark.py sets it from --report
COMMAND = "python scripts/benchmark.py " + shlex.join(sys.argv[1:])


def machine() -> str:
    import torch

    cpu = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [
            ln.split(":", 1)[1].strip()
            for ln in cpuinfo.read_text().splitlines()
            if ln.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return (
        f"{cpu}, {os.cpu_count()} cores, {gpu}; Python {platform.python_version()}, "
        f"torch {torch.__version__}"
    )


def write_report(title: str, rows: list[dict], notes: str = "", columns=None) -> None:
    """Print the rows as a markdown table (all their keys, or ``columns``) under a title, with the
    machine and this command, and append it to the report file."""
    table = markdown(rows, columns or list(rows[0]))
    text = (
        f"\n## {title} ({datetime.now():%Y-%m-%d %H:%M})\n\n"
        f"Machine: {machine()}  \nCommand: `{COMMAND}`\n\n{table}\n"
        + (f"\n{notes}\n" if notes else "")
    )
    print(text)
    path = REPORT
    if not path.exists():
        path.write_text("# Benchmarks\n\nAppended by `scripts/benchmark.py`; newest last.\n")
    with path.open("a") as f:
        f.write(text)


def markdown(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def run_measured(command: list[str]) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in GiB of that process, exit code)."""
    start = time.time()
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        print(stderr[-2000:], file=sys.stderr)
    return time.time() - start, usage.ru_maxrss / 2**20, proc.returncode  # ru_maxrss: KiB


def steady(epochs: list[dict]) -> float:
    """Samples per second: the median over epochs after the first (warm-up)."""
    rates = [e["samples"] / e["seconds"] for e in epochs[1:] or epochs]
    return statistics.median(rates)


def on_core(core: int | None):
    """preexec_fn for subprocess: run the child on this CPU core alone (None: anywhere)."""
    return None if core is None else lambda: os.sched_setaffinity(0, {core})


def run_zoo_throughput(
    overrides: list[str],
    epochs: int,
    folder: Path,
    core: int | None = None,
    callback: str = "mlzoo.callbacks.throughput.Throughput",
    env: dict[str, str] | None = None,
) -> dict:
    """`python train.py <overrides>` with the Throughput callback, or ``callback`` (a subclass
    of it), on one core or any. Returns its throughput.json with the launch time, the
    whole run's seconds and what it printed (``stdout``, ``stderr``)."""
    logs = folder / "logs"
    launched = time.time()
    out = subprocess.run(
        [
            sys.executable,
            "train.py",
            *overrides,
            f"trainer.max_epochs={epochs}",
            "test=false",
            f"paths.log_dir={logs}",
            f"+callbacks.throughput._target_={callback}",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        preexec_fn=on_core(core),
        env=env,
    )
    if out.returncode != 0:
        sys.exit(f"benchmark run failed: {' '.join(overrides)}\n{out.stderr[-2000:]}")
    total = time.time() - launched
    (report,) = logs.glob("runs/*/*/throughput.json")
    result = json.loads(report.read_text())
    report.unlink()  # the next run's report is then the only one
    return {
        "launched": launched,
        "total": total,
        "stdout": out.stdout,
        "stderr": out.stderr,
        **result,
    }
