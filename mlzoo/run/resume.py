"""Resuming a run: which checkpoint and folder, whether it fits, one resume at a time, and no
setting silently ignored.

``ckpt_path=last`` (or a checkpoint in ``<run>/checkpoints/``) continues *in* that run's folder.
Before anything is written:

- the checkpoint must load (weights only) and fit the model and optimizer this command builds;
- the run folder is locked (an flock on the folder, released when the run or its process ends):
  a second resume of the same run while one is going gets one line, not a shared folder;
- the settings a resume restores from the checkpoint (the optimizer's and the schedule's, the
  seed's random state) must be the run's own: a new learning rate would otherwise be silently
  replaced by the saved one. A refusal names what the command line changed (``trainer.max_epochs``
  when ``model.scheduler.T_max`` follows it). Other changed settings (another batch size) apply,
  and the log says which. Every resume writes its config as a new ``config.resume-<time>.yaml``;
- another ``trainer.max_epochs`` (not below the epochs trained) extends a run: a cosine schedule
  whose length follows it is re-planned over the new length without a jump (from the LR the last
  epoch trained with down to eta_min at the new end: mlzoo.base.module.replan_cosine), a step
  schedule keeps stepping, a constant LR stays; a schedule planned for a fixed number of steps
  (OneCycleLR) or a length setting that cannot be re-planned is refused.
"""

from __future__ import annotations

