"""Checkpoints: written atomically, read safely, loaded back into their model and data module.

Writing: ``AtomicCheckpointIO`` (a Trainer plugin, configs/trainer/default.yaml) writes each file
to a temporary name beside it, flushes it to disk and renames it over the old one: a run killed at
any moment (even SIGKILL) leaves the previous checkpoint or the new one, never half a file.

Reading: ``read_checkpoint`` uses ``torch.load(weights_only=True)``: tensors and plain data only,
no pickled code runs. A file that holds pickled Python objects is refused unless the user opts in
(``trust_checkpoint=true``); a missing, corrupt or truncated file gives one line naming it.

Loading a model: every run folder holds the resolved ``config.yaml`` beside ``checkpoints/``, so a
checkpoint alone is enough: scripts (sample.py, evaluate.py) and transfer learning rebuild the
exact model from it. Constructor arguments recorded in the checkpoint (``hyper_parameters``) take
precedence over the config's (e.g. the backbone file a transfer run actually used); the merged
config passes the same trust check as a training run's (mlzoo.run.targets) before anything in it
is built.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import hydra
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from omegaconf import DictConfig, open_dict

from mlzoo.base.errors import ZooError, error_line, one_line


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save to ``.<name>.tmp-<pid>`` in the same folder, fsync, then rename over ``<name>``.

    (Lightning's own save goes through fsspec, whose local "transaction" writes the temporary file
    in the system temp folder and moves it across file systems: a copy, not an atomic rename.)
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        from mlzoo.base.errors import fault

        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)  # atomic on POSIX: readers see the old file or the new one
        except (OSError, RuntimeError) as err:  # torch.save reports a full disk as RuntimeError
            cause = err if isinstance(err, OSError) else _os_error_in(err)
            if cause is None:
                raise
            kept = "; the previous checkpoint is kept whole" if path.exists() else ""
            raise ZooError(f"{fault(cause, path, 'write the checkpoint')}{kept}") from None
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
        folder = os.open(path.parent, os.O_RDONLY)
        try:  # make the rename itself durable
            os.fsync(folder)
        finally:
            os.close(folder)


STALE_AFTER_S = 60.0  # a temporary file being written changes at least this often


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove the ``.<name>.tmp-<pid>`` files in ``folder`` that a killed run left (SIGKILL in the
    middle of a write): their process is gone and they have not changed for STALE_AFTER_S.
    A live writer's file (its process still running here, or written to in the last minute, as
    a run on another machine of a shared file system would) is never touched."""
    import logging
    import time

    removed = []
    for tmp in Path(folder).glob(".*.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or not tmp.is_file() or tmp.is_symlink():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # that process is alive (perhaps the writer): leave the file
        except ProcessLookupError:
            pass
        except (PermissionError, OverflowError):
            continue  # alive, someone else's; or not a pid at all
        try:
            if time.time() - tmp.stat().st_mtime < STALE_AFTER_S:
                continue
            size = tmp.stat().st_size
            tmp.unlink()
        except OSError:
            continue
        removed.append(tmp)
        logging.getLogger("mlzoo").info(
            f"Removed {tmp} ({size:,} bytes), left by process {pid}, which is gone"
        )
    return removed


def _os_error_in(err: BaseException) -> OSError | None:
    """The OSError behind torch.save's RuntimeError ("unexpected pos ..."): its zip writer hits
    the failed write (no space, file-size limit) and reports it as a RuntimeError."""
    seen = err
    while seen is not None:
        if isinstance(seen, OSError):
            return seen
        seen = seen.__cause__ or seen.__context__
    if "write failed" in str(err) or "unexpected pos" in str(err):
        return OSError(errno.ENOSPC, "no space left or file-size limit reached")
    return None


def read_checkpoint(path: str | Path, option: str = "ckpt_path", trust: bool = False) -> Any:
    """``torch.load`` of a checkpoint file, tensors and plain data only unless ``trust``.

    Every failure is one ZooError line naming ``option`` and the file: missing, not a checkpoint
    (corrupt or truncated), or holding pickled objects (refused: they can run arbitrary code)."""
    path = Path(path)
    if not path.is_file():
        raise ZooError(f"{option}: no checkpoint file at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust)
    except Exception as err:
        text = one_line(err, None)
        if "Unsupported global" in text:
            found = text.split("Unsupported global:", 1)[-1].split(" was not")[0].strip()
            raise ZooError(
                f"{option}: {path} holds pickled Python objects ({found[:120]}), which can run "
                "arbitrary code when loaded; mlzoo loads tensors and plain data only. If you "
                "wrote this file yourself and trust it, add trust_checkpoint=true"
            ) from None
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ZooError(
            f"{option}: cannot load {path}: not a checkpoint, or corrupt or truncated "
            f"({first[:160]})"
        ) from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:160] if text else type(err).__name__


def check_lightning_checkpoint(ckpt: Any, path: str | Path, option: str = "ckpt_path") -> None:
    """Refuse a readable file that is not a Lightning checkpoint (a bare state_dict, say)."""
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "global_step" not in ckpt:
        raise ZooError(
            f"{option}: {path} is not a checkpoint written by mlzoo (no state_dict and "
            "global_step in it)"
        )


def load_checkpoint(
    path: str | Path,
    option: str = "checkpoint",
    trust: bool = False,
    allow_targets: Iterable[str] = (),
) -> tuple[Any, Any, DictConfig]:
    """(model in eval mode on the CPU, its data module, the run's config) for a zoo checkpoint.

    The run folder's config.yaml and the checkpoint's hyperparameters are someone else's data:
    they are merged, then checked as one config (mlzoo.run.targets) before anything is built.
    Only the caller's ``allow_targets`` (and the command line's, during a run) widen the check;
    the ones the loaded config.yaml records are ignored."""
    from mlzoo.run.build import instantiate_model
    from mlzoo.run.files import read_config_file
    from mlzoo.run.targets import check_config, check_size, user_allowed

    path = Path(path)
    ckpt = read_checkpoint(path, option, trust)
    check_lightning_checkpoint(ckpt, path, option)
    run_dir = path.resolve().parent.parent
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise ZooError(
            f"{path}: no config.yaml in its run folder {run_dir}; only checkpoints in "
            "<run>/checkpoints/ of a zoo run can be loaded"
        )
    cfg = read_config_file(cfg_path, "config.yaml")
    if not isinstance(cfg, DictConfig) or not isinstance(cfg.get("model"), DictConfig):
        raise ZooError(f"{cfg_path}: not a zoo run's config (no model section)")
    recorded = ckpt.get("hyper_parameters") or {}
    if not isinstance(recorded, dict):
        raise ZooError(f"{path}: its hyper_parameters are not a mapping")
    check_size(recorded, f"{path}: its hyper_parameters")
    try:
        with open_dict(cfg):
            for key, value in recorded.items():
                if key in cfg.model:
                    cfg.model[key] = value
            _drop_retired_keys(cfg.model)
    except Exception as err:  # a value OmegaConf cannot hold (a tensor, say): not a zoo run's
        raise ZooError(f"{path}: unusable hyper_parameters ({_first_line(err)})") from None
    allowed = (*allow_targets, *user_allowed())
    where = f"{cfg_path} with the hyperparameters of {path.name}"
    check_config(cfg, allowed, where=where, from_file=True)
    try:
        datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
        model = instantiate_model(cfg.model, datamodule, allow_targets=allowed)
    except ZooError:
        raise
    except Exception as err:  # a setting no constructor takes, a value it refuses, ...
        raise ZooError(f"{where}: cannot build its model ({error_line(err, 200)})") from None
    state = ckpt["state_dict"]
    try:
        model.load_state_dict(state)
    except Exception as err:  # shapes (RuntimeError), or a state_dict that is no mapping
        raise ZooError(
            f"{path} does not fit the model in {cfg_path}: {error_line(err, 300)}"
        ) from None
    return model.eval(), datamodule, cfg


def _drop_retired_keys(model_cfg: DictConfig) -> None:
    """Settings runs once recorded that no concept takes any more: ``log_dir`` (DPO, and a
    transfer backbone's), where ``newest:<run>`` used to be looked up by the concept itself."""
    model_cfg.pop("log_dir", None)
    if isinstance(model_cfg.get("backbone"), DictConfig):
        model_cfg.backbone.pop("log_dir", None)


def require_file(spec: str | Path, option: str) -> Path:
    """A checkpoint setting as a concept takes it: a file. ``newest:<run>`` is resolved by the
    entry point (mlzoo.run.build.resolve_newest), never by a concept searching log folders."""
    if str(spec).startswith("newest:"):
        raise ZooError(
            f"{option}={spec}: newest:<run> is resolved by train.py (mlzoo.run.build."
            "resolve_newest); in Python, pass a checkpoint file"
        )
    return Path(spec)
