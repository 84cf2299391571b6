"""File-system faults as one line: which path, and why (not a directory, read-only, no space, ...).

A run writes its folder, checkpoints, config and summary; when the disk says no, the user needs the
path and the cause, not a traceback. Checkpoints are written atomically (mlzoo.run.checkpoint),
so a failed write leaves the previous file whole; small text files go through
:func:`write_text_atomically` for the same promise.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from mlzoo.base.errors import ZooError, describe, fault, one_line

# What a zoo run leaves in its folder (Hydra adds .hydra/ and train.log before the run starts).
RUN_ARTIFACTS = (".hydra", "train.log", "config.yaml", "summary.json", "checkpoints")


def run_artifacts(folder: str | Path, ignore: tuple[str, ...] = ()) -> list[str]:
    """Which of a run's files ``folder`` already holds (none: it is not an earlier run)."""
    path = Path(folder)
    return [n for n in RUN_ARTIFACTS if n not in ignore and (path / n).exists()]


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


def _cannot_write(folder: Path) -> str | None:
    """Why nothing can be created in ``folder`` (None: something can). It tries, with a temporary
    file removed at once: os.access answers for permission bits alone, and for root it says yes to
    a read-only mode and to a folder like /proc, where creating a file still fails."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        return describe(err) or one_line(err.strerror or err, None)
    return None


def check_output(path: str | Path, option: str = "-o", parents: bool = False) -> Path:
    """Refuse, before any work, an output a script cannot write as a new file or folder: a name
    that exists or is a symbolic link (dangling or not: nothing is written through a link, nothing
    is overwritten), a name too long, a parent folder that is missing (with ``parents``: the nearest
    existing one is checked, for a default output whose folders the script creates), a file, or
    not writable. ``option`` names the setting in the message. Returns the path."""
    path = Path(path).expanduser()
    for part in path.parts:
        if len(part.encode()) > 255:  # NAME_MAX on Linux and macOS file systems
            raise ZooError(
                f"{option}: the name {part[:40]}... has {len(part.encode())} bytes, a file "
                "system allows 255"
            )
    try:  # (stat itself can fail: a folder on the way that cannot be searched)
        if path.is_symlink():
            raise ZooError(
                f"{option} {path} is a symbolic link (to {os.readlink(path)}): choose a new name "
                "(nothing is written through a link)"
            )
        if path.exists():
            raise ZooError(f"{option} {path} exists: choose a new name (nothing is overwritten)")
        parent = path.absolute().parent
        if parents:
            while not parent.exists() and not parent.is_symlink() and parent != parent.parent:
                parent = parent.parent
        if not parent.exists():
            raise ZooError(f"{option} {path}: no folder {parent} (create it first)")
        if not parent.is_dir():
            raise ZooError(f"{option} {path}: {parent} is a file, not a folder")
    except OSError as err:
        raise ZooError(
            f"{option} {path}: {describe(err) or one_line(err.strerror or err)}"
        ) from None
    cause = _cannot_write(parent)
    if cause:
        raise ZooError(f"{option} {path}: cannot write in {parent}: {cause}")
    return path


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


MAX_CONFIG_BYTES = 16 * 2**20


def read_config_file(path: str | Path, option: str) -> Any:
    """A YAML file someone else may have written (a run folder's config.yaml), as OmegaConf reads
    it: a regular file (a FIFO would block the read), at most MAX_CONFIG_BYTES, and first read by
    PyYAML's safe loader (aliases kept as shared references) to count its entries
    (mlzoo.run.targets.check_size: aliases can make a few hundred bytes a tree of billions, which
    OmegaConf would copy out forever). One ZooError line otherwise."""
    import yaml
    from omegaconf import OmegaConf

    from mlzoo.run.targets import check_size

    path = Path(path)
    if not path.is_file():
        raise ZooError(f"{option}: {path} is not a regular file")
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ZooError(f"{option}: {path} has {size:,} bytes; a run's config has far fewer")
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ZooError(f"{option}: {path} is unreadable ({one_line(err, 200)})") from None
    check_size(tree, f"{option}: {path}")
    try:
        cfg = OmegaConf.load(path)
    except Exception as err:  # what OmegaConf refuses that PyYAML took (duplicate keys, ...)
        raise ZooError(f"{option}: {path} is unreadable ({one_line(err, 200)})") from None
    _rename_moved_targets(cfg)
    return cfg


# Modules that moved when mlzoo.core split into mlzoo.base and mlzoo.run: a run written before
# names the old place (its trainer.plugins), read here as the new one, so it still loads.
MOVED_MODULES = {
    **{f"mlzoo.core.{m}": f"mlzoo.base.{m}" for m in ("errors", "module", "supervised")},
    **{f"mlzoo.core.{m}": f"mlzoo.run.{m}" for m in ("build", "checkpoint", "files", "resume")},
}


def _rename_moved_targets(node: Any) -> None:
    """In place; an interpolation is left as written (never resolved here: the trust check, which
    comes next, refuses it in a file)."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if not isinstance(node, DictConfig | ListConfig):
        return
    keys = list(node.keys()) if isinstance(node, DictConfig) else range(len(node))
    for key in keys:
        if OmegaConf.is_interpolation(node, key):
            continue
        value = node[key]
        if key == "_target_" and isinstance(value, str):
            module, _, name = value.rpartition(".")
            if module in MOVED_MODULES:
                node[key] = f"{MOVED_MODULES[module]}.{name}"
        else:
            _rename_moved_targets(value)
