"""Building a run's parts from a checked config: the one place configs become objects.

Both the entry point (mlzoo.train) and checkpoint loading (mlzoo.core.checkpoint) build through
here, so every object a config names has passed mlzoo.core.targets' check first.
"""

from __future__ import annotations

import inspect
from typing import Any

import hydra
from omegaconf import DictConfig


def instantiate_model(model_cfg: DictConfig, datamodule: Any) -> Any:
    """Instantiate the model, filling what the data decides (input shape, task, classes, ...)."""
    target = hydra.utils.get_class(model_cfg._target_)
    accepted = inspect.signature(target.__init__).parameters
    spec = getattr(datamodule, "spec", {})
    from_data = {k: v for k, v in spec.items() if k in accepted and k not in model_cfg}
    return hydra.utils.instantiate(model_cfg, _convert_="all", **from_data)


def instantiate_all(group: DictConfig | None) -> list[Any]:
    """Every entry of a config group (callbacks, loggers), skipping the ones set to null."""
    return [hydra.utils.instantiate(c) for c in (group or {}).values() if c is not None]
