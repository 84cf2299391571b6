"""The overhead benchmark's interleaved mode: the plain loop's steps taken inside the zoo's run.

After every training step of the zoo, this callback takes one step of the plain, hand-written
loop (benchmarks/plain_loop.py: its own copy of the network, optimizer and batches) and times it.
Each epoch then yields both figures from the same stretch of time, step by step:

    plain seconds = the sum of the plain loop's steps (its batch fetching included)
    zoo seconds   = the epoch's wall time (its start to its last batch's end) - plain seconds

so a slow spell of a shared machine (here the same loop's steps swing between ~50 and ~75 ms
within seconds) falls on both, not on whichever ran in it. What it cannot see is a cost the
zoo's process has and a separate plain process would not (imports, memory): the alternating
mode, separate processes, shows that, with more noise. CPU only.

    python train.py model=cnn torch_threads=1 allow_targets=[benchmarks] \\
        +callbacks.plain._target_=benchmarks.interleaved.InterleavedPlainLoop \\
        +callbacks.plain.spec=SPEC.json

It is the Throughput callback (its clock, its <run>/throughput.json) with, per epoch, the zoo's
own seconds and the plain loop's steps, samples and seconds (SPEC.json: what
benchmarks/overhead_runs.py's plain_inputs returns; `python benchmarks/run.py overhead` does
all of this).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import lightning as L

from benchmarks.plain_loop import PlainLoop
from benchmarks.throughput import Throughput


class InterleavedPlainLoop(Throughput):
    def __init__(self, spec: str) -> None:
        super().__init__()
        self.spec = json.loads(Path(spec).read_text())

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if pl_module.device.type != "cpu":
            raise ValueError("the interleaved overhead benchmark runs on the CPU")
        self.plain = PlainLoop(self.spec)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        self._steps, self._plain_samples, self._plain_seconds = 0, 0, 0.0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        start = time.perf_counter()
        self._plain_samples += self.plain.step()
        self._plain_seconds += time.perf_counter() - start
        self._steps += 1
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)  # clock: after

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        epoch = self.epochs[-1]
        epoch["seconds"] -= self._plain_seconds  # the zoo's own
        epoch.update(
            steps=self._steps, plain_samples=self._plain_samples, plain_seconds=self._plain_seconds
        )
