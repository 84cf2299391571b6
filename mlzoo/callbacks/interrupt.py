"""Save a checkpoint when a run is stopped with Ctrl-C (SIGINT) or SIGTERM, to resume from later.

Lightning turns SIGINT into KeyboardInterrupt and SIGTERM (what ``kill``, a job scheduler or a
container runtime sends) into SIGTERMException at the next batch boundary; both reach
``on_exception`` here. Lightning's OnExceptionCheckpoint does the same but also turns every later
``fit(ckpt_path=None)`` into ``ckpt_path="last"`` (a silent resume if the folder holds a
last.ckpt), and it saves on any exception, even one raised while a resume is still loading
(overwriting a good file with an untrained model). This one saves only on those two signals, only
after at least one training step, and never over an existing file:
``<dirpath>/interrupted-step<N>.ckpt``.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException


class InterruptCheckpoint(L.Callback):
    """On Ctrl-C or SIGTERM during fit, write ``<dirpath>/<filename>-step<N>.ckpt`` (finite weights only)."""

    def __init__(self, dirpath: str, filename: str = "interrupted") -> None:
        self.dirpath, self.filename = Path(dirpath), filename
        self.saved: Path | None = None

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if not isinstance(exception, KeyboardInterrupt | SIGTERMException):
            return
        if trainer.global_step == 0:
            return
        if not all(torch.isfinite(p).all() for p in pl_module.parameters()):
            return  # a checkpoint of NaN weights is no use to resume from
        path = self.dirpath / f"{self.filename}-step{trainer.global_step}.ckpt"
        if not path.exists():
            trainer.save_checkpoint(path)
        self.saved = path
