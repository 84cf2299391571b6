"""mlzoo: a PyTorch reference model zoo.

Every core concept of deep learning is one readable LightningModule (``mlzoo/models``) with one
Hydra config (``configs/model``), trained by one command: ``python train.py model=<concept>``.

    import mlzoo
    model = mlzoo.load("logs/runs/mlp-digits/<run>/checkpoints/last.ckpt")   # any concept
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlzoo.base.errors import ZooError
from mlzoo.base.loader import register_checkpoint_loader

__all__ = ["ZooError", "load"]
__version__ = "0.1.0"


def load(path: str | Path, trust: bool = False, allow_targets: tuple[str, ...] = ()) -> Any:
    """The trained model of a zoo checkpoint, in eval mode on the CPU, rebuilt from its run
    folder's config.yaml (``MLPModule.load_from_checkpoint(path)`` does the same). For its data
    module and config too: mlzoo.run.load.load_checkpoint. ``trust`` and
    ``allow_targets``: as trust_checkpoint and allow_targets in a run (checkpoints and configs
    from others are data, never code, unless these say so)."""
    from mlzoo.run.load import load_checkpoint

    model, _, _ = load_checkpoint(path, trust=trust, allow_targets=allow_targets)
    return model


register_checkpoint_loader(load)  # MLPModule.load_from_checkpoint(path), for every concept
