"""Save a checkpoint when a run is stopped with Ctrl-C (SIGINT) or SIGTERM, to resume from later.

Lightning turns SIGTERM (what ``kill``, a job scheduler or a container runtime sends) into
SIGTERMException at the next batch boundary. Ctrl-C, left to Python, raises KeyboardInterrupt
wherever the run happens to be: inside an optimizer step, or inside a checkpoint save, where it
left the best checkpoint unwritten while the callback state saved after it still named that file
(a resumed run then failed to test it). So during fit this callback holds a Ctrl-C back to the
next batch boundary too; a second Ctrl-C stops the run at once. Both signals reach
``on_exception`` here.

Lightning's OnExceptionCheckpoint does the same saving but also turns every later
``fit(ckpt_path=None)`` into ``ckpt_path="last"`` (a silent resume if the folder holds a
last.ckpt), and it saves on any exception, even one raised while a resume is still loading
(overwriting a good file with an untrained model). This one saves only on those two signals, only
after at least one training step, and never over an existing file:
``<dirpath>/interrupted-step<N>.ckpt``.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException


class InterruptCheckpoint(L.Callback):
    """On Ctrl-C or SIGTERM during fit, write ``<dirpath>/<filename>-step<N>.ckpt`` (finite weights only)."""

    def __init__(self, dirpath: str, filename: str = "interrupted") -> None:
        self.dirpath, self.filename = Path(dirpath), filename
        self.saved: Path | None = None
        self._ctrl_c = False  # a Ctrl-C waiting for the next batch boundary
        self._previous: Any = None  # the SIGINT handler before fit (restored after it)

    # --- Ctrl-C at a batch boundary ---------------------------------------------------------------
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # Only where Ctrl-C raises KeyboardInterrupt now (a background job ignores SIGINT; signal
        # handlers can only be set from the main thread).
        if stage != "fit" or threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._ctrl_c, self._previous = False, signal.default_int_handler
            signal.signal(signal.SIGINT, self._hold_ctrl_c)

    def _hold_ctrl_c(self, signum: int, frame: Any) -> None:
        if self._ctrl_c:  # the second Ctrl-C: stop now, wherever the run is
            raise KeyboardInterrupt
        self._ctrl_c = True
        print("\nCtrl-C: stopping at the next batch (Ctrl-C again: now)", file=sys.stderr)

    def _stop_if_asked(self) -> None:
        if self._ctrl_c:
            self._ctrl_c = False
            raise KeyboardInterrupt  # Lightning stops the run and calls on_exception

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        self._stop_if_asked()

    def on_validation_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        self._stop_if_asked()

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self._restore_ctrl_c()
        self._stop_if_asked()  # a Ctrl-C after the last batch still stops the run

    def _restore_ctrl_c(self) -> None:
        # Not over Lightning's own SIG_IGN, set while it shuts down after a Ctrl-C.
        if self._previous is not None and signal.getsignal(signal.SIGINT) == self._hold_ctrl_c:
            signal.signal(signal.SIGINT, self._previous)
        self._previous = None

    # --- the checkpoint ---------------------------------------------------------------------------
    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._restore_ctrl_c()
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
