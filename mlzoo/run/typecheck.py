"""Check a composed config's values against the type hints of the classes it instantiates.

Configs are plain YAML, so ``data.batch_size=abc`` or ``trainer.max_epochs=1.5`` would otherwise
reach a constructor as a string or a float and fail somewhere inside it, far from the cause. Before
instantiating, every key of every ``_target_`` node is checked against the hint of the parameter
of the same name (int, float, bool, str, sequences, optional and union forms of those); a mismatch
is one line naming the key, what it expects and what it got. Hints this cannot judge (classes,
literals, callables) are left to the constructor.
"""

from __future__ import annotations

import ast
import collections.abc
import importlib.util
import inspect
import math
import re
import types
import typing
from collections.abc import Callable
from functools import cache
from pathlib import Path
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
    """``Optional[int]``, ``Union[float, Tensor]``: a hint without module paths."""
    text = str(hint).replace("NoneType", "None").replace("<class '", "").replace("'>", "")
    return re.sub(r"\b(?:\w+\.)+(\w+)", r"\1", text)[:60]


def _imported_hints(target: str) -> dict[str, Any]:
    try:
        return _hints(hydra.utils.get_object(target))
    except Exception:  # not importable: instantiation reports it
        return {}


def _walk(node: Any, path: str, hints_of: Callable[[str], dict[str, Any]]) -> None:
    if isinstance(node, list):
        for i, item in enumerate(node):
            _walk(item, f"{path}[{i}]", hints_of)
        return
    if not isinstance(node, dict):
        return
    target = node.get("_target_")
    hints = hints_of(target) if isinstance(target, str) else {}
    for key, value in node.items():
        here = f"{path}.{key}" if path else str(key)
        if key in _SPECIAL:
            continue
        if key in hints and accepts(hints[key], value) is False:
            raise ZooError(f"{here}: expected {_show(hints[key])}, got {value!r}")
        _walk(value, here, hints_of)


def check_types(cfg: DictConfig, hints_of: Callable[[str], dict[str, Any]] | None = None) -> None:
    """Raise a ZooError for the first config value that does not fit its parameter's hint
    (``hints_of``: a target's hints; by default read from the imported class)."""
    hints_of = hints_of or _imported_hints
    tree = OmegaConf.to_container(cfg, resolve=True)
    tree.pop("hydra", None)
    for key, hint in _TOP.items():
        if key in tree and tree[key] is not None and not accepts(hint, tree[key]):
            raise ZooError(f"{key}: expected {hint.__name__} or null, got {tree[key]!r}")
    # where interpolations come from first (model.scheduler.T_max is ${trainer.max_epochs}): an
    # error then names the key the user set
    for key in sorted(tree, key=lambda k: (k not in ("trainer", "data"), k)):
        if key not in _TOP:
            _walk(tree[key], key, hints_of)


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


# --------------------------------------------------------------------------------------------
# the same checks before anything heavy is imported: hints read from the source files
# --------------------------------------------------------------------------------------------
def check_before_imports(cfg: DictConfig) -> None:
    """What can be refused without importing torch, Lightning or a concept, so that a typo'd
    value is answered in a second: the values (check_values), the types against the hints read
    from the targets' source files (never imported, never run: parsed with ``ast``), and the
    data settings every data module takes. ``train()`` runs the full checks again once the
    classes are imported; this pass only refuses what those would refuse too."""
    check_types(cfg, source_hints)
    check_values(cfg)
    data = OmegaConf.to_container(cfg, resolve=True).get("data")
    target = data.get("_target_") if isinstance(data, dict) else None
    if isinstance(target, str) and target.startswith("mlzoo.data."):
        from mlzoo.data.settings import SPLIT_SETTINGS, check_split_settings

        settings = {k: data[k] for k in SPLIT_SETTINGS if isinstance(data.get(k), int | float)}
        check_split_settings(**settings)


class _Unknown:
    """A hint this check cannot judge (a class of torch, Lightning, ...): ``accepts`` says None."""


_NAMES: dict[str, Any] = {
    "int": int,
    "float": float,
    "bool": bool,
    "str": str,
    "list": list,
    "tuple": tuple,
    "List": list,
    "Tuple": tuple,
    "Sequence": collections.abc.Sequence,
    "None": type(None),
    "NoneType": type(None),
}


