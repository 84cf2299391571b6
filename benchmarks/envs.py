"""envs: an agent's training speed with its envs stepped in this process (data.vectorization=sync)
or each in a worker process of its own (async), side by side, alternating, on the same machine:
env steps per second over whole training iterations (rollout and update, PPO), the first epoch
left out as warm-up. Async pays a pipe round trip per step and wins where a step is costly and
cores are free (Atari frames), so the default case is experiment=ppo_atari (8 envs of Pong).

    python benchmarks/run.py envs                                   # Pong, PPO, on the CPU
    python benchmarks/run.py envs --device cuda --cases pong lunarlander
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from benchmarks.common import env_needs, refuse_missing, run_zoo_throughput, write_report

NAME, HELP = "envs", "env steps/s with sync vs async (worker process) vector envs"
CASES = {  # name: (overrides, env steps per training iteration)
    "pong": (["experiment=ppo_atari", "~callbacks.video"], 8 * 128),
    "lunarlander": (["experiment=ppo_lunarlander", "~callbacks.video"], 16 * 1024),
    "cartpole": (["model=ppo"], 8 * 32),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=["pong"])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--epochs", type=int, default=3, help="per run; the first is warm-up")
    parser.add_argument("--iterations", type=int, default=4, help="training iterations per epoch")
    parser.add_argument("--repeats", type=int, default=2, help="runs per mode, alternating")


def main(args: argparse.Namespace) -> int:
    if refuse_missing("benchmarks/run.py envs", env_needs(args.cases)):
        return 1
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases:
            overrides, per_iteration = CASES[case]
            rates: dict[str, list[float]] = {"sync": [], "async": []}
            for repeat in range(args.repeats):
                for mode in rates:
                    run = run_zoo_throughput(
                        [*overrides, f"trainer={'gpu' if args.device == 'cuda' else 'cpu'}",
                         f"data.vectorization={mode}", f"data.iterations_per_epoch={args.iterations}",
                         "++trainer.check_val_every_n_epoch=1000", "~callbacks.progress_bar"],
                        args.epochs, Path(tmp) / f"{case}-{mode}-{repeat}",
                    )  # fmt: skip
                    epochs = run["epochs"][1:] or run["epochs"]
                    rates[mode] += [e["samples"] * per_iteration / e["seconds"] for e in epochs]
            base = statistics.median(rates["sync"])
            for mode, values in rates.items():
                rows.append(
                    {
                        "case": case,
                        "device": args.device,
                        "vectorization": mode,
                        "env steps/s (median of epochs)": round(statistics.median(values)),
                        "vs sync": f"{statistics.median(values) / base:.2f}x",
                        "epochs": len(values),
                    }
                )
    write_report(
        "envs: sync vs async vector envs",
        rows,
        f"{args.repeats} runs per mode, alternating; {args.iterations} iterations per epoch, "
        f"{args.epochs} epochs a run, the first left out.",
    )
    return 0
