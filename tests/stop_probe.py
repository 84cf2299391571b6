"""Test-only callbacks, loaded through configs with allow_targets=[stop_probe]."""

from __future__ import annotations

import json
import os
import signal

import lightning as L
import torch


class StopAfterEpochs(L.Callback):
    """End fit after ``epochs`` whole epochs, as if the run had been stopped there."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch + 1 >= self.epochs:
            trainer.should_stop = True


class PoisonWeights(L.Callback):
    """Set one weight to NaN before training step ``at``: the loss of that step is not finite."""

    def __init__(self, at: int = 2) -> None:
        self.at, self.calls = at, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.calls += 1
        if self.calls == self.at:
            with torch.no_grad():
                next(p for p in pl_module.parameters() if p.requires_grad).view(-1)[0] = float(
                    "nan"
                )


class SignalAt(L.Callback):
    """Send this process a signal after training step ``at`` (as `kill -TERM <pid>` would)."""

    def __init__(self, signum: int, at: int = 4) -> None:
        self.signum, self.at, self.calls = signum, at, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.calls += 1
        if self.calls == self.at:
            os.kill(os.getpid(), self.signum)


class SignalInSave(L.Callback):
    """Send this process a signal while checkpoint number ``at`` of the run is being written
    (a callback's state is gathered inside the save): a Ctrl-C that lands mid-save."""

    def __init__(self, at: int = 3, signum: int = int(signal.SIGINT)) -> None:
        self.signum, self.at, self.calls = signum, at, 0

    def state_dict(self) -> dict:
        self.calls += 1
        if self.calls == self.at:
            os.kill(os.getpid(), self.signum)
        return {}


class GradNormProbe(L.Callback):
    """Record the gradient norm each optimizer steps with (after any clipping) in a JSON file."""

    def __init__(self, path: str) -> None:
        self.path, self.norms = path, []

    def on_train_end(self, trainer, pl_module) -> None:
        with open(self.path, "w") as f:
            json.dump(self.norms, f)

    def _norm(self, optimizer) -> float:
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        return (
            float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])))
            if grads
            else 0.0
        )

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.hooked = False

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if not pl_module.automatic_optimization:  # called inside opt.step(): after the clip
            self.norms.append(self._norm(optimizer))
            self.hooked = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # automatic: Lightning clips after on_before_optimizer_step; manual updates on the torch
        # optimizer (the agents: optimizers(use_pl_optimizer=False)) call no hooks: the last gradients
        if pl_module.automatic_optimization or not self.hooked:
            for optimizer in trainer.optimizers:
                self.norms.append(self._norm(optimizer))
