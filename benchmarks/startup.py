"""startup: how long the command line takes to answer, and to start training.

Median seconds over --repeats runs of each command, the commands taking turns (run 1 of each,
then run 2 of each, ...) so that the machine's swings hit all of them alike:
  `python train.py --help`;
  a typo'd key (`data.batchsize=8`), a bad value (`data.batch_size=0`) and an unknown option
  (`model=mlpp`): each answered with one `error:` line, before torch or Lightning is imported;
  launch to the first training step of the default run (`python train.py`, the MLP on digits),
  against the same for a plain PyTorch script that trains the same MLP on the same digits
  (benchmarks/plain_first_step.py): process start to the first training batch, from the
  benchmark's clock before the launch to the time the process notes at that batch.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import ROOT, run_zoo_throughput, write_report

NAME, HELP = "startup", "seconds to --help, to a config error, and to the first training step"
ANSWERS = {  # name: train.py's arguments, answered without training
    "train.py --help": ["--help"],
    "typo'd key: data.batchsize=8": ["data.batchsize=8"],
    "bad value: data.batch_size=0": ["data.batch_size=0"],
    "unknown option: model=mlpp": ["model=mlpp"],
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeats", type=int, default=5)


def _answer(args: list[str], folder: Path) -> float:
    start = time.time()
    subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=folder, capture_output=True)
    return time.time() - start


def _plain_first_step() -> float:
    launched = time.time()
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "plain_first_step.py")],
        capture_output=True,
        text=True,
        check=True,
    )
    first = next(ln for ln in out.stdout.splitlines() if ln.startswith("FIRST_STEP "))
    return float(first.split()[1]) - launched


def main(args: argparse.Namespace) -> int:
    seconds: dict[str, list[float]] = {name: [] for name in ANSWERS}
    zoo, plain = "launch to 1st step: python train.py", "launch to 1st step: plain PyTorch"
    seconds[zoo], seconds[plain] = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for name, argv in ANSWERS.items():
                seconds[name].append(_answer(argv, Path(tmp)))
            run = run_zoo_throughput(["logger=none"], 1, Path(tmp))
            seconds[zoo].append(run["first_step_at"] - run["launched"])
            seconds[plain].append(_plain_first_step())
            print({k: round(v[-1], 2) for k, v in seconds.items()}, flush=True)
    rows = [
        {
            "command": name,
            "median s": f"{statistics.median(s):.2f}",
            "min s": f"{min(s):.2f}",
            "max s": f"{max(s):.2f}",
        }
        for name, s in seconds.items()
    ]
    ratio = statistics.median(seconds[zoo]) / statistics.median(seconds[plain])
    write_report(
        f"startup: answers and the first training step ({args.repeats} runs each, taking turns)",
        rows,
        f"Launch to the first step, the zoo over the plain script: {ratio:.2f}x. The zoo's "
        "first step comes after composing the config, the checks, building the data module, "
        "model, loggers and Trainer, and Lightning's sanity validation steps.",
    )
    return 0
