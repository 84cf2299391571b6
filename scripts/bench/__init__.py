"""The subcommands of ``scripts/benchmark.py``, one module each (overhead, quality, gpu, rl, dpo,
envs) and what they share (common: the machine, the report, the zoo's timed runs).

Each module has ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``main(args)``. Nothing here
imports torch at import time, so ``benchmark.py --help`` stays fast; the modules are imported as
``bench.<name>`` with ``scripts/`` on ``sys.path`` (as it is when ``benchmark.py`` runs).
"""
