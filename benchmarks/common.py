"""What the benchmarks share: the machine, the report (a markdown table appended to
BENCHMARKS.md, or --report), the record (one JSON line appended to
benchmarks/results/<benchmark>.jsonl, or --results), and the zoo's runs with the Throughput
callback (benchmarks/throughput.py)."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from datetime import datetime
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "BENCHMARKS.md"  # where tables are appended; run.py sets it from --report
RESULTS = ROOT / "benchmarks" / "results"  # where records are appended; run.py: --results
BENCHMARK = "benchmark"  # the subcommand, which names its records' file; run.py sets it
COMMAND = "python benchmarks/run.py " + shlex.join(sys.argv[1:])
# Versions a record notes, those installed: the zoo's stack and the libraries compared with.
PACKAGES = ("mlzoo", "torch", "lightning", "torchvision", "gymnasium", "stable-baselines3",
            "transformers", "peft", "trl")  # fmt: skip


# What an environment of a benchmark needs beyond the core install: (module, package, extra)
ENV_NEEDS = {
    "lunarlander": [("Box2D", "Box2D", "rl")],
    "pong": [("ale_py", "ale-py", "rl"), ("cv2", "opencv", "rl")],
}


def refuse_missing(what: str, needs: list[tuple[str, str, str]]) -> bool:
    """Print one ``error:`` line naming the extra for the first of ``needs`` that is not
    installed (before any run starts, instead of a run's failure later); True if one was."""
    from mlzoo.base.extras import installed, missing  # (--help imports nothing of the zoo)

    for module, package, extra in needs:
        if not installed(module):
            print(f"error: {missing(what, package, extra)}", file=sys.stderr)
            return True
    return False


def env_needs(names) -> list[tuple[str, str, str]]:
    """What the environments ``names`` (lunarlander_continuous: as lunarlander) need."""
    return [n for name in names for key, need in ENV_NEEDS.items() if key in name for n in need]


def machine_info() -> dict:
    """The CPU, its cores, the GPU (or "no GPU") and the Python and torch versions."""
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
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "gpu": gpu,
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def machine() -> str:
    m = machine_info()
    return f"{m['cpu']}, {m['cores']} cores, {m['gpu']}; Python {m['python']}, torch {m['torch']}"


def versions() -> dict[str, str]:
    """The installed versions of PACKAGES (those not installed left out)."""
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def git_commit() -> str | None:
    """The checkout's commit, "+dirty" when files differ from it (None outside git)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def append_record(title: str, rows: list[dict], notes: str, extra: dict | None = None) -> Path:
    """One JSON line in RESULTS/<BENCHMARK>.jsonl: when, where (machine, versions, commit), the
    command, the table's rows and its notes (and ``extra``: more rows, e.g. rl's per seed)."""
    record = {
        "benchmark": BENCHMARK,
        "title": title,
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine_info(),
        "versions": versions(),
        "commit": git_commit(),
        "command": COMMAND,
        "rows": rows,
        "notes": notes,
        **(extra or {}),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{BENCHMARK}.jsonl"
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")
    return path


def write_report(
    title: str, rows: list[dict], notes: str = "", columns=None, extra: dict | None = None
) -> None:
    """Print the rows as a markdown table (all their keys, or ``columns``) under a title, with the
    machine and this command, append it to the report file, and append the record
    (:func:`append_record`; ``extra``: more of its fields)."""
    table = markdown(rows, columns or list(rows[0]))
    text = (
        f"\n## {title} ({datetime.now():%Y-%m-%d %H:%M})\n\n"
        f"Machine: {machine()}  \nCommand: `{COMMAND}`\n\n{table}\n"
        + (f"\n{notes}\n" if notes else "")
    )
    print(text)
    path = REPORT
    if not path.exists():
        path.write_text("# Benchmarks\n\nAppended by `benchmarks/run.py`; newest last.\n")
    with path.open("a") as f:
        f.write(text)
    append_record(title, rows, notes, extra)


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
    callback: str = "benchmarks.throughput.Throughput",
    allow: tuple[str, ...] = (),
) -> dict:
    """`python train.py <overrides>` with the Throughput callback, or ``callback`` (a subclass
    of it), on one core or any. The run may build what benchmarks/ defines (its callbacks, its
    data modules) and what ``allow`` names: train.py's allow_targets. Returns its
    throughput.json with the launch time, the whole run's seconds and what it printed
    (``stdout``, ``stderr``)."""
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
            f"allow_targets=[{','.join(['benchmarks', *allow])}]",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        preexec_fn=on_core(core),
    )
    if out.returncode != 0:
        sys.exit(f"benchmark run failed: {' '.join(overrides)}\n{out.stderr[-2000:]}")
    total = time.time() - launched
    (report,) = logs.rglob("throughput.json")  # runs/<name>/.../<time>/
    result = json.loads(report.read_text())
    report.unlink()  # the next run's report is then the only one
    return {
        "launched": launched,
        "total": total,
        "stdout": out.stdout,
        "stderr": out.stderr,
        **result,
    }
