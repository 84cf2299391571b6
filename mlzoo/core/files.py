"""File-system faults as one line: which path, and why (not a directory, read-only, no space, ...).

A run writes its folder, checkpoints, config and summary; when the disk says no, the user needs the
path and the cause, not a traceback. Checkpoints are written atomically (mlzoo.core.checkpoint),
so a failed write leaves the previous file whole; small text files go through
:func:`write_text_atomically` for the same promise.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from mlzoo.core.errors import ZooError

CAUSES = {
    errno.ENOTDIR: "a path component is a file, not a directory",
    errno.EEXIST: "a file of that name is in the way",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "the file-size limit was reached (ulimit -f)",
    errno.ENAMETOOLONG: "a file or folder name is too long",
}


# What a zoo run leaves in its folder (Hydra adds .hydra/ and train.log before the run starts).
RUN_ARTIFACTS = (".hydra", "train.log", "config.yaml", "summary.json", "checkpoints")


def run_artifacts(folder: str | Path, ignore: tuple[str, ...] = ()) -> list[str]:
    """Which of a run's files ``folder`` already holds (none: it is not an earlier run)."""
    path = Path(folder)
    return [n for n in RUN_ARTIFACTS if n not in ignore and (path / n).exists()]


def describe(err: OSError) -> str | None:
    """The cause of a file-system fault in words, or None if it is not one of those."""
    return CAUSES.get(err.errno)


def fault(err: OSError, path: str | Path, doing: str) -> ZooError:
    """A ZooError for ``err`` while ``doing`` (e.g. 'write the checkpoint') at ``path``."""
    cause = describe(err) or " ".join(str(err).split())
    return ZooError(f"cannot {doing} {path}: {cause}")


def check_can_create(folder: str | Path, option: str) -> None:
    """Refuse, before anything is written, a folder that cannot be created or written: a file in
    the way, a name longer than the file system allows, a read-only or foreign parent."""
    path = Path(folder).expanduser().absolute()
    for part in path.parts:
        if len(part.encode()) > 255:  # NAME_MAX on Linux and macOS file systems
            raise ZooError(
                f"{option}: the folder name {part[:40]}... has {len(part.encode())} bytes, a "
                "file system allows 255 (shorten name= or the folder)"
            )
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ZooError(f"{option}={path}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        statvfs = os.statvfs(existing)
        read_only = bool(statvfs.f_flag & os.ST_RDONLY)
        cause = "the file system is read-only" if read_only else "permission denied"
        raise ZooError(f"{option}={path}: cannot write in {existing}: {cause}")


def write_text_atomically(path: Path, text: str) -> None:
    """Write a small text file through a temporary name: never seen half written, and a failed
    write (no space) leaves the earlier file as it was."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text)
        tmp.replace(path)
    except OSError as err:
        raise fault(err, path, "write") from None
    finally:
        tmp.unlink(missing_ok=True)
