"""Sweep runs named by what they sweep: ``logs/multiruns/<time>/<n>-optimizer=sgd,seed=1``.

The folder name is also the run's name in TensorBoard's legend and in compare_runs.py, so it
should say what differs between the runs of a sweep. A job's overrides that appear word for word
on the command line were the same for every job (``trainer=debug``); the others came from the
sweep (``seed=0,1`` expanded, a preset's sweeper params, Optuna's samples). The label lists
those, and falls back to the run's name (``mlp-digits``) when nothing was swept.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Iterable

from omegaconf import OmegaConf

MAX_LABEL = 60  # characters; longer labels keep their start and a hash of the whole
_UNSAFE = re.compile(r"[^\w.=,+~@%-]")  # '/' would nest folders; quotes and spaces annoy shells


_SWEEP = re.compile(r"^(range|choice|interval|glob|shuffle|sort|tag)\(|,")  # Hydra's sweep syntax


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def run_label(job_overrides: Iterable[str], fallback: str, argv: Iterable[str] = ()) -> str:
    """The swept ``key=value`` overrides of one job, joined by commas, safe as a folder name.
    An override is swept unless the command line (``argv``) sets its key to one plain value."""
    fixed = {_key(a) for a in argv if "=" in a and not _SWEEP.search(a.split("=", 1)[1])}
    swept = [o for o in job_overrides if _key(o) not in fixed and not o.startswith("hydra.")]
    label = _UNSAFE.sub("_", ",".join(swept)) or fallback
    if len(label) > MAX_LABEL:
        digest = hashlib.sha1(label.encode()).hexdigest()[:8]
        label = f"{label[: MAX_LABEL - 9]}~{digest}"
    return label


def register_resolvers() -> None:
    """``${mlzoo_run_label:${hydra.overrides.task},${name}}`` (configs/hydra/default.yaml)."""
    if not OmegaConf.has_resolver("mlzoo_run_label"):
        OmegaConf.register_new_resolver(
            "mlzoo_run_label",
            lambda overrides, fallback: run_label(overrides, fallback, sys.argv[1:]),
        )
