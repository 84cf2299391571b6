"""Which classes and functions a config may name in ``_target_``.

Hydra instantiates whatever ``_target_`` names, so a config (or one override on the command line,
or the config.yaml of a downloaded run folder) could otherwise call any function in any installed
module: ``+callbacks.x._target_=os.system``. Before anything is instantiated, every ``_target_`` in
the composed config is checked against the packages a zoo run is built from; anything else is
refused with one line, unless the user names its module in ``allow_targets`` (for their own
models or callbacks: ``allow_targets=[mypackage]``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mlzoo.core.errors import ZooError

ALLOWED_MODULES = (
    "mlzoo",
    "torch",
    "torchvision",
    "torchmetrics",
    "lightning",
    "gymnasium",
    "ale_py",
    "transformers",
    "peft",
)
# Exact names outside those packages that a shipped config uses.
ALLOWED_NAMES = ("signal.Signals",)  # trainer=slurm: the requeue signal
# Inside allowed packages, entry points that load or run code from files or the network.
DENIED = (
    "torch.load",
    "torch.hub",
    "torch.jit.load",
    "torch.package",
    "torch.utils.cpp_extension",
    "torch.ops",
    "torch.classes",
    "torch.serialization",
    "transformers.AutoModel.from_pretrained",  # trust_remote_code lives behind these
    "transformers.pipeline",
)


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def is_allowed(target: str, extra: Iterable[str] = ()) -> bool:
    if any(_within(target, prefix) for prefix in extra):
        return True  # the user's explicit choice wins, even over DENIED
    if any(_within(target, d) for d in DENIED):
        return False
    return target in ALLOWED_NAMES or any(_within(target, m) for m in ALLOWED_MODULES)


def _targets(node: Any, path: str) -> Iterable[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}" if path else str(key)
            if key == "_target_":
                yield here, value
            else:
                yield from _targets(value, here)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _targets(value, f"{path}[{i}]")


def check_targets(cfg: DictConfig, extra: Iterable[str] = (), where: str = "config") -> None:
    """Raise a ZooError for the first ``_target_`` outside the allowlist (``hydra`` is skipped:
    Hydra's own launchers and sweepers are instantiated by Hydra before any run starts)."""
    extra = [str(e) for e in extra]
    try:
        tree = OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # an interpolation that only Hydra can resolve: check the raw strings
        tree = OmegaConf.to_container(cfg, resolve=False)
    tree.pop("hydra", None)
    for key, target in _targets(tree, ""):
        if not isinstance(target, str) or not is_allowed(target, extra):
            raise ZooError(
                f"{key}={target} ({where}) is not a class the zoo instantiates: targets must "
                f"come from {', '.join(ALLOWED_MODULES)}. If you trust it, allow its module: "
                f"allow_targets=[{str(target).split('.')[0]}]"
            )
