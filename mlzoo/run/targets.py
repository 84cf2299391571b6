"""The trust boundary: configs and checkpoints are data, never code.

Hydra instantiates whatever ``_target_`` names, and ``logging.config`` builds whatever a logging
handler's ``class`` names, so a config could otherwise call any function of any installed module:
``+callbacks.x._target_=os.system``, a downloaded run folder's config.yaml, or the hyperparameters
stored in a checkpoint. Before anything is built, every config goes through :func:`check_config`:

- each ``_target_`` is resolved to the object it names and that *object* is compared with the
  zoo's list (so ``mlzoo.run.train.shutil.copyfile`` is ``shutil.copyfile``, and refused): the
  classes of a few families (torch.optim's optimizers, torch.nn's layers, Lightning's callbacks
  and loggers, ...), the zoo's own classes, and a few named factory functions;
- a module is imported to resolve a target only when the target's top-level package is one the
  zoo is built from (resolving ``evil.x`` would run ``evil``'s top-level code);
- ``_target_`` values built from interpolations (``${oc.env:...}``) are refused: what is checked
  must be what is built;
- interpolations may use only the resolvers in ``RESOLVERS``, which return strings (``oc.env``,
  ``now``, the zoo's ``mlzoo_run_label``) or a value of Hydra's own config (``hydra:``). Any other,
  ``oc.create`` and ``oc.decode`` above all, can turn a string into config nodes, so a
  ``_target_`` would appear only when the value is resolved, after the check. Then, where the
  config resolves, the resolved tree is checked too;
- anything else that imports code is refused: a gymnasium ``entry_point`` (gymnasium.make
  imports any ``module:callable``), ``module:Env`` environment ids, Hydra callbacks, and logging
  handlers, formatters and filters other than the standard console and file ones (with the file
  inside the run folder), ``()`` factories and ``ext://`` references but sys.stdout/sys.stderr.

The whole config is checked, Hydra's own section included: ``main()`` installs
mlzoo.run.guard, which checks Hydra's section of every config Hydra composes (the run's, and each
run of a sweep) before Hydra sets up logging or instantiates its callbacks; train() checks the
rest before it builds anything.

The opt-in is the command line's alone: ``allow_targets=[mypackage]`` (modules or exact names
whose targets the user trusts). A config.yaml read from a run folder cannot grant itself more.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import sys
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from mlzoo.base.errors import ZooError, one_line

# Packages whose modules may be imported to resolve a target (importing is running code).
PACKAGES = ("mlzoo", "torch", "torchvision", "torchmetrics", "lightning", "gymnasium", "optuna")
PACKAGES_EXTRA = ("signal",)  # signal.Signals (trainer=slurm's requeue signal)

# (module, base class): the classes that module exports which subclass the base.
FAMILIES = (
    ("torch.optim", "torch.optim.Optimizer"),
    ("torch.optim.lr_scheduler", "torch.optim.lr_scheduler.LRScheduler"),
    ("torch.nn", "torch.nn.Module"),
    ("torchvision.transforms.v2", "torch.nn.Module"),
    ("torchvision.transforms", "object"),
    ("torchmetrics", "torchmetrics.Metric"),
    ("torchmetrics.classification", "torchmetrics.Metric"),
    ("torchmetrics.regression", "torchmetrics.Metric"),
    ("lightning.pytorch.callbacks", "lightning.pytorch.callbacks.Callback"),
    ("lightning.pytorch.loggers", "lightning.pytorch.loggers.Logger"),
    ("lightning.pytorch.strategies", "lightning.pytorch.strategies.Strategy"),
    ("lightning.pytorch.plugins.environments", "lightning.fabric.plugins.ClusterEnvironment"),
    ("lightning.pytorch.profilers", "lightning.pytorch.profilers.Profiler"),
    ("gymnasium.wrappers", "gymnasium.Wrapper"),
    ("optuna.samplers", "optuna.samplers.BaseSampler"),
    ("optuna.pruners", "optuna.pruners.BasePruner"),
)
# Exact classes and functions outside the families.
EXACT = (
    "lightning.pytorch.Trainer",
    "signal.Signals",
    "mlzoo.nets.cnn.small_resnet18",  # a factory function (configs/model/cnn.yaml's resnet)
)
# Inside the families, classes that write where a config says or record the screen.
EXCLUDED = ("gymnasium.wrappers.RecordVideo", "gymnasium.wrappers.HumanRendering")
# The zoo's own classes (defined under mlzoo., not re-exported there) of these kinds.
ZOO_BASES = (
    "torch.nn.Module",
    "lightning.pytorch.LightningDataModule",
    "lightning.pytorch.callbacks.Callback",
    "lightning.pytorch.loggers.Logger",
    "lightning.fabric.plugins.CheckpointIO",
)
# Hydra's launchers and sweepers: Hydra itself only builds registered plugins from these.
HYDRA_PLUGIN_KEYS = ("hydra.launcher._target_", "hydra.sweeper._target_")
# logging.config: the classes a handler, formatter or filter may name; streams it may reference.
LOGGING_CLASSES = (
    "logging.StreamHandler",
    "logging.FileHandler",
    "logging.NullHandler",
    "logging.Formatter",
    "colorlog.ColoredFormatter",
    "rich.logging.RichHandler",
)
LOGGING_STREAMS = ("ext://sys.stdout", "ext://sys.stderr")
RUN_FOLDER = ("${hydra.runtime.output_dir}/", "${hydra:runtime.output_dir}/")
LOGGING_SECTIONS = ("hydra.job_logging", "hydra.hydra_logging")
# The resolvers an interpolation may call: none of them can build a config node from a string.
RESOLVERS = ("oc.env", "hydra", "now", "mlzoo_run_label")

# What the command line allowed (allow_targets), for checkpoints loaded while a run is built
# (a transfer backbone, DPO's SFT reference): never what a loaded file says of itself.
_ALLOWED_BY_USER: ContextVar[tuple[str, ...]] = ContextVar("allow_targets", default=())


@contextlib.contextmanager
def allowed_by_user(extra: Iterable[str]) -> Iterator[None]:
    token = _ALLOWED_BY_USER.set(tuple(str(e) for e in extra or ()))
    try:
        yield
    finally:
        _ALLOWED_BY_USER.reset(token)


def user_allowed() -> tuple[str, ...]:
    return _ALLOWED_BY_USER.get()


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _locate(path: str) -> Any:
    """The object a dotted path names, importing as little as needed (hydra's own rule)."""
    from hydra.utils import get_object

    return get_object(path)


def _is(obj: Any, name: str) -> bool:
    """``obj`` is the object ``name`` names (never importing a package that is not loaded yet:
    a resolved object's own package always is)."""
    if name.split(".", 1)[0] not in sys.modules:
        return False
    try:
        return _locate(name) is obj
    except Exception:
        return False


def _family_member(obj: Any) -> bool:
    if not inspect.isclass(obj):
        return False
    top = str(getattr(obj, "__module__", "")).split(".", 1)[0]
    for module_name, base_name in FAMILIES:
        if module_name.split(".", 1)[0] != top:
            continue
        module = importlib.import_module(module_name)
        base = object if base_name == "object" else _locate(base_name)
        if getattr(module, obj.__name__, None) is obj and issubclass(obj, base):
            return True
    return False


def _zoo_class(obj: Any) -> bool:
    if not inspect.isclass(obj) or not str(getattr(obj, "__module__", "")).startswith("mlzoo."):
        return False
    return issubclass(obj, tuple(_locate(b) for b in ZOO_BASES))


def resolve_target(target: str) -> Any:
    """The object ``target`` names, or a ZooError (its package must be one the zoo uses)."""
    top = target.split(".", 1)[0]
    if top not in PACKAGES + PACKAGES_EXTRA:
        raise ZooError(f"{target}: not in a package the zoo is built from")
    try:
        return _locate(target)
    except Exception as err:
        raise ZooError(f"{target}: cannot be found ({one_line(err, 120)})") from None


def is_allowed(target: Any, extra: Iterable[str] = ()) -> bool:
    """Whether a ``_target_`` value names an allowed class or function (see the module's text)."""
    if not isinstance(target, str) or "${" in target:
        return False
    if any(_within(target, str(prefix)) for prefix in extra):
        return True  # the user's explicit choice on the command line
    try:
        obj = resolve_target(target)
    except ZooError:
        return False
    canonical = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"
    if any(_within(canonical, str(prefix)) for prefix in extra):
        return True  # allowed by what it is (allow_targets=[shutil.copyfile])
    if any(_is(obj, name) for name in EXCLUDED):
        return False
    return _zoo_class(obj) or any(_is(obj, name) for name in EXACT) or _family_member(obj)


def _refuse_target(key: str, target: Any, where: str) -> ZooError:
    if not isinstance(target, str) or "${" in target:
        return ZooError(
            f"{key}={target} ({where}): a _target_ must be written out as a dotted name, not "
            "built from an interpolation or another value (what is checked must be what is built)"
        )
    name = target
    with contextlib.suppress(ZooError):
        obj = resolve_target(target)
        name = f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', '?')}"
    resolved = f", which is {name}," if name != target else ""
    return ZooError(
        f"{key}={target} ({where}){resolved} is not a class the zoo instantiates (configs and "
        "checkpoints are data, never code: see the README's Security model). If you trust it, "
        f"allow it on the command line: allow_targets=[{target}]"
    )


MAX_ENTRIES = 100_000  # far above any zoo config (a 5,000-column table's run: ~10,000)


def check_size(tree: Any, where: str, limit: int = MAX_ENTRIES) -> None:
    """Refuse a tree of more than ``limit`` entries, counted as a walk would visit them: a YAML
    alias or a pickle memo can make a few hundred bytes a tree of billions (the "billion laughs"),
    which converting or checking would take forever."""
    seen, stack = 0, [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list | tuple):
            stack.extend(node)
        else:
            continue
        seen += max(1, len(node))
        if seen > limit:
            raise ZooError(
                f"{where}: more than {limit:,} entries (nested lists or repeated references); "
                "not a config the zoo writes"
            )


def _walk(node: Any, path: str) -> Iterator[tuple[str, str, Any]]:
    """(path, key, value) of every entry of a nested dict/list tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}" if path else str(key)
            yield here, str(key), value
            yield from _walk(value, here)
    elif isinstance(node, list | tuple):
        for i, value in enumerate(node):
            yield f"{path}[{i}]", f"[{i}]", value
            yield from _walk(value, f"{path}[{i}]")


def _resolvers(value: str) -> list[str]:
    """The resolvers an interpolation string calls, nested ones included, as OmegaConf's own
    grammar reads it (``\\${...}`` is text); a ZooError if the string is not an interpolation
    OmegaConf can read."""
    from omegaconf.grammar.gen.OmegaConfGrammarParser import OmegaConfGrammarParser
    from omegaconf.grammar_parser import parse

    names: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, OmegaConfGrammarParser.ResolverNameContext):
            names.append(node.getText())
        for child in getattr(node, "getChildren", lambda: ())():
            walk(child)

    walk(parse(value))
    return names


def _hydra_plugins() -> set[str]:
    """The launcher and sweeper classes registered with Hydra (the only ones Hydra builds)."""
    from hydra.core.plugins import Plugins
    from hydra.plugins.launcher import Launcher
    from hydra.plugins.sweeper import Sweeper

    found = [*Plugins.instance().discover(Launcher), *Plugins.instance().discover(Sweeper)]
    return {f"{c.__module__}.{c.__name__}" for c in found}


def _check_interpolation(path: str, value: str, where: str, from_file: bool = False) -> None:
    shown = value if len(value) <= 80 else value[:77] + "..."
    try:
        called = _resolvers(value)
    except Exception:
        raise ZooError(
            f"{path}={shown} ({where}): not an interpolation OmegaConf can read (write a "
            "literal $ as \\$)"
        ) from None
    for name in called:
        if name not in RESOLVERS:
            raise ZooError(
                f"{path}={shown} ({where}): the resolver {name} is not allowed: a resolver "
                "other than ${key} and " + ", ".join(RESOLVERS) + " can build config nodes, "
                "and so name code, after this check (see the README's Security model)"
            )
    if from_file:
        raise ZooError(
            f"{path}={shown} ({where}): a config read from a file holds no interpolations (every "
            "run writes its config and hyperparameters resolved), so none is followed"
        )


def check_interpolations(tree: Any, where: str = "config", from_file: bool = False) -> None:
    """Only the interpolation rule of :func:`check_tree` (cheap: no target is imported)."""
    for path, _key, value in _walk(tree, ""):
        if isinstance(value, str) and "${" in value:
            _check_interpolation(path, value, where, from_file)


def _check_logging(path: str, key: str, value: Any, where: str) -> None:
    """logging.config.dictConfig's code-naming keys, under hydra.job_logging / hydra_logging."""
    if key in ("class", "()") and value not in LOGGING_CLASSES:
        raise ZooError(
            f"{path}={value} ({where}): logging may use only {', '.join(LOGGING_CLASSES)}"
        )
    if isinstance(value, str) and value.startswith("ext://") and value not in LOGGING_STREAMS:
        raise ZooError(f"{path}={value} ({where}): logging may reference only sys.stdout/stderr")
    if key == "filename":
        name = str(value)
        inside = name.startswith(RUN_FOLDER) and ".." not in Path(name).parts
        if not inside:
            raise ZooError(
                f"{path}={name} ({where}): a log file must lie in the run folder "
                f"({RUN_FOLDER[0]}<name>); nothing outside it is written"
            )


def check_tree(
    tree: Any,
    extra: Iterable[str] = (),
    where: str = "config",
    resolved: bool = False,
    from_file: bool = False,
    hydra_plugins: bool = False,
) -> None:
    """Raise one ZooError line for the first entry of ``tree`` (a plain container, unresolved
    unless ``resolved``: then its strings are text) that would import or run code the zoo does
    not vouch for. ``from_file``: a config or hyperparameters someone else may have written,
    where no interpolation is followed at all. ``hydra_plugins``: Hydra's section of the command
    line's own composition, whose launcher and sweeper Hydra itself builds, from its registered
    plugin classes only (anywhere else such a class is no class the zoo builds)."""
    extra = tuple(str(e) for e in extra or ())
    for path, key, value in _walk(tree, ""):
        if not resolved and isinstance(value, str) and "${" in value:
            _check_interpolation(path, value, where, from_file)
        if key == "_target_":
            if hydra_plugins and path in HYDRA_PLUGIN_KEYS and value in _hydra_plugins():
                continue
            if not is_allowed(value, extra):
                raise _refuse_target(path, value, where)
        elif key == "entry_point":
            raise ZooError(
                f"{path}={value} ({where}): an environment's entry_point imports and runs "
                "code; register your environment in your own package and name its id"
            )
        elif key == "env_id" and isinstance(value, str) and ":" in value:
            raise ZooError(
                f"{path}={value} ({where}): a 'module:Env' id makes gymnasium import that "
                "module; import it yourself and register the environment, then name its id"
            )
        elif path in ("hydra.output_subdir", "hydra.sweep.subdir") and value is not None:
            name = str(value)
            if Path(name).is_absolute() or ".." in Path(name).parts:
                raise ZooError(
                    f"{path}={name} ({where}): must be a folder inside the run's own folder "
                    "(relative, without ..): Hydra would write over what is there"
                )
        if any(path.startswith(s + ".") for s in LOGGING_SECTIONS):
            _check_logging(path, key, value, where)


def check_config(
    cfg: DictConfig | dict,
    extra: Iterable[str] = (),
    where: str = "config",
    from_file: bool = False,
) -> None:
    """:func:`check_tree` of a config as written (an interpolation is not followed: it is refused
    where code is named, and may call only the resolvers in RESOLVERS; in a config read from a
    file, ``from_file``, there is none), then, if it resolves here, of the resolved config too."""
    written = isinstance(cfg, DictConfig | ListConfig)
    tree = OmegaConf.to_container(cfg, resolve=False) if written else cfg
    check_tree(tree, extra, where, from_file=from_file)
    try:
        resolved = OmegaConf.to_container(cfg if written else OmegaConf.create(cfg), resolve=True)
    except Exception:
        return  # e.g. hydra: outside a Hydra run: what is built resolves later, as checked above
    check_tree(resolved, extra, where, resolved=True)


def add_allow_targets_argument(parser: Any) -> None:
    """A script's ``--allow-targets``: the command line's opt-in for a loaded run's own code."""
    parser.add_argument(
        "--allow-targets",
        nargs="+",
        default=[],
        metavar="MODULE",
        help="modules or names whose _target_s you trust in this run's config (your own code)",
    )
