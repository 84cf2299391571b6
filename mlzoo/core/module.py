"""ZooModule: the LightningModule base every concept shares for its optimizer and LR schedule.

Optimizers and schedulers are injected by Hydra as partials (``_partial_: true``), so a user swaps
them from the command line (``optimizer=sgd``, ``scheduler=cosine``) without touching the concept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import lightning as L
import torch

_PLAIN_PRECISIONS = ("32-true", "32", "64-true", "bf16-mixed", "bf16-true")
OptimizerFactory = Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer], Any]


class ZooModule(L.LightningModule):
    """Base class: holds the injected optimizer/scheduler factories and builds them on demand."""

    def __init__(
        self,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        scheduler_interval: str = "epoch",
    ) -> None:
        super().__init__()
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(
                f"scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}"
            )
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_interval = scheduler_interval

    # Trainer(gradient_clip_val=...) clips only under automatic optimization. For a concept that
    # steps its own optimizers, train.py hands the configured value over here, and the concept
    # clips through clip_manual() before each optimizer step.
    manual_clip_val: float | None = None
    manual_clip_algorithm: str = "norm"

    def clip_manual(self, optimizer: Any, default: float | None = None) -> None:
        """Clip the gradients of ``optimizer``'s parameters: to trainer.gradient_clip_val when the
        config sets it, else to the concept's own ``default`` (None or 0: no clipping)."""
        value = self._clip_value(default)
        if value:
            self.clip_gradients(
                optimizer,
                gradient_clip_val=value,
                gradient_clip_algorithm=self.manual_clip_algorithm,
            )

    def _clip_value(self, default: float | None) -> float | None:
        return self.manual_clip_val if self.manual_clip_val is not None else default

    def optimizer_update(
        self, optimizer: Any, loss: torch.Tensor, max_grad_norm: float | None = None
    ) -> None:
        """One gradient step for a manual-optimization concept: zero_grad, backward, clip, step.

        Lightning's manual path (manual_backward, then LightningOptimizer.step) calls every
        callback's backward and optimizer hooks around each update: ~0.35 ms on a CPU, most of
        what made DQN (128 small updates per 256 env steps) slower than Stable-Baselines3. In one
        process without fp16 loss scaling nothing needs those hooks, so the update runs on the
        torch optimizer itself and the trainer's step counter is advanced as Lightning would.
        """
        trainer = self.trainer
        plain = trainer.world_size == 1 and str(trainer.precision) in _PLAIN_PRECISIONS
        if not plain:
            optimizer.zero_grad()
            self.manual_backward(loss)
            self.clip_manual(optimizer, max_grad_norm)
            optimizer.step()
            return
        raw = optimizer.optimizer  # the torch optimizer inside Lightning's wrapper
        raw.zero_grad()
        loss.backward()
        value = self._clip_value(max_grad_norm)
        if value:
            params = [p for group in raw.param_groups for p in group["params"]]
            if self.manual_clip_algorithm == "value":
                torch.nn.utils.clip_grad_value_(params, value)
            else:
                torch.nn.utils.clip_grad_norm_(params, value)
        raw.step()
        progress = trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress
        progress.increment_ready()  # global_step counts optimizer steps, as with opt.step()
        progress.increment_completed()

    def param_groups(self) -> list[dict[str, Any]]:
        """What the optimizer trains: one group of every trainable parameter. A concept may split
        them; a group's ``lr_scale`` multiplies the optimizer's learning rate for that group."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    def configure_optimizers(self) -> Any:
        groups = self.param_groups()
        scales = [group.pop("lr_scale", 1.0) for group in groups]
        optimizer = self.optimizer_factory(groups)
        for group, scale in zip(optimizer.param_groups, scales, strict=True):
            group["lr"] *= scale
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": self.scheduler_interval},
        }

    def on_train_epoch_start(self) -> None:
        # The learning rate each epoch runs at, beside the losses (a logger-free LR monitor).
        optimizers = self.trainer.optimizers
        if optimizers:
            lr = float(optimizers[0].param_groups[0]["lr"])
            self.log("train/lr", lr, on_step=False, on_epoch=True)
