"""Checkpoint files: written atomically, read safely.

Writing: ``AtomicCheckpointIO`` (a Trainer plugin, configs/trainer/default.yaml) writes each file
to a temporary name beside it, flushes it to disk and renames it over the old one: a run killed at
any moment (even SIGKILL) leaves the previous checkpoint or the new one, never half a file.

Reading: ``read_checkpoint`` uses ``torch.load(weights_only=True)``: tensors and plain data only,
no pickled code runs. A file that holds pickled Python objects is refused unless the user opts in
(``trust_checkpoint=true``); a missing, corrupt or truncated file gives one line naming it.

Loading a model back from its run folder: mlzoo.run.load.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from mlzoo.base.errors import ZooError, one_line


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


def check_lightning_checkpoint(ckpt: Any, path: str | Path, option: str = "ckpt_path") -> None:
    """Refuse a readable file that is not a Lightning checkpoint (a bare state_dict, say)."""
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "global_step" not in ckpt:
        raise ZooError(
            f"{option}: {path} is not a checkpoint written by mlzoo (no state_dict and "
            "global_step in it)"
        )


def require_file(spec: str | Path, option: str) -> Path:
    """A checkpoint setting as a concept takes it: a file. ``newest:<run>`` is resolved by the
    entry point (mlzoo.run.build.resolve_newest), never by a concept searching log folders."""
    if str(spec).startswith("newest:"):
        raise ZooError(
            f"{option}={spec}: newest:<run> is resolved by train.py (mlzoo.run.build."
            "resolve_newest); in Python, pass a checkpoint file"
        )
    return Path(spec)
