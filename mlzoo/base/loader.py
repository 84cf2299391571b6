"""Who rebuilds a model from a zoo checkpoint, as the base class sees it.

``ZooModule.load_from_checkpoint`` needs the run side's loader (the run folder's config.yaml, the
trust check, the builder), and the base never imports the run wing. The package, which stands
above both, registers the loader here on import (``mlzoo/__init__.py``); tests may register
another.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_loader: Callable[[Any], Any] | None = None


def register_checkpoint_loader(loader: Callable[[Any], Any]) -> None:
    """``loader(path) -> model``: what ZooModule.load_from_checkpoint calls."""
    global _loader
    _loader = loader


def checkpoint_loader() -> Callable[[Any], Any]:
    if _loader is None:
        raise RuntimeError("no checkpoint loader registered: import mlzoo first")
    return _loader
