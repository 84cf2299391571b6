"""Stop a run the moment its loss or weights stop being finite numbers.

A NaN or inf loss poisons the weights on the next optimizer step, and every step after that is
wasted; worse, a checkpoint written afterwards would replace a good one with NaNs. This callback
checks every tensor a training step returns (its loss, or its loss's parts) and, where a
concept returns only the parts (the agents, the GAN), the trainable weights after its step (a
returned loss covers them: non-finite weights make the next loss non-finite); the first
non-finite value ends the run with a NonFiniteError naming the step and the
metric. As a last line of defence it refuses to let a checkpoint with non-finite weights be
written, so the last checkpoint on disk always holds the weights from before the divergence.

On a GPU, asking "is this loss finite?" makes the CPU wait for the GPU (a synchronization): done
every step, the CPU can no longer queue the next step's work while the GPU runs this one, which
costs a GPU-bound network a visible share of its throughput (figures: BENCHMARKS.md, Figures
moved from code comments). So there the checks stay on the device, a flag per value and the step
it first went bad, and are read every ``every_n_steps`` steps, at each epoch's end, before
validation and before every checkpoint; the error still names the first bad step. On the CPU a
check costs nothing extra and runs every step.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch

from mlzoo.base.errors import ZooError


class NonFiniteError(ZooError):
    """The loss or the weights became NaN or inf."""


def first_non_finite(named: dict[str, Any]) -> tuple[str, float] | None:
    """(name, value) of the first floating tensor holding a NaN or inf, else None."""
    for name, value in named.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            if value.numel() == 1:  # a loss: one read, no tensor ops (cheaper on a CPU)
                number = value.item()
                if not math.isfinite(number):
                    return name, number
                continue
            bad = ~torch.isfinite(value.detach())
            if bad.any():
                return name, float(value.detach()[bad].flatten()[0])
    return None


def advice(module: Any) -> str:
    """What to try, with the concept's one clipping setting (ZooModule.own_clip_setting)."""
    setting = getattr(module, "own_clip_setting", None) or "trainer.gradient_clip_val"
    return f"Lower the learning rate or clip gradients ({setting}=1.0)"


GPU_EVERY = 10  # steps between reads of the checks on an accelerator, unless every_n_steps says


class FiniteGuard(L.Callback):
    """Raise NonFiniteError on the first non-finite training loss or weight.

    every_n_steps: how often checks on a GPU are read back (None: every 10 steps there, every
    step on the CPU; 1: every step everywhere). Deferred checks are also read at each epoch's
    end, before validation and before a checkpoint is written."""

    def __init__(self, every_n_steps: int | None = None) -> None:
        if every_n_steps is not None and every_n_steps < 1:
            raise ValueError(f"every_n_steps must be at least 1, got {every_n_steps}")
        self.every_n_steps = every_n_steps
        self.every = every_n_steps or 1  # resolved at the first batch, once the device is known
        self.names: list[str] = []
        self.batches = 0
        self.first_bad: torch.Tensor | None = None  # per name: the first bad step, -1 while fine

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, i: int
    ) -> None:
        if isinstance(outputs, torch.Tensor):
            outputs = {"loss": outputs}
        watched = dict(outputs) if isinstance(outputs, dict) else {}
        if "loss" not in watched:  # only parts returned (agents, the GAN): the stepped weights
            watched.update((n, p) for n, p in pl_module.named_parameters() if p.requires_grad)
        watched = {
            k: v.detach()
            for k, v in watched.items()
            if isinstance(v, torch.Tensor) and v.is_floating_point()
        }
        if not watched:
            return
        device, self.batches = pl_module.device, self.batches + 1
        if self.batches == 1 and self.every_n_steps is None and device.type != "cpu":
            self.every = GPU_EVERY
        if self.every == 1:
            found = first_non_finite(watched)
            if found is not None:
                name, value = found
                raise NonFiniteError(
                    f"{name} became {value} at step {trainer.global_step} (epoch "
                    f"{trainer.current_epoch}); the run stopped there and its last checkpoint "
                    f"holds the weights from before. {advice(trainer.lightning_module)}"
                )
            return
        # deferred: record on the device where each value first went bad; read every n steps
        if list(watched) != self.names:
            self.read(trainer)
            self.names, self.first_bad = list(watched), None
        bad = torch.stack(
            [(~torch.isfinite(v).all()).to(device, non_blocking=True) for v in watched.values()]
        )
        if self.first_bad is None:
            self.first_bad = torch.full((len(bad),), -1, dtype=torch.long, device=device)
        self.first_bad = self.first_bad.masked_fill(bad & (self.first_bad < 0), trainer.global_step)
        if self.batches % self.every == 0:
            self.read(trainer)

    def read(self, trainer: L.Trainer) -> None:
        """Read the deferred checks back (one synchronization); raise if any value went bad."""
        if self.first_bad is None:
            return
        steps = self.first_bad.tolist()
        bad = [(step, name) for step, name in zip(steps, self.names, strict=True) if step >= 0]
        if bad:
            step, name = min(bad)
            raise NonFiniteError(
                f"{name} became non-finite at step {step} (read at step {trainer.global_step}: "
                f"on this device the check is read every {self.every} steps); "
                f"the run stopped and its last checkpoint holds finite weights. {advice(trainer.lightning_module)}"
            )

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.read(trainer)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.read(trainer)  # NaN weights must not reach validation (NaN images crash FID's LAPACK)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.read(trainer)

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self.read(trainer)
        found = first_non_finite(checkpoint.get("state_dict", {}))
        if found is not None:
            raise NonFiniteError(
                f"weight {found[0]} became {found[1]} at step {trainer.global_step}; that "
                f"checkpoint was not written (the last one on disk holds finite weights). {advice(trainer.lightning_module)}"
            )
