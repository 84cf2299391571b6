"""Save a checkpoint when fit stops on an exception (Ctrl-C included), to resume from later.

Lightning's OnExceptionCheckpoint does the same but also turns every later ``fit(ckpt_path=None)``
into ``ckpt_path="last"`` (a silent resume if the folder holds a last.ckpt); this one only saves.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch


class InterruptCheckpoint(L.Callback):
    """On an exception during fit, write ``<dirpath>/<filename>.ckpt`` (if the weights are finite)."""

    def __init__(self, dirpath: str, filename: str = "interrupted") -> None:
        self.path = Path(dirpath) / f"{filename}.ckpt"

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if not trainer.training:
            return
        if not all(torch.isfinite(p).all() for p in pl_module.parameters()):
            return  # a checkpoint of NaN weights is no use to resume from
        trainer.save_checkpoint(self.path)
