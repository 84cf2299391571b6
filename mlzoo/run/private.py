"""The one file that touches a framework's private names, each with the public hook it stands in for.

Hydra: ``hydra._internal.config_loader_impl.ConfigLoaderImpl.load_configuration``. The trust check
(mlzoo.run.guard) must see every config Hydra composes (the command line's, each sweep job's)
before Hydra acts on it: configures logging, creates the run folder, builds its callbacks,
launcher or sweeper from ``_target_`` names the config holds. Hydra offers no public hook that
runs that early (its ``Callback`` hooks are themselves built from the config, and ``@hydra.main``
composes before user code runs), so the one method every composition passes through is wrapped.

Lightning: none. (TensorBoard's event writer is reached through SummaryWriter's public
``file_writer`` attribute.)

tests/test_layers.py fails, naming the missing name, when a new version moves one of these, and
fails when a private name of either framework appears anywhere else in the package.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# (module, attribute path): every private name used here, checked by tests/test_layers.py
PRIVATE_NAMES = (("hydra._internal.config_loader_impl", "ConfigLoaderImpl.load_configuration"),)


def wrap_hydra_composition(wrapper: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    """Replace Hydra's ``load_configuration(self, config_name, overrides, run_mode, ...)`` with
    ``wrapper(original)``: every composition of this process passes through it."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    ConfigLoaderImpl.load_configuration = wrapper(ConfigLoaderImpl.load_configuration)
