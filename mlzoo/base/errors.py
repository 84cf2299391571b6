"""The one exception type for mistakes a user can fix (bad config, missing files, bad checkpoint),
and the two ways a message stays one readable line.

``mlzoo.run.train`` turns a ZooError into a single line on stderr and a non-zero exit, without a
traceback: the message itself must say what went wrong and how to fix it.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable
from pathlib import Path


class ZooError(Exception):
    """A user-facing error; its message is shown as is."""


def one_line(err: BaseException | str, limit: int | None = 240) -> str:
    """An exception's message (or any text) on one line, cut to ``limit`` characters."""
    text = " ".join(str(err).split()) or type(err).__name__
    if limit is not None and len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def error_line(err: BaseException, limit: int | None = None) -> str:
    """The innermost useful message of an exception (Hydra and others wrap a constructor's error
    in their own), on one line: ``Type: text``, or a ZooError's text as it is."""
    while err.__cause__ is not None:
        err = err.__cause__
    text = one_line(err, limit)
    return text if isinstance(err, ZooError) else f"{type(err).__name__}: {text}"


def listed(items: Iterable[object], limit: int = 8) -> str:
    """``a, b, c`` for a few items; ``a, b, ... (5,000 in all)`` for many: a message stays short
    however many columns, files or keys it names."""
    items = [str(i) for i in items]
    if len(items) <= limit:
        return ", ".join(items)
    return f"{', '.join(items[:limit])}, ... ({len(items):,} in all)"


# File-system faults in words: a run, a data module or a script that cannot read or write a path
# says which path and why, not a traceback.
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


def describe(err: OSError) -> str | None:
    """The cause of a file-system fault in words, or None if it is not one of those."""
    return CAUSES.get(err.errno)


def fault(err: OSError, path: str | Path, doing: str) -> ZooError:
    """A ZooError for ``err`` while ``doing`` (e.g. 'write the checkpoint') at ``path``."""
    cause = describe(err) or one_line(err, None)
    return ZooError(f"cannot {doing} {path}: {cause}")
