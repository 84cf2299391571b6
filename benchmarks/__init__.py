"""The benchmarks: ``python benchmarks/run.py <benchmark>`` from the repository root (README.md
here says what each measures). One module per benchmark (overhead, quality, gpu, rl, dpo, envs),
what they share (common: the machine, the report, the records, the zoo's timed runs), and what
their runs load: the Throughput callback, the overhead benchmark's plain loop and its interleaved
callback, the synthetic image sets, and the workers that run another library (sb3_worker,
dpo_worker).

Each benchmark module has ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``main(args)``.
Nothing here imports torch at import time, so ``run.py --help`` stays fast. The package imports
mlzoo; mlzoo never imports it (a run loads its callbacks and data modules by name, with
``allow_targets=[benchmarks]``).
"""
