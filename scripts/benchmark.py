"""Benchmarks, each printed as a table and appended to BENCHMARKS.md with the machine it ran on.

    python scripts/benchmark.py overhead [--repeats 5] [--only cnn]
                                         [--mode interleaved|alternating|side-by-side]
    python scripts/benchmark.py quality [--only mlp cnn ...]
    python scripts/benchmark.py gpu [--device cuda|cpu] [--sets digits mnist cifar10]
                                    [--num-workers 0 8] [--limit-batches 100]
    python scripts/benchmark.py rl [--env cartpole acrobot ...] [--algos dqn ppo] [--seeds 0 1 2]
                                                                     (pip install 'mlzoo[bench]')
    python scripts/benchmark.py dpo [--steps 10] [--batch 8] [--rounds 2]  (mlzoo[pretrained], trl)
    python scripts/benchmark.py envs [--cases pong lunarlander cartpole] [--device cpu|cuda]

Each subcommand is a module of scripts/bench/ (its docstring says what it measures and how;
`python scripts/benchmark.py <subcommand> --help` prints it); bench/common.py has the machine,
the report and the zoo's timed runs. Their workers: scripts/plain_loop.py and interleaved.py
(overhead), bench_sb3.py (rl), bench_dpo.py (dpo). Nothing imports torch before the arguments
are parsed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench import common, dpo, envs, gpu, overhead, quality, rl

SUBCOMMANDS = (overhead, quality, gpu, rl, dpo, envs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, default=common.REPORT, help="the file tables go to")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in SUBCOMMANDS:
        module.add_arguments(
            sub.add_parser(
                module.NAME,
                help=module.HELP,
                description=module.__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter,
            )
        )
    args = parser.parse_args(argv)
    common.REPORT = args.report
    chosen = next(m for m in SUBCOMMANDS if args.command == m.NAME)
    return chosen.main(args)


if __name__ == "__main__":
    sys.exit(main())
