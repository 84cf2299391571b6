"""Training throughput per epoch, for the benchmarks: ``<run>/throughput.json``.

    python train.py allow_targets=[benchmarks] \\
        +callbacks.throughput._target_=benchmarks.throughput.Throughput

Each epoch's clock runs from the start of the training epoch to the end of its last training
batch: data loading, forward, backward, optimizer, every per-step hook, logging and progress bar
included; validation and checkpointing (after the last batch) excluded. On a GPU the clock waits
for the device at both ends of the epoch (kernels run asynchronously). Also recorded: the wall
time when the first training batch started (for time-to-first-step from a process launch) and
when each epoch's last batch ended (to line epochs up with another process's).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import lightning as L
import torch


def _wait_for(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Throughput(L.Callback):
    def __init__(self) -> None:
        self.epochs: list[dict[str, float]] = []
        self.first_step_at: float | None = None
        self._start = self._last = self._last_wall = 0.0
        self._samples = 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        _wait_for(pl_module.device)
        self._start = self._last = time.perf_counter()
        self._samples = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.first_step_at is None:
            self.first_step_at = time.time()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx + 1 >= trainer.num_training_batches:  # the epoch's last batch
            _wait_for(pl_module.device)
        self._last, self._last_wall = time.perf_counter(), time.time()
        self._samples += len(batch[0]) if isinstance(batch, list | tuple) else 1

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        seconds = self._last - self._start
        self.epochs.append(
            {"samples": self._samples, "seconds": seconds, "ended_at": self._last_wall}
        )

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            out = Path(trainer.default_root_dir) / "throughput.json"
            report = {"first_step_at": self.first_step_at, "epochs": self.epochs}
            out.write_text(json.dumps(report, indent=1))
