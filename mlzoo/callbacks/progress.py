"""Lightning's rich progress bar, its training bar updated at most ``refresh_rate`` times a second.

RichProgressBar redraws from a background thread at ``refresh_rate`` per second, but it updates
its task and re-collects the logged metrics on every training batch, a cost that shows beside a
small model's whole step (figures: BENCHMARKS.md, Figures moved from code comments). Here a batch
updates the bar only when 1/refresh_rate seconds have passed since the last update, or when it
ends the epoch; what is drawn is the same.
"""

from __future__ import annotations

import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar


class ProgressBar(RichProgressBar):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._updated_at = float("-inf")

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, i: int
    ) -> None:
        now = time.monotonic()
        last = i + 1 >= trainer.num_training_batches
        if last or self.refresh_rate <= 0 or now - self._updated_at >= 1 / self.refresh_rate:
            self._updated_at = now
            super().on_train_batch_end(trainer, pl_module, outputs, batch, i)
