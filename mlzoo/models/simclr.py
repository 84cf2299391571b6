"""SimCLR: learn image features without labels, by telling two views of the same image apart from
views of all the other images.

Chen, Kornblith, Norouzi & Hinton (2020), "A Simple Framework for Contrastive Learning of Visual
Representations".

Each image x in a batch of N is augmented twice (random crops, shifts, noise, ...: the nuisances
the features should ignore), giving 2N views. An encoder f gives representations h = f(view) and
a small projection head g gives z = g(h), normalised to unit length. For a positive pair (i, j),
the two views of one image, the NT-Xent (normalised temperature-scaled cross-entropy) loss is

    l(i, j) = -log  exp(sim(z_i, z_j) / tau) / sum_{k != i} exp(sim(z_i, z_k) / tau)

with sim the cosine similarity, averaged over all 2N anchors: a softmax classification of "which
of the other 2N - 1 views is my partner". The temperature tau sharpens the softmax. After
training, g is thrown away: h, before the head, is the representation (it keeps more information
than z, which learns to ignore what the augmentations change).

How good is h? A linear classifier on frozen features is the standard test. An *online* probe is
trained alongside on detached h (its gradient never reaches the encoder), so TensorBoard shows
``val/probe_acc`` rising while the encoder learns without labels. At test time the features go to
TensorBoard's projector with their labels (``test_features``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mlzoo.base.module import OptimizerFactory, SchedulerFactory, ZooModule
from mlzoo.base.tensorboard import log_embedding
from mlzoo.nets.cnn import ConvNet


class SimCLRModule(ZooModule):
    """Contrastive pretraining of a ConvNet encoder; ``encoder`` is the part to transfer."""

    def __init__(
        self,
        optimizer: OptimizerFactory,
        augmentation: Callable[[Tensor], Tensor],
        scheduler: SchedulerFactory | None = None,
        input_shape: Sequence[int] = (1, 8, 8),
        num_classes: int = 10,
        channels: Sequence[int] = (32, 64),
        feature_dim: int = 128,
        projection_dim: int = 64,
        temperature: float = 0.2,
    ) -> None:
        super().__init__(optimizer, scheduler)
        self.save_hyperparameters(ignore=["optimizer", "scheduler", "augmentation"], logger=False)
        if temperature <= 0 or feature_dim < 1 or projection_dim < 1:
            raise ValueError(
                f"need temperature > 0 and positive dims: {temperature}, {feature_dim}, "
                f"{projection_dim}"
            )
        c, h, w = (int(d) for d in input_shape)
        self.augmentation = augmentation  # a transform, not a hyperparameter
        # f: image -> h (the representation); g: h -> z (only for the loss)
        self.encoder = ConvNet(c, feature_dim, (h, w), channels=channels, hidden=feature_dim)
        self.projection = nn.Sequential(
            nn.ReLU(),
            nn.Linear(feature_dim, feature_dim),
            nn.ReLU(),
            nn.Linear(feature_dim, projection_dim),
        )
        self.probe = nn.Linear(feature_dim, num_classes) if num_classes > 1 else None
        self._test_features: list[tuple[Tensor, Tensor, Tensor]] = []

    def forward(self, x: Tensor) -> Tensor:
        """The representation h = f(x)."""
        return self.encoder(x)

    def augment(self, x: Tensor) -> Tensor:
        """An independent random augmentation of every image in the batch, on the CPU (per-image
        transforms on a GPU would launch their small kernels image by image)."""
        return torch.stack([self.augmentation(img) for img in x.cpu()]).to(x.device)

    def nt_xent(self, z1: Tensor, z2: Tensor) -> Tensor:
        """NT-Xent over 2N views; row i's positive is its other view (i + N mod 2N)."""
        # in float32 even under bf16 autocast: similarities / tau need more than bf16's 3 digits
        z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
        n = len(z1)
        with torch.autocast(z.device.type, enabled=False):
            sim = z @ z.T / self.hparams.temperature  # cosine similarity / tau, (2N, 2N)
        sim.fill_diagonal_(float("-inf"))  # k != i: a view is not its own candidate
        partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
        # -log exp(sim_ij / tau) / sum_{k != i} exp(sim_ik / tau), averaged over the 2N anchors
        return F.cross_entropy(sim, partner)

    def _step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        x, y = batch
        h1, h2 = self.encoder(self.augment(x)), self.encoder(self.augment(x))
        loss = self.nt_xent(self.projection(h1), self.projection(h2))
        values = {"loss": loss}
        if self.probe is not None:  # the online probe: a linear classifier on detached h
            logits = self.probe(h1.detach() if stage == "train" else self.encoder(x))
            probe_loss = F.cross_entropy(logits, y)
            acc = (logits.argmax(1) == y).float().mean()
            values = {"loss_nt_xent": loss, "loss_probe": probe_loss, "probe_acc": acc}
            loss = loss + probe_loss  # the probe's gradient stops at h (detached)
            values["loss"] = loss
        self.log_stage(stage, values, ("loss", "probe_acc"))
        return loss

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss = self._step(batch, "train")
        opt = self.optimizers()
        opt.zero_grad()
        self.manual_backward(loss)  # dL/dtheta: encoder, projection head and probe at once
        self.clip_manual(opt)  # to trainer.gradient_clip_val, when it is set
        opt.step()  # theta <- the optimizer's update from dL/dtheta
        self.step_lr_schedule()
        return loss.detach()

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, "test")
        x, y = batch
        self._test_features.append((self.encoder(x).cpu(), y.cpu(), x.cpu()))

    def on_test_epoch_end(self) -> None:
        h, y, x = (torch.cat(parts) for parts in zip(*self._test_features, strict=True))
        self._test_features.clear()
        log_embedding(self, "test_features", h, y, x)
