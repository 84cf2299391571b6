"""A test-only callback for DDP runs: every rank writes what it ended with (imported by the
spawned ranks through PYTHONPATH=tests)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import lightning as L


class RankProbe(L.Callback):
    def on_fit_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        digest = hashlib.sha256()
        for name, tensor in sorted(module.state_dict().items()):
            digest.update(name.encode() + tensor.detach().cpu().numpy().tobytes())
        out = Path(trainer.default_root_dir) / f"rank{trainer.global_rank}.json"
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        out.write_text(json.dumps({"weights": digest.hexdigest(), "metrics": metrics}))
