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
from collections.abc import Callable, Iterable
from typing import Any

from omegaconf import DictConfig, OmegaConf

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


# --------------------------------------------------------------------------------------------
# single runs: logs/runs/<name>/<time>_<what differs from the defaults>
# --------------------------------------------------------------------------------------------
# Overrides that are not settings of the experiment: where files go, what to resume, what to
# trust, how many threads, which logger, what the console shows, whether to test. They never name
# a run (nor go to HPARAMS).
NOT_SETTINGS = (
    "hydra",
    "paths",
    "ckpt_path",
    "trust_checkpoint",
    "allow_targets",
    "name",
    "torch_threads",
    "logger",
    "test",
    "callbacks.progress_bar",
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "trainer.log_every_n_steps",
)
# The groups a run's name already says: <model>-<data or env>, or the preset's name.
NAMED_GROUPS = ("model", "data", "env")


def override_key(override: str) -> str:
    """``model.optimizer.lr`` of ``model.optimizer.lr=0.1`` (``+``/``++``/``~`` and a package
    ``@pkg`` dropped)."""
    return _key(override).split("@", 1)[0]


def is_setting(override: str) -> bool:
    """False for the overrides NOT_SETTINGS lists (hydra.run.dir=..., paths.log_dir=..., ...)."""
    key = override_key(override)
    return not any(key == k or key.startswith((f"{k}.", f"{k}/")) for k in NOT_SETTINGS)


def _value_text(value: str) -> str:
    """An override's value as it reads in a folder name: a path by its last part, a list's items
    joined by '+', no quotes or brackets."""
    value = value.strip().strip("'\"")
    if "/" in value:
        value = value.rstrip("/").rsplit("/", 1)[-1] or value
    value = re.sub(r"[\[\]{}()'\" ]", "", value)
    return value.replace(",", "+")


def _short_keys(keys: list[str]) -> dict[str, str]:
    """Each dotted key by its last part, or as many trailing parts as tell it from the others
    (``lr`` for model.optimizer.lr; ``optimizer.lr`` beside a model.scheduler.lr)."""
    short: dict[str, str] = {}
    for key in keys:
        parts = key.replace("/", ".").split(".")
        for n in range(1, len(parts) + 1):
            tail = ".".join(parts[-n:])
            others = [k.replace("/", ".") for k in keys if k != key]
            if not any(o == tail or o.endswith("." + tail) for o in others):
                break
        short[key] = tail
    return short


def _cap(label: str) -> str:
    label = _UNSAFE.sub("_", label).strip(".")  # (a trailing dot: Windows drops it)
    if len(label) > MAX_LABEL:
        digest = hashlib.sha1(label.encode()).hexdigest()[:8]
        label = f"{label[: MAX_LABEL - 9]}~{digest}"
    return label


def single_run_label(
    overrides: Iterable[str], differs: Callable[[str], bool], named: Iterable[str] = ()
) -> str:
    """The settings a single run changed, ``optimizer=sgd,lr=0.1``, in the command line's order,
    safe as a folder name and at most MAX_LABEL characters ('' when none). An override is left
    out when it is no setting (NOT_SETTINGS), sets a group the run's name already says
    (``named``), or ``differs(override)`` is False: it leaves the config as the defaults have it."""
    named = set(named)
    kept = [o for o in overrides if is_setting(o) and override_key(o) not in named and differs(o)]
    short = _short_keys([override_key(o) for o in kept])
    parts = []
    for o in kept:
        key = override_key(o)
        if o.startswith("~"):
            parts.append(f"~{short[key]}")
        else:
            parts.append(f"{short[key]}={_value_text(o.split('=', 1)[1])}")
    return _cap(",".join(parts))


_DEFAULTS_CACHE: dict[tuple[str, ...], Any] = {}


def _named_groups(root: DictConfig) -> tuple[str, ...]:
    """The groups a run's name says: a preset's name says the preset (its model and data are its
    own), <model>-<data> says model, data and env."""
    if OmegaConf.select(root, "hydra.runtime.choices.experiment"):
        return ("experiment",)
    return (*NAMED_GROUPS, "experiment")


def _defaults_of(root: DictConfig, overrides: list[str]) -> Any:
    """The config these overrides would start from: composed again with only what the run's
    name says (the preset, else model, data and env). None where it cannot be composed."""
    from hydra import compose
    from hydra.core.global_hydra import GlobalHydra

    groups = _named_groups(root)
    named = [o for o in overrides if override_key(o) in groups and not o.startswith("~")]
    cache_key = tuple(named)
    if cache_key not in _DEFAULTS_CACHE:
        base = None
        if GlobalHydra.instance().is_initialized():
            try:
                config_name = OmegaConf.select(root, "hydra.job.config_name") or "train"
                base = compose(config_name, overrides=named, return_hydra_config=True)
            except Exception:
                base = None
        _DEFAULTS_CACHE[cache_key] = base
    return _DEFAULTS_CACHE[cache_key]


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def changes_config(override: str, root: DictConfig, base: Any) -> bool:
    """Whether an override makes the run's config differ from ``base`` (its defaults): a group
    option other than the default one, a value other than the default value. True when unsure."""
    if base is None or (override.startswith(("~", "+")) and not override.startswith("++")):
        return True
    key = override_key(override)
    try:
        choices = OmegaConf.select(root, "hydra.runtime.choices") or {}
        if key in choices:
            return choices[key] != OmegaConf.select(base, f"hydra.runtime.choices.{key}")
        ours, theirs = OmegaConf.select(root, key), OmegaConf.select(base, key)
        return _plain(ours) != _plain(theirs)
    except Exception:
        return True


def run_suffix(overrides: Iterable[str], root: DictConfig) -> str:
    """``_<label>`` for a single run's folder (after its time), '' when it changed nothing."""
    overrides = [str(o) for o in overrides]
    named = _named_groups(root)
    candidates = [o for o in overrides if is_setting(o) and override_key(o) not in named]
    if not candidates:
        return ""  # nothing to compare: no second composition
    base = _defaults_of(root, overrides)
    label = single_run_label(candidates, lambda o: changes_config(o, root, base), named)
    return f"_{label}" if label else ""


def _resolve_label(overrides: Any, fallback: str, kind: str = "sweep", *, _root_: Any) -> str:
    if kind == "single":
        return run_suffix(overrides, _root_)
    return run_label(overrides, fallback, sys.argv[1:])


def register_resolvers() -> None:
    """``${mlzoo_run_label:${hydra.overrides.task},${name}}``, a sweep job's folder, and
    ``${mlzoo_run_label:${hydra.overrides.task},${name},single}``, the ``_<label>`` ending a
    single run's folder ('' when it changed nothing): configs/hydra/default.yaml."""
    if not OmegaConf.has_resolver("mlzoo_run_label"):
        OmegaConf.register_new_resolver("mlzoo_run_label", _resolve_label)
