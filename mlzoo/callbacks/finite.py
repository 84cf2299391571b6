"""Stop a run the moment its loss or weights stop being finite numbers.

A NaN or inf loss poisons the weights on the next optimizer step, and every step after that is
wasted; worse, a checkpoint written afterwards would replace a good one with NaNs. This callback
checks every tensor a training step returns (automatic optimization: its loss; the zoo's
manual-optimization concepts return their losses too) and, for those concepts, the weights after
the step; the first non-finite value ends the run with a NonFiniteError naming the step and the
metric. As a last line of defence it refuses to let a checkpoint with non-finite weights be
written, so the last checkpoint on disk always holds the weights from before the divergence.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from mlzoo.core.errors import ZooError


class NonFiniteError(ZooError):
    """The loss or the weights became NaN or inf."""


def first_non_finite(named: dict[str, Any]) -> tuple[str, float] | None:
    """(name, value) of the first floating tensor holding a NaN or inf, else None."""
    for name, value in named.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            bad = ~torch.isfinite(value.detach())
            if bad.any():
                return name, float(value.detach()[bad].flatten()[0])
    return None


class FiniteGuard(L.Callback):
    """Raise NonFiniteError on the first non-finite training loss or weight."""

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, i: int
    ) -> None:
        if isinstance(outputs, torch.Tensor):
            outputs = {"loss": outputs}
        found = first_non_finite(outputs) if isinstance(outputs, dict) else None
        if found is None and not pl_module.automatic_optimization:
            found = first_non_finite(dict(pl_module.named_parameters()))
        if found is not None:
            name, value = found
            raise NonFiniteError(
                f"{name} became {value} at step {trainer.global_step} (epoch "
                f"{trainer.current_epoch}); the run stopped there and its last checkpoint holds "
                "the weights from before. Lower the learning rate or clip gradients "
                "(trainer.gradient_clip_val=1.0)"
            )

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        found = first_non_finite(checkpoint.get("state_dict", {}))
        if found is not None:
            raise NonFiniteError(
                f"weight {found[0]} became {found[1]} at step {trainer.global_step}; that "
                "checkpoint was not written (the last one on disk holds finite weights). Lower "
                "the learning rate or clip gradients (trainer.gradient_clip_val=1.0)"
            )