def _hint(node: ast.expr) -> Any:
    """A type hint from its source text, for the forms ``accepts`` judges (int, float, bool, str,
    sequences, Optional, Union, ``|``, Literal); anything else is _Unknown (or named Tensor)."""
    if isinstance(node, ast.Constant):
        if node.value is None:
            return type(None)
        if isinstance(node.value, str):  # a quoted hint
            try:
                return _hint(ast.parse(node.value, mode="eval").body)
            except SyntaxError:
                return _Unknown
        return _Unknown
    if isinstance(node, ast.Name | ast.Attribute):
        name = node.id if isinstance(node, ast.Name) else node.attr
        if name == "Tensor":  # torch.optim's lr: float | Tensor
            return type("Tensor", (_Unknown,), {})
        return _NAMES.get(name, _Unknown)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return typing.Union[_hint(node.left), _hint(node.right)]  # noqa: UP007
    if isinstance(node, ast.Subscript):
        base = (
            node.value.id if isinstance(node.value, ast.Name) else getattr(node.value, "attr", "")
        )
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if base == "Literal" and all(isinstance(i, ast.Constant) for i in items):
            return typing.Literal[tuple(i.value for i in items)]
        if base == "Optional":
            return typing.Union[_hint(items[0]), type(None)]  # noqa: UP007
        if base == "Union":
            return typing.Union[tuple(_hint(i) for i in items)]  # noqa: UP007
        return _NAMES.get(base, _Unknown)  # list[int], Sequence[float]: a sequence
    return _Unknown


@cache
def _parsed(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return None


def _module_file(module: str) -> Path | None:
    """The source file of a module, found without importing it (only its top package's location
    is looked up, which runs nothing)."""
    top, *rest = module.split(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return Path(spec.origin) if spec and spec.origin and not rest else None
    folder = Path(next(iter(spec.submodule_search_locations))).joinpath(*rest)
    for candidate in (folder / "__init__.py", folder.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _definition(module: str, name: str, depth: int = 0) -> tuple[str, ast.AST] | None:
    """(module, the class or function definition) that ``module.name`` names, following
    ``from x import name`` re-exports a few levels deep."""
    path = _module_file(module)
    tree = _parsed(path) if path is not None and depth < 6 else None
    if tree is None:
        return None
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for stmt in tree.body:
        if isinstance(stmt, ast.ClassDef | ast.FunctionDef) and stmt.name == name:
            return module, stmt
    for stmt in tree.body:
        if isinstance(stmt, ast.ImportFrom):
            for alias in stmt.names:
                if (alias.asname or alias.name) == name:
                    source = stmt.module or ""
                    if stmt.level:
                        base = package.split(".")
                        base = base[: len(base) - stmt.level + 1]
                        source = ".".join([*base, source] if source else base)
                    return _definition(source, alias.name, depth + 1)
    return None


def _arguments_hints(func: ast.FunctionDef) -> dict[str, Any]:
    args = func.args
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    return {a.arg: _hint(a.annotation) for a in every if a.annotation is not None}


def _definition_hints(module: str, node: ast.AST, depth: int = 0) -> dict[str, Any]:
    if isinstance(node, ast.FunctionDef):
        return _arguments_hints(node)
    if not isinstance(node, ast.ClassDef) or depth > 6:
        return {}
    out: dict[str, Any] = {}
    for base in reversed(
        node.bases
    ):  # the bases' parameters first: a subclass may pass **kwargs on
        name = base.id if isinstance(base, ast.Name) else getattr(base, "attr", None)
        found = _definition(module, name) if name else None
        if found is not None:
            out.update(_definition_hints(*found, depth + 1))
    for stmt in node.body:
        if isinstance(stmt, ast.FunctionDef) and stmt.name == "__init__":
            out.update(_arguments_hints(stmt))
    return out


@cache
def source_hints(target: str) -> dict[str, Any]:
    """Parameter name -> type hint of the class or function a ``_target_`` names, read from its
    source file; {} where it cannot be found (an error then comes from the full check)."""
    module, _, name = target.rpartition(".")
    found = _definition(module, name) if module else None
    return _definition_hints(*found) if found is not None else {}
