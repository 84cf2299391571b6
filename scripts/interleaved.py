"""The overhead benchmark's interleaved mode: the plain loop's steps taken inside the zoo's run.

After every training step of the zoo, this callback takes one step of the plain, hand-written
loop (scripts/plain_loop.py: its own copy of the network, optimizer and batches) and times it.
Each epoch then yields both figures from the same stretch of time, step by step:

    plain seconds = the sum of the plain loop's steps (its batch fetching included)
    zoo seconds   = the epoch's wall time (its start to its last batch's end) - plain seconds

so a slow spell of a shared machine (here the same loop's steps swing between ~50 and ~75 ms
within seconds) falls on both, not on whichever ran in it. What it cannot see is a cost the
zoo's process has and a separate plain process would not (imports, memory): the alternating
mode, separate processes, shows that, with more noise. CPU only.

    PYTHONPATH=scripts python train.py model=cnn torch_threads=1 allow_targets=[interleaved] \\
        +callbacks.plain._target_=interleaved.InterleavedPlainLoop +callbacks.plain.spec=SPEC.json

writes <run>/interleaved.json: per epoch, the steps, and the zoo's and the plain loop's samples
and seconds (SPEC.json: what scripts/benchmark.py's _plain_inputs returns; `benchmark.py
overhead` does all of this).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import lightning as L
from plain_loop import PlainLoop


class InterleavedPlainLoop(L.Callback):
    def __init__(self, spec: str) -> None:
        self.spec = json.loads(Path(spec).read_text())
        self.epochs: list[dict[str, float]] = []
        self.first_step_at: float | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if pl_module.device.type != "cpu":
            raise ValueError("the interleaved overhead benchmark runs on the CPU")
        self.plain = PlainLoop(self.spec)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = self._end = time.perf_counter()
        self._plain_seconds, self._plain_samples, self._zoo_samples, self._steps = 0.0, 0, 0, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.first_step_at is None:
            self.first_step_at = time.time()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._zoo_samples += len(batch[0])
        self._steps += 1
        start = time.perf_counter()
        self._plain_samples += self.plain.step()
        self._end = time.perf_counter()
        self._plain_seconds += self._end - start

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # _end: the last training batch's (validation, after it, is not counted)
        wall = self._end - self._start
        self.epochs.append(
            {
                "steps": self._steps,
                "zoo_samples": self._zoo_samples,
                "zoo_seconds": wall - self._plain_seconds,
                "plain_samples": self._plain_samples,
                "plain_seconds": self._plain_seconds,
            }
        )

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        out = Path(trainer.default_root_dir) / "interleaved.json"
        out.write_text(json.dumps({"first_step_at": self.first_step_at, "epochs": self.epochs}))
