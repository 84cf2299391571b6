"""Every config Hydra composes is checked before Hydra acts on it.

Hydra sets up logging (``hydra.job_logging``: handlers it constructs by class name), builds its
callbacks, launcher and sweeper, and writes ``.hydra/`` into the run folder, all before the task
function (mlzoo.run.train.train) starts. So the checks that must come first run on the composition
itself: the trust check of mlzoo.run.targets over Hydra's section (train() checks the rest before
it builds anything), and, for the command line's own composition, a run (or sweep) folder that
can be created and does not already hold a run (Hydra would write over its .hydra/ and train.log).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationKeyError

from mlzoo.base.errors import ZooError, one_line
from mlzoo.base.extras import missing
from mlzoo.run.files import check_can_create, run_artifacts
from mlzoo.run.private import wrap_hydra_composition
from mlzoo.run.targets import check_interpolations, check_tree

_GUARDED = False
_FIRST = [True]  # the next composition is the command line's own


def _command_line_allow(overrides: list[str]) -> tuple[str, ...]:
    """allow_targets as the command line gives it: a config file cannot grant it to itself."""
    for item in overrides:
        if re.match(r"^\+*allow_targets=", item):
            value = item.split("=", 1)[1].strip("[] ")
            return tuple(v.strip(" '\"") for v in value.split(",") if v.strip())
    return ()


def _resolved(cfg: DictConfig, key: str) -> str | None:
    """A key of a freshly composed config, resolved as Hydra will resolve it (``hydra:``
    interpolations read HydraConfig, which Hydra sets only later: set it for a copy, then back)."""
    import copy

    from hydra.core.hydra_config import HydraConfig

    holder = HydraConfig.instance()
    before = holder.cfg
    try:
        holder.set_config(copy.deepcopy(cfg))
        value = OmegaConf.select(holder.cfg, key)
    except InterpolationKeyError as err:  # a run folder's name holds the overrides (seed=${nope})
        said = str(err).splitlines()[0]
        raise ZooError(
            f"{key} cannot be resolved: {said} (an interpolation on the command line?)"
        ) from None
    except Exception:
        return None  # not resolvable yet: Hydra itself will report it
    finally:
        holder.cfg = before
    return None if value is None else str(value)


def _check_new_folder(cfg: DictConfig, option: str) -> None:
    """Refuse a run (or sweep) folder that cannot be created, or already holds a run."""
    if os.environ.get("LOCAL_RANK", "0") != "0":
        return  # a DDP rank Lightning started: it joins rank 0's folder, on purpose
    folder = _resolved(cfg, option)
    if folder is None:
        return
    check_can_create(folder, option)
    path = Path(folder)
    if path.is_dir():
        found = run_artifacts(path)
        if found:
            raise ZooError(
                f"{option}={path} already holds a run ({', '.join(found)}); nothing earlier is "
                "overwritten: choose a new folder (to continue that run: ckpt_path=<its "
                "checkpoints/last.ckpt>)"
            )
        if option == "hydra.sweep.dir" and any(path.iterdir()):
            raise ZooError(f"{option}={path} is not empty; choose a new folder for the sweep")


def _nearest_keys(message: str, overrides: list[str], compose_with) -> str | None:
    """For Hydra's "Could not override 'a.b'" (a key no config has): the nearest keys that
    exist, instead of Hydra's hint to add it with +a.b (which then fails as an unexpected
    argument). None for any other composition error."""
    import difflib

    found = re.match(r"Could not override '([^']+)'", message)
    if not found:
        return None
    key = found.group(1)
    rest = [o for o in overrides if o.split("=", 1)[0].lstrip("~+") != key]
    try:
        cfg = compose_with(rest)
    except Exception:
        return None
    keys: list[str] = []

    def walk(node, prefix: str) -> None:
        for k, v in node.items():
            path = f"{prefix}.{k}" if prefix else str(k)
            keys.append(path)
            if isinstance(v, dict):
                walk(v, path)

    walk(OmegaConf.to_container(cfg, resolve=False), "")
    close = difflib.get_close_matches(key, [k for k in keys if not k.startswith("hydra.")], 2, 0.8)
    close = close or difflib.get_close_matches(key.rsplit(".", 1)[-1], keys, 2, 0.8)
    guess = f"; did you mean {' or '.join(close)}?" if close else ""
    return (
        f"{key} is not a setting of this config{guess} (a new key of your own: "
        f"+{key}=<value>; python train.py --cfg job lists every setting)"
    )


# Hydra's plugins the sweep extra installs: the config group options they add
PLUGINS = {
    ("hydra/sweeper", "optuna"): "hydra-optuna-sweeper",
    ("hydra/launcher", "submitit_local"): "hydra-submitit-launcher",
    ("hydra/launcher", "submitit_slurm"): "hydra-submitit-launcher",
}


def _missing_plugin(err: Exception, overrides: list[str]) -> str | None:
    """For Hydra's "Could not find 'hydra/sweeper/optuna'" (or "Could not load
    'hydra/launcher/submitit_slurm'", inside hydra/launcher=slurm) when the plugin that adds the
    option is not installed: one line naming the extra, and the override that asked for it."""
    found = re.search(r"Could not (?:find|load) '(hydra/\w+)/([^'/]+)'", str(err))
    plugin = PLUGINS.get(found.groups()) if found else None
    if plugin is None:
        return None
    group, option = found.groups()
    what = f"{group}={option}"
    for item in overrides:  # hparams_search=mlp_optuna, hydra/launcher=slurm: what the user typed
        key, _, value = item.lstrip("+~").partition("=")
        if key in ("hparams_search", group) and value and value != option:
            what = f"{key}={value} ({what})"
            break
    return str(missing(what, plugin, "sweep"))


def _missing_option(err: Exception) -> str | None:
    """For Hydra's "Could not find 'model/mlpp'" (an option no config group has, which Hydra
    answers with a dozen lines): one line with the nearest option and the whole list."""
    import difflib

    found = re.search(r"Could not find '([^']+)/([^'/]+)'", str(err))
    options = [str(o) for o in getattr(err, "options", None) or []]
    if not found or not options:
        return None
    group, option = found.groups()
    close = difflib.get_close_matches(option, options, 1, 0.6)
    guess = f"; did you mean {group}={close[0]}?" if close else ""
    return f"Could not find '{group}/{option}'{guess} (the options: {', '.join(options)})"


def install() -> None:
    """Check every config Hydra composes from now on, before Hydra configures logging or builds its
    callbacks, launcher or sweeper; the first composition (the command line's) also refuses a
    run or sweep folder that already holds a run. A refusal prints one ``error:`` line and exits 1.

    (Hydra offers no public hook that runs before it acts on a config: mlzoo.run.private wraps
    the one method every composition passes through.)"""
    global _GUARDED
    _FIRST[0] = True
    if _GUARDED:
        return
    from hydra.errors import ConfigCompositionException, OverrideParseException
    from hydra.types import RunMode

    def guarded(compose: Callable[..., Any]) -> Callable[..., Any]:
        return lambda self, *a, **kw: checked(compose, self, *a, **kw)

    def checked(compose, self, config_name, overrides, run_mode, *args, **kwargs):  # type: ignore
        try:
            cfg = compose(self, config_name, overrides, run_mode, *args, **kwargs)
        except OverrideParseException as err:  # Hydra's message: three lines and a link
            lines = [ln for ln in str(err).splitlines() if ln.strip() and "hydra.cc" not in ln]
            said = one_line("; ".join(lines), 240)
            print(f"error: cannot read the override {err.override!r}: {said}", file=sys.stderr)
            sys.exit(1)
        except ConfigCompositionException as err:
            hint = _missing_plugin(err, list(overrides)) or _missing_option(err)
            hint = hint or _nearest_keys(str(err), list(overrides), lambda o: compose(
                self, config_name, o, run_mode, *args, **kwargs))  # fmt: skip
            if hint is None:
                raise
            print(f"error: {hint}", file=sys.stderr)
            sys.exit(1)
        try:
            # Hydra's own section: what Hydra builds before the run starts. The rest is checked
            # by train() before it builds anything (resolving it here would import torch and
            # Lightning for every --help).
            # The task's resolvers first: Hydra's section repeats the command line's overrides
            # as text (hydra.overrides, hydra.job.override_dirname), so its keys come second.
            task = OmegaConf.to_container(cfg, resolve=False)
            check_interpolations({k: v for k, v in task.items() if k != "hydra"}, "command line")
            hydra_section = task["hydra"]
            allow = _command_line_allow(list(overrides))
            check_tree({"hydra": hydra_section}, allow, "command line", hydra_plugins=True)
            if _FIRST[0]:  # Hydra's first look, to learn the mode: the whole command line
                _FIRST[0] = False
                multi = bool({"-m", "--multirun"} & set(sys.argv[1:]))
                multi = multi or OmegaConf.select(cfg, "hydra.mode") == RunMode.MULTIRUN
                _check_new_folder(cfg, "hydra.sweep.dir" if multi else "hydra.run.dir")
        except ZooError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(1)
        return cfg

    wrap_hydra_composition(guarded)
    _GUARDED = True
