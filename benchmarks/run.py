"""The zoo's benchmarks, run from the repository root: python benchmarks/run.py <benchmark>.

Each prints its table, appends it to BENCHMARKS.md (or --report) with the machine it ran on, and
appends one JSON record (machine, versions, commit, date, command, rows) to
benchmarks/results/<benchmark>.jsonl (or --results <folder>).

    python benchmarks/run.py startup [--repeats 5]
    python benchmarks/run.py overhead [--repeats 5] [--only cnn]
                                      [--mode interleaved|alternating|side-by-side]
    python benchmarks/run.py quality [--only mlp cnn ...]
    python benchmarks/run.py gpu [--device cuda|cpu] [--sets digits mnist cifar10]
                                 [--num-workers 0 8] [--limit-batches 100]
    python benchmarks/run.py rl [--env cartpole acrobot ...] [--algos dqn ppo] [--seeds 0 1 2]
                                                                     (pip install 'mlzoo[bench]')
    python benchmarks/run.py dpo [--steps 10] [--batch 8] [--rounds 2]  (mlzoo[pretrained], trl)
    python benchmarks/run.py envs [--cases pong lunarlander cartpole] [--device cpu|cuda]

Each subcommand is a module of benchmarks/ (its docstring says what it measures and how;
`python benchmarks/run.py <subcommand> --help` prints it); common.py has the machine, the
report, the records and the zoo's timed runs. Their workers: plain_loop.py and interleaved.py
(overhead), sb3_worker.py (rl), dpo_worker.py (dpo). Nothing imports torch before the
arguments are parsed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if not __package__:  # `python benchmarks/run.py`: the repository root on the path, not benchmarks/
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from benchmarks import common, dpo, envs, gpu, overhead, quality, rl, startup

SUBCOMMANDS = (startup, overhead, quality, gpu, rl, dpo, envs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, default=common.REPORT, help="the file tables go to")
    parser.add_argument(
        "--results",
        type=Path,
        default=common.RESULTS,
        help="the folder whose <benchmark>.jsonl gets the run's record",
    )
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
    common.REPORT, common.RESULTS, common.BENCHMARK = args.report, args.results, args.command
    chosen = next(m for m in SUBCOMMANDS if args.command == m.NAME)
    return chosen.main(args)


if __name__ == "__main__":
    sys.exit(main())