import fcntl
import os
import re
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
            typed = _typed_changes(Path(ckpt_path).parent.parent)
            hint = f"; this command changes {', '.join(typed)}" if typed else ""
            raise ZooError(
                f"ckpt_path: {ckpt_path} does not fit this model: {key} is {shapes[0]} in the "
                f"checkpoint and {shapes[1]} here{hint}; resume with the run's own settings "
                "(its config.yaml), or train a new run"
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


def _typed_changes(run_dir: Path) -> list[str]:
    """The command line's overrides (Hydra's record of what the user typed) that change a setting
    of the run in ``run_dir``, as typed, e.g. ``model.net.hidden_sizes=[32]``: what a refusal
    names. Config-group choices (``net=...``) are kept; a key whose typed value equals the run's
    is dropped. Empty outside a Hydra run or for a checkpoint outside a zoo run folder."""
    import yaml
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    try:
        typed = list(HydraConfig.get().overrides.task)
    except Exception:
        return []
    recorded = _recorded_config(run_dir) if (run_dir / "config.yaml").is_file() else None
    if not recorded:
        return []
    before = _flat(recorded)
    try:  # what the run itself was started with (its config groups, e.g. trainer=debug)
        own = set(OmegaConf.load(run_dir / ".hydra" / "overrides.yaml"))
    except Exception:
        own = set()
    out = []
    for item in typed:
        key, _, value = item.partition("=")
        key = key.lstrip("~+")
        if key.split(".")[0] in WHERE or key == "ckpt_path" or item in own:
            continue
        if key in before:
            try:
                if yaml.safe_load(value) == before[key]:
                    continue
            except yaml.YAMLError:
                pass
        out.append(item)
    return out


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


# The one schedule a resume can re-plan over a new length (its length setting): the module
# re-plans it once Lightning has restored it (mlzoo.base.module.replan_cosine).
REPLANNED = {"torch.optim.lr_scheduler.CosineAnnealingLR": "T_max"}
# Schedules planned for a fixed number of steps that cannot run past it.
FIXED_LENGTH = ("torch.optim.lr_scheduler.OneCycleLR",)
LENGTH = ("trainer.max_epochs", "trainer.max_steps")
_REFERENCE = re.compile(r"\$\{([A-Za-z_][\w.]*)\}")


def _restored(key: str) -> bool:
    return any(key == r or key.startswith(r + ".") for r in RESTORED)


def _sources(cfg: DictConfig) -> dict[str, list[str]]:
    """For each setting whose value interpolates others (``T_max: ${trainer.max_epochs}``), the
    settings it follows, through chains of interpolations: what a user types to change it."""
    raw = _flat(OmegaConf.to_container(cfg, resolve=False))
    direct = {
        key: _REFERENCE.findall(value)
        for key, value in raw.items()
        if isinstance(value, str) and "${" in value
    }
    out = {}
    for key in direct:
        seen, todo, leaves = {key}, list(direct[key]), []
        while todo:
            ref = todo.pop(0)
            if ref in seen:
                continue
            seen.add(ref)
            if ref in direct:
                todo.extend(direct[ref])
            elif ref in raw:
                leaves.append(ref)
        out[key] = leaves
    return out


def _saved_progress(cfg: DictConfig, run_dir: Path) -> tuple[int | None, list[int]]:
    """(epochs the checkpoint has trained, the steps each saved LR schedule has taken)."""
    from mlzoo.run.checkpoint import read_checkpoint

    ckpt = str(cfg.get("ckpt_path"))
    path = run_dir / "checkpoints" / "last.ckpt" if ckpt == "last" else Path(ckpt).expanduser()
    try:
        saved = read_checkpoint(path, "ckpt_path", bool(cfg.get("trust_checkpoint")))
    except ZooError:
        return None, []
    try:  # end-of-epoch checkpoints count the epoch as processed, mid-epoch ones do not
        epochs = int(saved["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"])
    except (KeyError, TypeError, ValueError):
        epochs = None
    steps = [
        int(state["last_epoch"])
        for state in saved.get("lr_schedulers") or []
        if isinstance(state, dict) and isinstance(state.get("last_epoch"), int)
    ]
    return epochs, steps


def changed_settings(cfg: DictConfig, run_dir: Path) -> list[str]:
    """Refuse changes a resume cannot honour; return the others as ``key: old -> new`` lines.

    A longer (or shorter, not below what is trained) trainer.max_epochs extends the run: a cosine
    schedule whose length follows it is re-planned over the new length (the module does it once
    Lightning has restored the schedule: mlzoo.base.module.replan_cosine); a step schedule keeps
    stepping and a constant LR stays. Any other restored setting that changes is refused, naming
    what the command line changed (``trainer.max_epochs``, not the ``T_max`` that follows it)."""
    recorded = _recorded_config(run_dir)
    if recorded is None:
        return []
    before = _flat(recorded)
    now = _flat(OmegaConf.to_container(cfg, resolve=True))
    changed = {
        key: (before.get(key, "(unset)"), now.get(key, "(unset)"))
        for key in sorted(set(before) | set(now))
        if key.split(".")[0] not in WHERE and before.get(key) != now.get(key)
    }
    if not changed:
        return []
    sources = _sources(cfg)
    progress: list = []  # read from the checkpoint once, when needed

    def saved_progress() -> tuple[int | None, list[int]]:
        if not progress:
            progress.append(_saved_progress(cfg, run_dir))
        return progress[0]

    def typed(key: str) -> str:
        """The setting the user changed that changed ``key``, and its old and new values."""
        for source in sources.get(key, []):
            if source in changed:
                old, new = changed[source]
                return f"{source} was {old} in {run_dir.name}, {new} here, and {key} follows it"
        old, new = changed[key]
        return f"{key} was {old} in {run_dir.name}, {new} here"

    def first_typed(key: str) -> str:
        return next((s for s in sources.get(key, []) if s in changed), key)

    epochs_new = now.get("trainer.max_epochs")
    if "trainer.max_epochs" in changed and isinstance(epochs_new, int) and epochs_new >= 0:
        trained = saved_progress()[0]
        if trained is not None and epochs_new < trained:
            raise ZooError(
                f"ckpt_path: trainer.max_epochs={epochs_new}, but {run_dir.name} has already "
                f"trained {trained} epochs and a resume only continues a run; resume with "
                f"trainer.max_epochs={trained} or more, or train a new run"
            )
    target = before.get("model.scheduler._target_")
    if target in FIXED_LENGTH and target == now.get("model.scheduler._target_"):
        longer = [k for k in LENGTH if k in changed]
        if longer:
            key = longer[0]
            raise ZooError(
                f"ckpt_path: {key} was {changed[key][0]} in {run_dir.name}, {changed[key][1]} "
                f"here, but the run's {target.rsplit('.', 1)[-1]} schedule was planned for a "
                "fixed number of steps and cannot run past them. Resume with "
                f"{key}={changed[key][0]}, or train a new run with {key}={changed[key][1]}"
            )
    replan = REPLANNED.get(target) if target == now.get("model.scheduler._target_") else None
    applied, derived = [], []  # what the user changed, then what follows from it
    # a changed scheduler or optimizer (_target_) is named before its settings
    order = sorted(changed, key=lambda k: (not k.endswith("._target_"), k))
    for key in order:
        old, new = changed[key]
        if key == f"model.scheduler.{replan}" and isinstance(new, int):
            steps = saved_progress()[1]
            if new < max(steps, default=0) or new < 1:
                raise ZooError(
                    f"ckpt_path: {typed(key)} (the cosine schedule's length), but the run's "
                    f"schedule has already taken {max(steps, default=0)} steps; resume with "
                    f"{first_typed(key)} set to its old value or more, or train a new run"
                )
            source = first_typed(key)
            via = f", follows {source}" if source != key else ""
            derived.append(
                f"{key}: {old} -> {new} ({target.rsplit('.', 1)[-1]}{via}: re-planned over "
                f"{new}, falling from the LR the last epoch trained with to eta_min at {new})"
            )
            continue
        if _restored(key):
            source = first_typed(key)
            if source != key and source in LENGTH and key.startswith("model.scheduler."):
                raise ZooError(
                    f"ckpt_path: {typed(key)}: extending a run re-plans a cosine schedule "
                    "(CosineAnnealingLR's T_max) only, and this schedule's "
                    f"{key.rsplit('.', 1)[-1]} cannot be re-planned from the checkpoint. "
                    f"Resume with {source}={changed[source][0]}, or train a new run with "
                    f"{source}={changed[source][1]}"
                )
            old_source = changed[source][0]
            raise ZooError(
                f"ckpt_path: {typed(key)}, but resuming restores the optimizer, its schedule "
                "and the random state from the checkpoint, so the change would be ignored. "
                f"Resume with {source}={old_source}, or train a new run"
            )
        applied.append(f"{key}: {old} -> {new}")
    return applied + derived


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
