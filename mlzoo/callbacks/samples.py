"""SampleQuality: score a generative model's samples with the offline classifier FID.

Works for any LightningModule with ``sample(n, generator=...)`` returning images in the data
module's input space (the VAE, DCGAN and DDPM all do). Logs ``<stage>/fid_cls`` (NOT Inception FID:
see mlzoo/metrics/sample_quality.py) and ``<stage>/confident`` at test time, and every
``every_n_epochs`` validation epochs when that is > 0 (then a checkpoint can monitor val/fid_cls).
Samples come from a generator seeded with ``seed``: the same noise each time, and the training
run's own random stream is not touched (exact resume stays exact).
"""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from mlzoo.metrics.sample_quality import SampleScorer


class SampleQuality(Callback):
    def __init__(
        self, cache_dir: str, num_samples: int = 1000, every_n_epochs: int = 0, seed: int = 0
    ) -> None:
        if num_samples < 2 or every_n_epochs < 0:
            raise ValueError(
                f"need num_samples >= 2 and every_n_epochs >= 0, got {num_samples}, "
                f"{every_n_epochs}"
            )
        self.cache_dir, self.num_samples = cache_dir, num_samples
        self.every_n_epochs, self.seed = every_n_epochs, seed
        self._scorer: SampleScorer | None = None

    # A smoke run (trainer=debug: 6 steps) gets a 1-epoch classifier, cached under its own name:
    # its scores only show that scoring works, and it starts in seconds instead of a minute.
    SMOKE_STEPS = 100

    def setup(self, trainer: L.Trainer, module: L.LightningModule, stage: str) -> None:
        if self._scorer is None:  # the feature classifier: cached, or trained now (not in the loop)
            smoke = 0 < trainer.max_steps <= self.SMOKE_STEPS
            epochs = 1 if smoke else None
            self._scorer = SampleScorer(
                trainer.datamodule, self.cache_dir, classifier_epochs=epochs
            )

    def _score(self, trainer: L.Trainer, module: L.LightningModule, stage: str) -> None:
        assert self._scorer is not None
        generator = torch.Generator(device=module.device).manual_seed(self.seed)
        was_training = module.training
        module.eval()
        with torch.no_grad():
            samples = module.sample(self.num_samples, generator=generator)
        module.train(was_training)
        for name, value in self._scorer(samples).items():
            module.log(f"{stage}/{name}", value, on_epoch=True)

    def on_validation_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        n = self.every_n_epochs
        if n and not trainer.sanity_checking and (trainer.current_epoch + 1) % n == 0:
            self._score(trainer, module, "val")

    def on_test_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._score(trainer, module, "test")
