"""Resuming a run: which checkpoint and folder, whether it fits, one resume at a time, and no
setting silently ignored.

``ckpt_path=last`` (or a checkpoint in ``<run>/checkpoints/``) continues *in* that run's folder.
Before anything is written:

- the checkpoint must load (weights only) and fit the model and optimizer this command builds;
- the run folder is locked (an flock on the folder, released when the run or its process ends):
  a second resume of the same run while one is going gets one line, not a shared folder;
- the settings a resume restores from the checkpoint (the optimizer's and the schedule's, the
  seed's random state) must be the run's own: a new learning rate would otherwise be silently
  replaced by the saved one. Other changed settings (a longer run, another batch size) apply, and
  the log says which. Every resume writes its config as a new ``config.resume-<time>.yaml``.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mlzoo.base.errors import ZooError, one_line
from mlzoo.run.files import read_config_file
from mlzoo.run.targets import check_interpolations, check_size

# Restored from the checkpoint on resume, so a change to them could not take effect.
RESTORED = ("model.optimizer", "model.scheduler", "seed")
# Where a run is, not what it is: they may differ between a run and its resume.
WHERE = ("paths", "ckpt_path", "hydra", "name", "trust_checkpoint", "allow_targets")


def _check_checkpoint(path: Path, trust: bool = False) -> None:
    """Fail early, with one line, on a missing, corrupt, foreign or pickling checkpoint file, and
    on hyperparameters whose interpolations could build config nodes (nothing is built from them
    on a resume, so their targets are not checked; but a file that tries is not the zoo's)."""
    from mlzoo.run.checkpoint import check_lightning_checkpoint, read_checkpoint

    ckpt = read_checkpoint(path, "ckpt_path", trust)
    check_lightning_checkpoint(ckpt, path)
    recorded = ckpt.get("hyper_parameters")
    if isinstance(recorded, dict):
        check_size(recorded, f"ckpt_path: the hyperparameters of {path}")
        check_interpolations(recorded, f"the hyperparameters of {path}", from_file=True)


def _check_recorded_configs(run_dir: Path) -> None:
    """The configs a resumed run folder holds are compared with the command line's, resolved
    (changed_settings), so they are read as any file from others is (mlzoo.run.files.
    read_config_file) and hold no interpolation (every run writes them resolved)."""
    for record in [run_dir / "config.yaml", *sorted(run_dir.glob("config.resume-*.yaml"))]:
        recorded = read_config_file(record, "ckpt_path: its run's config")
        tree = OmegaConf.to_container(recorded, resolve=False)
        check_interpolations(tree, str(record), from_file=True)


def resolve_resume(cfg: DictConfig, fresh_dir: Path) -> tuple[str | None, Path]:
    """Turn ``ckpt_path`` into a file and the run folder to continue in.

    A checkpoint in ``<run>/checkpoints/`` of a zoo run under ``paths.log_dir`` resumes *in* ``<run>``,
    so TensorBoard curves continue in the same run and no second folder appears; any other file
    starts a new run folder from its weights and training state.
    """
    ckpt = cfg.get("ckpt_path")
    if ckpt is None:
        return None, fresh_dir
    if str(ckpt) == "last":
        log_dir = Path(cfg.paths.log_dir)
        found = [
            p
            for p in log_dir.rglob("last.ckpt")
            if cfg.name in p.parts and fresh_dir.resolve() not in p.resolve().parents
        ]
        if not found:
            raise ZooError(
                f"ckpt_path=last: no last.ckpt of a '{cfg.name}' run under {log_dir.resolve()}; "
                "train one first, or pass ckpt_path=<file>"
            )
        path = max(found, key=lambda p: p.stat().st_mtime)
    else:
        path = Path(str(ckpt)).expanduser()
    _check_checkpoint(path, bool(cfg.get("trust_checkpoint")))
    path = path.absolute()
    run_dir = path.parent.parent
    log_dir = Path(cfg.paths.log_dir).resolve()
    is_zoo_run = (
        path.parent.name == "checkpoints"
        and (run_dir / "config.yaml").is_file()
        and log_dir in run_dir.resolve().parents
    )
    if is_zoo_run:
        _check_recorded_configs(run_dir)
    return str(path), run_dir if is_zoo_run else fresh_dir


def check_fits(ckpt_path: str, model: Any, trust: bool = False) -> None:
    """Refuse, before anything is written, a checkpoint whose weights or optimizer do not match the
    model and optimizer this command line builds (resume with the run's own settings)."""
    from mlzoo.run.checkpoint import read_checkpoint

    ckpt = read_checkpoint(ckpt_path, "ckpt_path", trust)
    try:
        _fits(ckpt_path, ckpt, model)
    except ZooError:
        raise
    except Exception as err:  # a state dict or optimizer state of another shape than Lightning's
        raise ZooError(
            f"ckpt_path: {ckpt_path} holds no training state this zoo can resume "
            f"({type(err).__name__}: {one_line(err, 200)})"
        ) from None


def _fits(ckpt_path: str, ckpt: dict, model: Any) -> None:
    theirs, ours = ckpt["state_dict"], model.state_dict()
    rebuilt = model.rebuilt_keys() if hasattr(model, "rebuilt_keys") else set()
    ours = {k: v for k, v in ours.items() if k in theirs or k not in rebuilt}  # not saved: rebuilt
    for key in sorted(set(theirs) | set(ours)):
        if key not in theirs or key not in ours or theirs[key].shape != ours[key].shape:
            shapes = [tuple(d[key].shape) if key in d else "missing" for d in (theirs, ours)]
            raise ZooError(
                f"ckpt_path: {ckpt_path} does not fit this model: {key} is {shapes[0]} in the "
                f"checkpoint and {shapes[1]} here; resume with the run's own settings "
                "(its config.yaml)"
            )
    saved = ckpt.get("optimizer_states") or []
    if saved:
        configured = model.configure_optimizers()
        if isinstance(configured, dict):
            configured = configured["optimizer"]
        if isinstance(configured, tuple) and len(configured) == 2:  # ([optimizers], [schedulers])
            configured = configured[0]
        optimizers = configured if isinstance(configured, list | tuple) else [configured]
        optimizers = [o["optimizer"] if isinstance(o, dict) else o for o in optimizers]
        if len(optimizers) != len(saved):
            raise ZooError(
                f"ckpt_path: {ckpt_path} holds {len(saved)} optimizer states, this model has "
                f"{len(optimizers)} optimizers; resume with the run's own settings"
            )
        for optimizer, state in zip(optimizers, saved, strict=True):
            # every setting of this optimizer must be in the saved groups (a concept may add
            # its own keys to a group, e.g. PPO's base_lr for its annealing)
            keys = set(state["param_groups"][0]) - {"params", "initial_lr"}
            if not set(optimizer.defaults) <= keys:
                raise ZooError(
                    f"ckpt_path: {ckpt_path} was written with another optimizer (its settings "
                    f"{sorted(keys)}, this one's {sorted(optimizer.defaults)}); resume with the "
                    "run's own optimizer"
                )


@contextmanager
def lock_run(run_dir: Path) -> Iterator[None]:
    """An exclusive lock on ``run_dir`` while the context lasts (an flock on the folder itself,
    so no lock file is left in the run; the kernel drops it if the process dies)."""
    handle = os.open(run_dir, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(handle)
        raise ZooError(
            f"ckpt_path: {run_dir} is being resumed by another process; wait for it to end "
            "(two resumes of one run would write over each other)"
        ) from None
    try:
        yield
    finally:
        os.close(handle)  # closing the descriptor releases the lock


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: node}


def _recorded_config(run_dir: Path) -> dict[str, Any] | None:
    """The settings the run last trained with: its newest resume record, else config.yaml."""
    records = sorted(run_dir.glob("config.resume-*.yaml")) or [run_dir / "config.yaml"]
    try:
        recorded = read_config_file(records[-1], "ckpt_path: its run's config")
        return OmegaConf.to_container(recorded, resolve=True)
    except Exception:
        return None  # unreadable or missing: nothing to compare with


def changed_settings(cfg: DictConfig, run_dir: Path) -> list[str]:
    """Refuse changes a resume cannot honour; return the others as ``key: old -> new`` lines."""
    recorded = _recorded_config(run_dir)
    if recorded is None:
        return []
    before = _flat(recorded)
    now = _flat(OmegaConf.to_container(cfg, resolve=True))
    applied = []
    for key in sorted(set(before) | set(now)):
        if key.split(".")[0] in WHERE or before.get(key) == now.get(key):
            continue
        old, new = before.get(key, "(unset)"), now.get(key, "(unset)")
        if any(key == r or key.startswith(r + ".") for r in RESTORED):
            raise ZooError(
                f"ckpt_path: {key} was {old} in {run_dir.name}, {new} here, but resuming restores "
                "the optimizer, its schedule and the random state from the checkpoint, so the "
                f"change would be ignored. Resume with {key}={old}, or train a new run"
            )
        applied.append(f"{key}: {old} -> {new}")
    return applied


def resume_record(run_dir: Path) -> Path:
    """A new name for this resume's config, never one already there."""
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S_%f")
    path = run_dir / f"config.resume-{stamp}.yaml"
    n = 1
    while path.exists():
        path, n = run_dir / f"config.resume-{stamp}-{n}.yaml", n + 1
    return path


def is_rank_zero_process() -> bool:
    """False in the extra processes Lightning starts for DDP (they share rank zero's folder)."""
    return os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"
