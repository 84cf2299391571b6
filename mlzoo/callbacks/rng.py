"""Keep the random number generators in the checkpoint, so a resumed run draws what the
uninterrupted run would have drawn (dropout masks, noise, exploration).

States are stored as tensors and lists only, so the checkpoint still loads with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch


class RNGStateCallback(L.Callback):
    """Saves the Python, NumPy, torch CPU (and CUDA) generator states; restores them on resume."""

    key = "mlzoo_rng_states"

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        version, state, gauss = random.getstate()
        np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
        states: dict[str, Any] = {
            "python": [version, list(state), gauss],
            "numpy": [
                np_kind,
                torch.from_numpy(np_keys.astype(np.int64)),
                np_pos,
                np_has_gauss,
                np_gauss,
            ],
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            states["cuda"] = torch.cuda.get_rng_state_all()
        checkpoint[self.key] = states

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        states = checkpoint.get(self.key)
        if states is None:
            return
        version, state, gauss = states["python"]
        random.setstate((version, tuple(state), gauss))
        np_kind, np_keys, np_pos, np_has_gauss, np_gauss = states["numpy"]
        np.random.set_state(
            (np_kind, np_keys.numpy().astype(np.uint32), np_pos, np_has_gauss, np_gauss)
        )
        torch.set_rng_state(states["torch"])
        if "cuda" in states and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(states["cuda"])
