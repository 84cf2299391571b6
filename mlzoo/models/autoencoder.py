"""Autoencoder: learn to compress an input through a narrow code and rebuild it, without labels.

Rumelhart, Hinton & Williams (1986); Hinton & Salakhutdinov (2006), "Reducing the dimensionality
of data with neural networks"; denoising: Vincent et al. (2008).

An encoder maps x to a code z with far fewer numbers than x; a decoder maps z back:

    z = f_enc(x),    x_hat = sigmoid(f_dec(z))                 (pixels live in [0, 1])
    L = BCE(x_hat, x) = -mean[x log x_hat + (1 - x) log(1 - x_hat)]      reconstruction loss

The bottleneck forces z to keep what matters most about x (with one linear layer and squared error
the optimum spans the same subspace as PCA). A *denoising* autoencoder corrupts its input first,
x_tilde = x + sigma * eps, and still rebuilds the clean x, so it must learn the data's structure
rather than copy pixels.

What you get in TensorBoard: reconstructions beside their inputs (Images tab, every validation
epoch), and the test codes z with their labels and thumbnails in the embedding projector
(Projector tab). ``anomaly_score(x)`` is the per-example reconstruction error: inputs unlike the
training data reconstruct badly, so a high score flags them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.utils import make_grid

from mlzoo.base.module import Exported, OptimizerFactory, SchedulerFactory, ZooModule
from mlzoo.base.tensorboard import log_embedding, log_image
from mlzoo.nets.autoencoder import Sigmoid, encoder_decoder


class AutoencoderModule(ZooModule):
    """An MLP or convolutional autoencoder on inputs in [0, 1]; labels are only used for plots."""

    def __init__(
        self,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        input_shape: Sequence[int] = (1, 8, 8),
        arch: str = "mlp",
        latent_dim: int = 8,
        noise_std: float = 0.0,
        num_images: int = 16,
    ) -> None:
        super().__init__(optimizer, scheduler)
        self.save_hyperparameters(ignore=["optimizer", "scheduler"], logger=False)
        if latent_dim < 1 or noise_std < 0:
            raise ValueError(
                f"need latent_dim >= 1 and noise_std >= 0, got {latent_dim}, {noise_std}"
            )
        self.encoder, self.decoder = encoder_decoder(arch, input_shape, latent_dim)
        self._test_codes: list[tuple[Tensor, Tensor, Tensor]] = []

    def forward(self, x: Tensor) -> Tensor:
        """The reconstruction x_hat of x, in [0, 1]."""
        return torch.sigmoid(self.decoder(self.encoder(x)))

    def anomaly_score(self, x: Tensor) -> Tensor:
        """Per-example reconstruction error, mean over pixels of (x_hat - x)^2: high = unusual."""
        with torch.no_grad():
            return ((self(x) - x) ** 2).flatten(1).mean(1)

    def exported_networks(self) -> dict[str, Exported]:
        """``encoder`` x -> z and ``decoder`` z -> x_hat in [0, 1]."""
        gen = torch.Generator().manual_seed(0)
        shape = [int(d) for d in self.hparams.input_shape]
        x = torch.rand(2, *shape, generator=gen).to(self.device)
        with torch.no_grad():
            z = self.encoder(x)
        return {
            "encoder": Exported(self.encoder, (x,), ["x"], ["z"]),
            "decoder": Exported(Sigmoid(self.decoder), (z,), ["z"], ["x_hat"]),
        }

    def _step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        x, _ = batch
        x_in = x
        sigma = self.hparams.noise_std
        if self.training and sigma > 0:  # denoising: corrupt the input, not the target
            x_in = (x + sigma * torch.randn_like(x)).clamp(0.0, 1.0)
        logits = self.decoder(self.encoder(x_in))
        loss = F.binary_cross_entropy_with_logits(logits, x)  # BCE(sigmoid(logits), x)
        mse = F.mse_loss(torch.sigmoid(logits).detach(), x)  # per pixel, easier to read
        self.log_stage(stage, {"loss": loss, "mse": mse})
        return loss

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss = self._step(batch, "train")
        opt = self.optimizers()
        opt.zero_grad()
        self.manual_backward(loss)  # dL/dtheta: through the decoder and the encoder
        self.clip_manual(opt)  # to trainer.gradient_clip_val, when it is set
        opt.step()  # theta <- the optimizer's update from dL/dtheta
        self.step_lr_schedule()
        return loss.detach()

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, "val")
        if batch_idx == 0:  # inputs (top row) above their reconstructions (bottom row)
            x = batch[0][: self.hparams.num_images]
            grid = make_grid(torch.cat([x, self(x)]), nrow=len(x), pad_value=1.0)
            log_image(self, "val/reconstructions", grid)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, "test")
        x, y = batch
        self._test_codes.append((self.encoder(x).cpu(), y.cpu(), x.cpu()))

    def on_test_epoch_end(self) -> None:
        z, y, x = (torch.cat(parts) for parts in zip(*self._test_codes, strict=True))
        self._test_codes.clear()
        log_embedding(self, "test_codes", z, y, x)  # the Projector tab: codes, labels, thumbnails
