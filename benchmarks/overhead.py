"""overhead: the zoo's training (Lightning, Hydra, TensorBoard logging, metrics, checkpoints, the
progress bar: a default run) against a plain PyTorch loop (benchmarks/plain_loop.py) of the same
network (the same module object, pickled with its initial weights), the same training tensors,
batch size and optimizer, and the same way of batching (a DataLoader, or with data.on_device
tensors indexed per batch), one torch thread each (steadier figures on a shared machine; the
overhead is per step, not per thread). Throughput counts training batches only (data loading,
step, hooks and logging included; validation and checkpointing excluded: the plain loop has
none), over the epochs after the first. Three ways to run them:
  interleaved (default): in the zoo's own process, one plain step after every zoo step
    (benchmarks/interleaved.py), each epoch timing both over the same stretch of time: on this
    shared machine the speed of the same loop swings by a third within seconds, which whole
    runs one after the other cannot separate from overhead;
  alternating: separate processes, one after the other (who goes first swapped every pair);
    also gives whole-run totals; the fastest epochs compared too (timeit's rule);
  side-by-side: separate processes at the same time, one core each.
Start-up: `python train.py --help`, and the time from a process launch to its first training step.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import ROOT, run_zoo_throughput, steady, write_report
from benchmarks.overhead_runs import (
    plain_epochs,
    plain_inputs,
    ratios,
    run_interleaved,
    run_overhead_plain,
    run_side_by_side,
)

NAME, HELP = "overhead", "MLP and CNN training vs a plain PyTorch loop"
OVERHEAD_RUNS = {  # name: (overrides, epochs); the plain loop batches as the zoo's data path does
    "mlp, digits 8x8": (["model=mlp"], 30),
    "cnn, digits 28x28": (["model=cnn", "data.image_size=28"], 8),
    "mlp, digits 8x8, on_device": (["model=mlp", "data.on_device=true"], 30),
    "cnn, digits 28x28, on_device": (["model=cnn", "data.image_size=28", "data.on_device=true"], 8),
}
OVERHEAD_MODES = {  # --mode: how the report's title describes the runs
    "interleaved": "runs, each taking a plain-loop step after every zoo step",
    "alternating": "runs each, alternating",
    "side-by-side": "pairs side by side, one core each",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", nargs="+", help="rows whose name contains one of these words")
    parser.add_argument(
        "--mode",
        choices=list(OVERHEAD_MODES),
        default="interleaved",
        help="interleaved: a plain step after each zoo step, in the zoo's process; alternating: "
        "separate processes one after the other; side-by-side: separate processes at the same "
        "time, one core each (cores swapped every pair)",
    )


def _best(epochs: list[dict]) -> float:
    """Samples per second of the fastest epoch after the first."""
    return max(e["samples"] / e["seconds"] for e in epochs[1:] or epochs)


def _to_first_step(runs: list[dict]) -> str:
    """Median seconds from a process launch to its first training step."""
    return f"{statistics.median(r['first_step_at'] - r['launched'] for r in runs):.1f}"


def _interleaved_row(zoo: list[dict], plain: list[dict]) -> dict:
    """A table row from interleaved runs (``plain``: separate plain processes, for start-up)."""
    per_run = sorted(statistics.median(ratios(r)) for r in zoo)
    every = [x for r in zoo for x in ratios(r)]
    deciles = statistics.quantiles(every, n=10, method="inclusive")
    return {
        "zoo samples/s": round(statistics.median(steady(r["epochs"]) for r in zoo)),
        "plain samples/s": round(statistics.median(steady(plain_epochs(r)) for r in zoo)),
        "ratio": f"{statistics.median(every):.2f}",
        "ratio per run (min-max)": f"{per_run[0]:.2f}-{per_run[-1]:.2f}",
        "ratio, epochs (10th-90th pct)": f"{deciles[0]:.2f}-{deciles[-1]:.2f}",
        "zoo s to 1st step": _to_first_step(zoo),
        "plain s to 1st step": _to_first_step(plain),
    }


def _separate_row(zoo: list[dict], plain: list[dict], side_by_side: bool) -> dict:
    """A table row from zoo and plain runs in processes of their own."""
    z = statistics.median(steady(r["epochs"]) for r in zoo)
    p = statistics.median(steady(r["epochs"]) for r in plain)
    # timeit's rule for a shared machine: the fastest epoch is the least disturbed one;
    # each zoo run is compared with the plain run beside it in time
    pairs = sorted(_best(a["epochs"]) / _best(b["epochs"]) for a, b in zip(zoo, plain, strict=True))

    def fastest(rs):
        return max(_best(r["epochs"]) for r in rs)

    def total(rs):
        return statistics.median(r["total"] for r in rs)

    return {
        "zoo samples/s": round(z),
        "plain samples/s": round(p),
        "ratio": f"{z / p:.2f}",
        "ratio, fastest epochs (pairs: min-max)": f"{statistics.median(pairs):.2f} "
        f"({pairs[0]:.2f}-{pairs[-1]:.2f})",
        "ratio, fastest epoch of all runs": f"{fastest(zoo) / fastest(plain):.2f}",
        "zoo s to 1st step": _to_first_step(zoo),
        # side by side, the plain loop is stopped with the zoo: no start-up or total
        "plain s to 1st step": "-" if side_by_side else _to_first_step(plain),
        "zoo s total": f"{total(zoo):.1f}",
        "plain s total": "-" if side_by_side else f"{total(plain):.1f}",
    }


def _runs(args: argparse.Namespace, overrides: list[str], epochs: int, tmp: Path, cores) -> dict:
    """One table row: ``args.repeats`` zoo runs and plain runs of one network, as --mode says."""
    spec = plain_inputs(overrides, tmp)
    zoo, plain = [], []
    one_thread = [*overrides, "torch_threads=1"]
    for i in range(args.repeats):  # alternately, who goes first swapped: drifts hit both
        if args.mode == "interleaved":  # the plain process only for its start-up
            zoo.append(run_interleaved(one_thread, spec, epochs, tmp))
            plain.append(run_overhead_plain(spec, 1))
        elif cores:  # at the same time instead, cores swapped every pair
            pair_cores = cores if i % 2 == 0 else cores[::-1]
            z, p = run_side_by_side(one_thread, spec, epochs, tmp, pair_cores)
            zoo.append(z)
            plain.append(p)
        else:
            if i % 2:
                plain.append(run_overhead_plain(spec, epochs))
            zoo.append(run_zoo_throughput(one_thread, epochs, tmp))
            if not i % 2:
                plain.append(run_overhead_plain(spec, epochs))
    if args.mode == "interleaved":
        return _interleaved_row(zoo, plain)
    return _separate_row(zoo, plain, side_by_side=bool(cores))


def main(args: argparse.Namespace) -> int:
    cores = sorted(os.sched_getaffinity(0))[:2] if args.mode == "side-by-side" else None
    if cores is not None and len(cores) < 2:
        sys.exit("overhead --mode side-by-side needs two CPU cores")
    help_s = []
    for _ in range(3):
        start = time.time()
        subprocess.run(
            [sys.executable, "train.py", "--help"], check=True, capture_output=True, cwd=ROOT
        )
        help_s.append(time.time() - start)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (overrides, epochs) in OVERHEAD_RUNS.items():
            if args.only and not any(word in name for word in args.only):
                continue
            row = _runs(args, overrides, epochs, Path(tmp), cores)
            rows.append({"run": name, "epochs": epochs, **row})
            print(json.dumps(rows[-1]), flush=True)
    if args.mode == "interleaved":
        how = (
            "Interleaved: in each zoo run, after every zoo training step, one step of the plain "
            "loop (its own copy of the network and optimizer, its own batches), timed; per epoch "
            "the plain loop's time is the sum of its steps, the zoo's the epoch's wall time minus "
            "that, so both are measured over the same stretch of time. Ratio: the median over "
            "the epochs after the first of all runs, of the zoo's samples/s over the plain "
            "loop's in the same epoch; its range over the runs' medians and over the epochs. "
            "'plain s to 1st step': a separate plain process per run."
        )
    else:
        how = (
            "Ratio: the zoo's training samples/s over the plain loop's, of the medians over "
            "epochs and runs; and per pair of runs beside each other in time, of their fastest "
            "epochs (timeit's rule: on a shared machine the fastest is the least disturbed): the "
            "median pair and the range; and of the fastest epoch over all runs of each. 'total' "
            "includes the zoo's validation and checkpoint after every epoch, which the plain "
            "loop does not do."
        )
        if cores:
            how += (
                " Side by side: each pair ran at the same time, each on a core of its own "
                "(swapped every pair); the plain loop's epochs that ran during the zoo's "
                "training count."
            )
    write_report(
        f"overhead: the zoo vs a plain PyTorch loop ({args.repeats} {OVERHEAD_MODES[args.mode]})",
        rows,
        f"`python train.py --help`: {statistics.median(help_s):.2f} s (median of 3). "
        + how
        + " Training batches only (1.00: no overhead). Rows without on_device: both batch "
        "through a DataLoader over a TensorDataset (examples collated one by one); "
        "'on_device': the zoo with data.on_device=true, the plain loop indexing its tensors "
        "with a permutation per batch.",
    )
    return 0
