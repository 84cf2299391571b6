"""The one exception type for mistakes a user can fix (bad config, missing files, bad checkpoint),
and the two ways a message stays one readable line.

``mlzoo.train`` turns a ZooError into a single line on stderr and a non-zero exit, without a
traceback: the message itself must say what went wrong and how to fix it.
"""

from __future__ import annotations

from collections.abc import Iterable


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
