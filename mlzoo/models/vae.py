"""Variational autoencoder: a latent-variable model of images, trained by maximising the ELBO.

Kingma & Welling (2013), "Auto-Encoding Variational Bayes"; Rezende et al. (2014).

The generative model draws a code from a standard normal prior and decodes it into pixel
probabilities: p(z) = N(0, I), p(x | z) = Bernoulli(sigmoid(f_dec(z))). The encoder is an
approximate posterior q(z | x) = N(mu(x), diag(sigma^2(x))). For every x,

    log p(x) >= ELBO(x) = E_q[log p(x | z)] - KL(q(z | x) || p(z))

    KL = 1/2 * sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2)        (closed form for Gaussians)

The expectation is estimated with one sample, made differentiable by the reparameterization
trick: z = mu + sigma * eps with eps ~ N(0, I), so gradients flow into mu and sigma. We minimise

    L = reconstruction + beta * KL,   reconstruction = -log p(x | z) = sum over pixels of BCE

beta = 1 is the VAE; beta > 1 (Higgins et al. 2017) trades reconstruction for a more regular code.
``{stage}/elbo`` is always the beta = 1 bound, in nats per image. It is a bound on a log-likelihood
only for binary pixels: with ``binarize=true`` (the default) pixels are thresholded at 0.5.
At test time ``test/nll_iw`` tightens the bound with K importance samples (Burda et al. 2016):
log p(x) ~ log (1/K) sum_k p(x, z_k) / q(z_k | x).

What you get in TensorBoard: samples from the prior (a fixed set of codes, so epochs compare) and
latent interpolations between pairs of validation images, every validation epoch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.utils import make_grid

from mlzoo.base.module import Exported, OptimizerFactory, SchedulerFactory, ZooModule
from mlzoo.base.tensorboard import log_image
from mlzoo.nets.autoencoder import Sigmoid, encoder_decoder


class VAEModule(ZooModule):
    """A Bernoulli VAE on images in [0, 1]; ``sample(n)`` draws from the prior."""

    def __init__(
        self,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        input_shape: Sequence[int] = (1, 8, 8),
        arch: str = "mlp",
        latent_dim: int = 8,
        beta: float = 1.0,
        binarize: bool = True,
        iw_samples: int = 100,
        num_images: int = 64,
    ) -> None:
        super().__init__(optimizer, scheduler)
        self.save_hyperparameters(ignore=["optimizer", "scheduler"], logger=False)
        if latent_dim < 1 or beta < 0 or iw_samples < 1:
            raise ValueError(
                f"need latent_dim >= 1, beta >= 0, iw_samples >= 1: {latent_dim}, {beta}, "
                f"{iw_samples}"
            )
        # encoder: x -> (mu, log sigma^2), 2 * latent_dim numbers; decoder: z -> pixel logits
        self.encoder, self.decoder = encoder_decoder(arch, input_shape, latent_dim, 2 * latent_dim)
        # fixed prior codes for the TensorBoard sample grid: the same z every epoch
        self.register_buffer("grid_z", torch.randn(num_images, latent_dim), persistent=False)

    def prepare(self, x: Tensor) -> Tensor:
        return (x > 0.5).float() if self.hparams.binarize else x

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: Tensor) -> Tensor:
        """Pixel probabilities (the Bernoulli means) for codes z."""
        return torch.sigmoid(self.decoder(z))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n images from the model: z ~ N(0, I), x = E[x | z] (pixel probabilities)."""
        z = torch.randn(n, self.hparams.latent_dim, generator=generator, device=self.device)
        return self.decode(z)

    def exported_networks(self) -> dict[str, Exported]:
        """``encoder`` x -> (mu, logvar) and ``decoder`` z -> pixel probabilities."""
        gen = torch.Generator().manual_seed(0)
        x = torch.rand(2, *[int(d) for d in self.hparams.input_shape], generator=gen)
        z = torch.randn(2, self.hparams.latent_dim, generator=gen)
        return {
            "encoder": Exported(
                Halves(self.encoder), (x.to(self.device),), ["x"], ["mu", "logvar"]
            ),
            "decoder": Exported(Sigmoid(self.decoder), (z.to(self.device),), ["z"], ["probs"]),
        }

    @staticmethod
    def kl(mu: Tensor, logvar: Tensor) -> Tensor:
        """KL(N(mu, sigma^2) || N(0, I)) = 1/2 sum(mu^2 + sigma^2 - 1 - log sigma^2), per example."""
        return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)

    def _step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        x = self.prepare(batch[0])
        mu, logvar = self.encode(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)  # reparameterization trick
        logits = self.decoder(z)
        # -log p(x | z): Bernoulli negative log-likelihood summed over pixels, per image
        recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
        kl = self.kl(mu, logvar)  # KL(q(z | x) || N(0, I)) in closed form, per image
        loss = (recon + self.hparams.beta * kl).mean()  # L = reconstruction + beta * KL
        parts = {"loss_recon": recon.mean(), "loss_kl": kl.mean()}  # loss = recon + beta * kl
        self.log_stage(stage, {"loss": loss, **parts, "elbo": -(recon + kl).mean()})
        return loss

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss = self._step(batch, "train")
        opt = self.optimizers()
        opt.zero_grad()
        self.manual_backward(loss)  # dL/dtheta: through z = mu + sigma * eps to the encoder
        self.clip_manual(opt)  # to trainer.gradient_clip_val, when it is set
        opt.step()  # theta <- the optimizer's update from dL/dtheta
        self.step_lr_schedule()
        return loss.detach()

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, "val")
        if batch_idx == 0:
            log_image(self, "val/samples", self._grid(self.decode(self.grid_z)))
            log_image(self, "val/interpolations", self._grid(self.interpolate(batch[0])))

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, "test")
        nll = self.importance_weighted_nll(self.prepare(batch[0])).mean()
        self.log("test/nll_iw", nll, sync_dist=True)

    @torch.no_grad()
    def interpolate(self, x: Tensor, pairs: int = 8, steps: int = 8) -> Tensor:
        """Decode points on the line between the codes (posterior means) of image pairs: one row
        per pair, from the first image's code to the second's."""
        pairs = min(pairs, len(x) // 2)
        mu, _ = self.encode(self.prepare(x[: 2 * pairs]))
        a, b = mu[:pairs], mu[pairs : 2 * pairs]
        t = torch.linspace(0, 1, steps, device=self.device).view(1, steps, 1)
        z = (1 - t) * a.unsqueeze(1) + t * b.unsqueeze(1)  # (pairs, steps, latent)
        return self.decode(z.flatten(0, 1))

    @torch.no_grad()
    def importance_weighted_nll(self, x: Tensor) -> Tensor:
        """-log p(x) ~ -log (1/K) sum_k p(x | z_k) p(z_k) / q(z_k | x), z_k ~ q(z | x); nats."""
        k = self.hparams.iw_samples
        mu, logvar = self.encode(x)
        std = torch.exp(0.5 * logvar)
        eps = torch.randn(k, *mu.shape, device=self.device)
        z = mu + std * eps  # (K, B, latent)
        logits = self.decoder(z.flatten(0, 1)).unflatten(0, (k, len(x)))
        log_px_z = (
            -F.binary_cross_entropy_with_logits(logits, x.expand(k, *x.shape), reduction="none")
            .flatten(2)
            .sum(2)
        )
        log_pz = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(2)
        log_qz = -0.5 * (eps.pow(2) + logvar + math.log(2 * math.pi)).sum(2)
        return -(torch.logsumexp(log_px_z + log_pz - log_qz, dim=0) - math.log(k))

    def _grid(self, images: Tensor) -> Tensor:
        return make_grid(images, nrow=8, pad_value=1.0)


class Halves(nn.Module):
    """The VAE's encoder as x -> (mu, logvar): its output split in two along the features."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar
