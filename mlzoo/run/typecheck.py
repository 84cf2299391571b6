"""Check a composed config's values against the type hints of the classes it instantiates.

Configs are plain YAML, so ``data.batch_size=abc`` or ``trainer.max_epochs=1.5`` would otherwise
reach a constructor as a string or a float and fail somewhere inside it, far from the cause. Before
instantiating, every key of every ``_target_`` node is checked against the hint of the parameter
of the same name (int, float, bool, str, sequences, optional and union forms of those); a mismatch
is one line naming the key, what it expects and what it got. Hints this cannot judge (classes,
literals, callables) are left to the constructor.
"""

from __future__ import annotations

import collections.abc
import inspect
import math
import types
import typing
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from mlzoo.base.errors import ZooError

_SPECIAL = {"_target_", "_partial_", "_args_", "_convert_", "_recursive_"}
# top-level keys of configs/train.yaml: (type hint, may be null)
_TOP = {"seed": int, "torch_threads": int, "trust_checkpoint": bool, "compile": bool, "test": bool}


def accepts(hint: Any, value: Any) -> bool | None:
    """Whether ``value`` fits ``hint``; None when the hint is beyond this simple check."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        verdicts = [accepts(h, value) for h in typing.get_args(hint)]
        return True if True in verdicts else None if None in verdicts else False
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if getattr(hint, "__name__", "") == "Tensor":  # torch.optim's lr: float | Tensor
        return isinstance(value, int | float) and not isinstance(value, bool)
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    sequences = (list, tuple, collections.abc.Sequence)
    if hint in sequences or origin in sequences:
        return isinstance(value, list | tuple)
    return None


def _hints(target: Any) -> dict[str, Any]:
    """Parameter name -> type hint; a class's own hints first, then its bases' (a subclass may
    pass **kwargs on to them), then the settings the run turns into its parts (mlzoo.run.parts:
    ``model.download``, ``model.lora``, ...)."""
    if not inspect.isclass(target):
        return _function_hints(target)
    from mlzoo.run.parts import setting_hints

    out: dict[str, Any] = {}
    for cls in reversed(target.__mro__):
        if "__init__" in vars(cls) and cls is not object:
            out.update(_function_hints(vars(cls)["__init__"]))
    out.update(setting_hints(target))
    return out


def _function_hints(func: Any) -> dict[str, Any]:
    """Parameter name -> evaluated type hint, for the parameters whose hint can be evaluated."""
    try:
        return typing.get_type_hints(func)
    except Exception:  # one unresolvable name: evaluate the hints one by one
        namespace = {**vars(typing), **getattr(inspect.getmodule(func), "__dict__", {})}
        out = {}
        for name, hint in getattr(func, "__annotations__", {}).items():
            try:
                out[name] = eval(hint, namespace) if isinstance(hint, str) else hint
            except Exception:
                continue
        return out


def _show(hint: Any) -> str:
    return str(hint).replace("typing.", "").replace("NoneType", "None").replace("<class '", "")[:60]


def _walk(node: Any, path: str) -> None:
    if isinstance(node, list):
        for i, item in enumerate(node):
            _walk(item, f"{path}[{i}]")
        return
    if not isinstance(node, dict):
        return
    target = node.get("_target_")
    hints: dict[str, Any] = {}
    if isinstance(target, str):
        try:
            hints = _hints(hydra.utils.get_object(target))
        except Exception:  # not importable: instantiation reports it
            hints = {}
    for key, value in node.items():
        here = f"{path}.{key}" if path else str(key)
        if key in _SPECIAL:
            continue
        if key in hints and accepts(hints[key], value) is False:
            raise ZooError(
                f"{here}: expected {_show(hints[key]).strip(chr(39) + '>')}, got {value!r}"
            )
        _walk(value, here)


def check_types(cfg: DictConfig) -> None:
    """Raise a ZooError for the first config value that does not fit its parameter's hint."""
    tree = OmegaConf.to_container(cfg, resolve=True)
    tree.pop("hydra", None)
    for key, hint in _TOP.items():
        if key in tree and tree[key] is not None and not accepts(hint, tree[key]):
            raise ZooError(f"{key}: expected {hint.__name__} or null, got {tree[key]!r}")
    # where interpolations come from first (model.scheduler.T_max is ${trainer.max_epochs}): an
    # error then names the key the user set
    for key in sorted(tree, key=lambda k: (k not in ("trainer", "data"), k)):
        if key not in _TOP:
            _walk(tree[key], key)


def _values(node: Any, path: str) -> Any:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _values(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _values(value, f"{path}[{i}]")
    else:
        yield path, node


def check_values(cfg: DictConfig) -> None:
    """Refuse values that no setting takes, naming the key: NaN anywhere, integers beyond 64 bits,
    a seed outside [0, 2**32), a learning rate that is not a finite number > 0, negative or
    non-finite gradient clipping."""
    tree = OmegaConf.to_container(cfg, resolve=True)
    tree.pop("hydra", None)
    # trainer and data first: where interpolations come from (model.scheduler.T_max)
    ordered = {k: tree[k] for k in sorted(tree, key=lambda k: (k not in ("trainer", "data"), k))}
    for path, value in _values(ordered, ""):
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number:
            continue
        if isinstance(value, int) and abs(value) >= 2**63:
            shown = f"a {len(str(abs(value)))}-digit number" if abs(value) > 10**30 else value
            raise ZooError(f"{path}: {shown} is out of range (64-bit integers at most)")
        if value != value:  # NaN
            raise ZooError(f"{path}: NaN is not a setting")
        key = path.rsplit(".", 1)[-1]
        if key == "lr" and not (math.isfinite(value) and value > 0):
            raise ZooError(f"{path}: a learning rate must be a finite number > 0, got {value}")
    seed = tree.get("seed")
    if seed is not None and not 0 <= seed < 2**32:
        raise ZooError(f"seed: must be in [0, 2**32) = [0, 4294967296) or null, got {seed}")
    clip = (tree.get("trainer") or {}).get("gradient_clip_val")
    if clip is not None and not (math.isfinite(clip) and clip >= 0):
        raise ZooError(
            f"trainer.gradient_clip_val: must be a finite number >= 0 (0 or null: no clipping), "
            f"got {clip}"
        )


def check_before_imports(cfg: DictConfig) -> None:
    """The checks that need no import of torch, Lightning or a concept (filled in next)."""
    check_values(cfg)
