"""DCGAN: a generator and a discriminator trained against each other.

Goodfellow et al. (2014), "Generative Adversarial Nets"; Radford, Metz & Chintala (2015),
"Unsupervised Representation Learning with Deep Convolutional GANs".

A generator G maps noise z ~ N(0, I) to an image; a discriminator D outputs the probability that an
image is real. They play a two-player game:

    min_G max_D  E_x[log D(x)] + E_z[log(1 - D(G(z)))]

Each training step alternates:

    D step:  L_D = -log D(x) - log(1 - D(G(z)))      (binary cross-entropy: real -> 1, fake -> 0)
    G step:  L_G = -log D(G(z))                      (the *non-saturating* loss)

The G step does not minimise log(1 - D(G(z))) as the game says: early on D rejects fakes with
confidence and that loss has vanishing gradients; -log D(G(z)) has the same fixed point and strong
gradients exactly then. DCGAN's recipe: strided convolutions instead of pooling, batch norm, ReLU in
G and LeakyReLU(0.2) in D, tanh output, Adam(lr 2e-4, beta1 0.5), weights from N(0, 0.02).

Two optimizers step in turn, each with its own zero_grad, backward and step (every zoo concept
writes its update itself: Lightning's manual optimization). There is no validation loss that tracks quality
here, so the checkpoint monitors ``val/fid_cls`` (see mlzoo/metrics/sample_quality.py), and
TensorBoard shows the same fixed noise decoded every epoch (``val/samples``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.utils import make_grid

from mlzoo.base.module import OptimizerFactory, SchedulerFactory, ZooModule
from mlzoo.base.tensorboard import log_image
from mlzoo.nets.dcgan import Discriminator, Generator


class DCGANModule(ZooModule):
    """DCGAN on images in [0, 1] (scaled to the generator's [-1, 1] inside)."""

    own_clip_setting = "model.gradient_clip_val"  # D's and G's updates, each clipped to it

    def __init__(
        self,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        input_shape: Sequence[int] = (1, 16, 16),
        latent_dim: int = 64,
        width: int = 64,
        gradient_clip_val: float | None = None,
        num_images: int = 64,
    ) -> None:
        super().__init__(optimizer, scheduler)
        self.save_hyperparameters(ignore=["optimizer", "scheduler"], logger=False)
        if latent_dim < 1 or width < 1:
            raise ValueError(f"need latent_dim >= 1 and width >= 1, got {latent_dim}, {width}")
        self.generator = Generator(latent_dim, input_shape, width)
        self.discriminator = Discriminator(input_shape, width)
        self.register_buffer("fixed_z", torch.randn(num_images, latent_dim), persistent=False)

    def on_fit_start(self) -> None:
        from torch.nn.parallel import DistributedDataParallel

        wrapped = self.trainer.strategy.model  # DDP's wrapper, once the strategy has set up
        if isinstance(wrapped, DistributedDataParallel) and not wrapped.find_unused_parameters:
            # the D step leaves G without gradients, which plain DDP rejects
            raise ValueError(
                "DCGAN under DDP needs trainer.strategy=ddp_find_unused_parameters_true"
            )

    def configure_optimizers(self):
        opt_d = self.optimizer_factory(self.discriminator.parameters())
        opt_g = self.optimizer_factory(self.generator.parameters())
        if self.scheduler_factory is None:
            return [opt_d, opt_g]
        return [opt_d, opt_g], [self.scheduler_factory(opt_d), self.scheduler_factory(opt_g)]

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n images in [0, 1] from G(z), z ~ N(0, I)."""
        z = torch.randn(n, self.hparams.latent_dim, generator=generator, device=self.device)
        return (self.generator(z) + 1) / 2

    def noise(self, n: int) -> Tensor:
        """n codes z ~ N(0, I) on the model's device."""
        return torch.randn(n, self.hparams.latent_dim, device=self.device)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> dict[str, Tensor]:
        opt_d, opt_g = self.optimizers()
        real = batch[0] * 2 - 1  # [0, 1] -> [-1, 1], the range of G's tanh
        z = self.noise(len(real))
        fake = self.generator(z)
        ones = torch.ones(len(real), device=self.device)
        zeros = torch.zeros(len(real), device=self.device)

        # D step: L_D = -log D(x) - log(1 - D(G(z)))   (fake detached: G is not updated here)
        d_real, d_fake = self.discriminator(real), self.discriminator(fake.detach())
        loss_d = F.binary_cross_entropy_with_logits(
            d_real, ones
        ) + F.binary_cross_entropy_with_logits(d_fake, zeros)
        self._step(opt_d, loss_d)

        # G step: L_G = -log D(G(z))   (non-saturating: strong gradients while D wins)
        loss_g = F.binary_cross_entropy_with_logits(self.discriminator(fake), ones)
        self._step(opt_g, loss_g)
        self.step_lr_schedule()  # both players' schedules (scheduler=...)

        # train/loss is the two players' sum (each minimises its own part): the card every
        # concept shares; d_real, d_fake: D's mean belief that real and fake images are real
        # (0.5 each at equilibrium)
        self.log_stage(
            "train",
            {"loss": loss_d + loss_g, "loss_d": loss_d, "loss_g": loss_g,
             "d_real": torch.sigmoid(d_real).mean(), "d_fake": torch.sigmoid(d_fake).mean()},
            ("loss_d", "loss_g"),
        )  # fmt: skip
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach()}  # checked by FiniteGuard

    def _step(self, opt, loss: Tensor) -> None:
        opt.zero_grad()
        self.manual_backward(loss)
        self.clip_manual(opt, self.hparams.gradient_clip_val)  # own_clip_setting
        opt.step()

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        # How well D tells held-out real images from fresh fakes: ~0.5 accuracy means G fools it
        real = batch[0] * 2 - 1
        fake = self.generator(self.noise(len(real)))
        correct = torch.cat([self.discriminator(real) > 0, self.discriminator(fake) < 0])
        self.log("val/d_acc", correct.float().mean(), on_epoch=True, sync_dist=True)
        if batch_idx == 0:
            grid = make_grid((self.generator(self.fixed_z) + 1) / 2, nrow=8, pad_value=1.0)
            log_image(self, "val/samples", grid)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        real = batch[0] * 2 - 1
        fake = self.generator(self.noise(len(real)))
        correct = torch.cat([self.discriminator(real) > 0, self.discriminator(fake) < 0])
        self.log("test/d_acc", correct.float().mean(), on_epoch=True, sync_dist=True)
