"""DDPM: generate images by learning to undo a gradual noising process; DDIM: do it in fewer steps.

Ho, Jain & Abbeel (2020), "Denoising Diffusion Probabilistic Models"; Song, Meng & Ermon (2021),
"Denoising Diffusion Implicit Models"; Nichol & Dhariwal (2021) for the cosine schedule; Ho &
Salimans (2022), "Classifier-Free Diffusion Guidance".

Forward process: T steps that each add a little Gaussian noise (variance beta_t), with a closed
form for jumping straight to step t (alpha_t = 1 - beta_t, alpha_bar_t = prod_{s<=t} alpha_s):

    q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)
    x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps,   eps ~ N(0, I)

Training: a U-Net eps_theta(x_t, t) predicts the noise that was added (the "simple" loss):

    L = E_{x_0, t ~ U{1..T}, eps} || eps - eps_theta(x_t, t) ||^2

Ancestral sampling (DDPM) walks back all T steps from x_T ~ N(0, I), through the posterior
q(x_{t-1} | x_t, x_0) with x_0 replaced by its prediction x0_hat:

    x0_hat  = (x_t - sqrt(1 - alpha_bar_t) eps_theta) / sqrt(alpha_bar_t)
    mean    = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x0_hat
              + sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) x_t
    x_{t-1} = mean + sqrt(beta_tilde_t) z,   beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t

DDIM uses the same trained network but a non-Markovian process, so it can skip steps: on a
sub-sequence tau_1 < ... < tau_S of timesteps, with prev = the next smaller timestep,

    x_prev = sqrt(alpha_bar_prev) x0_hat + sqrt(1 - alpha_bar_prev - sigma^2) eps_theta + sigma z
    sigma  = eta * sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t)) * sqrt(1 - alpha_bar_t / alpha_bar_prev)

eta = 0 is deterministic (the same noise gives the same image); eta = 1 with all T steps is DDPM.

Class-conditional option: eps_theta(x_t, t, y), with the label dropped (replaced by a "null" label)
for a fraction ``p_uncond`` of training examples, so one network is both conditional and
unconditional. Classifier-free guidance then samples with

    eps = eps_theta(x_t, t, null) + w * (eps_theta(x_t, t, y) - eps_theta(x_t, t, null))

w = 1 is plain conditional sampling; w > 1 trades diversity for samples that look more like y.

EMA: samples come from an exponential moving average of the weights (decay ``ema_decay``), which
is much smoother than the raw weights; validation uses it too. In TensorBoard: the same noise
sampled with DDIM every validation epoch (``val/samples``), and ``val/denoising``: one chain's
x0_hat along the way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.optim.swa_utils import AveragedModel
from torchvision.utils import make_grid

from mlzoo.base.module import Exported, OptimizerFactory, SchedulerFactory, ZooModule
from mlzoo.base.tensorboard import log_image
from mlzoo.nets.unet import UNet


def ddpm_step(
    x: Tensor, x0: Tensor, z, alpha_bar: Tensor, alpha_bar_prev: Tensor, beta: Tensor, alpha: Tensor
) -> Tensor:
    """One ancestral step x_t -> x_{t-1} through the posterior q(x_{t-1} | x_t, x0_hat):

    mean    = sqrt(ab_{t-1}) beta_t / (1 - ab_t) x0_hat + sqrt(alpha_t) (1 - ab_{t-1}) / (1 - ab_t) x_t
    x_{t-1} = mean + sqrt(beta~_t) z,   beta~_t = (1 - ab_{t-1}) / (1 - ab_t) beta_t
    """
    mean = (alpha_bar_prev.sqrt() * beta / (1 - alpha_bar)) * x0 + (
        alpha.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar)
    ) * x
    posterior_var = (1 - alpha_bar_prev) / (1 - alpha_bar) * beta
    return mean + posterior_var.sqrt() * z


def ddim_step(
    x0: Tensor, eps: Tensor, z: Tensor, alpha_bar: Tensor, alpha_bar_prev: Tensor, eta: float
) -> Tensor:
    """One DDIM step x_t -> x_prev (prev: the next smaller timestep of the sub-sequence):

    sigma  = eta sqrt((1 - ab_prev) / (1 - ab_t)) sqrt(1 - ab_t / ab_prev)
    x_prev = sqrt(ab_prev) x0_hat + sqrt(1 - ab_prev - sigma^2) eps + sigma z
    """
    sigma = eta * ((1 - alpha_bar_prev) / (1 - alpha_bar) * (1 - alpha_bar / alpha_bar_prev)).sqrt()
    x = alpha_bar_prev.sqrt() * x0 + (1 - alpha_bar_prev - sigma**2).clamp(min=0).sqrt() * eps
    return x + sigma * z


def beta_schedule(kind: str, timesteps: int) -> Tensor:
    """The noise variances beta_1..beta_T (float64)."""
    if kind == "linear":  # Ho et al.: 1e-4 .. 0.02 for T = 1000, rescaled for other T
        scale = 1000 / timesteps
        betas = torch.linspace(scale * 1e-4, scale * 0.02, timesteps, dtype=torch.float64)
        return betas.clamp(max=0.999)  # T < 50 would otherwise give beta >= 1
    if kind == "cosine":  # Nichol & Dhariwal: alpha_bar(t) = cos^2(pi/2 * (t/T + s) / (1 + s))
        s = 0.008
        steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
        alpha_bar = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=0.999)
    raise ValueError(f"beta_schedule must be 'linear' or 'cosine', got {kind!r}")


def ema_average(decay: float):
    """AveragedModel's averaging function: avg <- d * avg + (1 - d) * new, with d warmed up as
    min(decay, (1 + n) / (10 + n)) so that short runs are not stuck near the initial weights.
    All parameters in one fused lerp (one host sync per step, not one per tensor)."""

    def multi_avg_fn(averaged: list[Tensor], current: list[Tensor], num_averaged: Tensor) -> None:
        n = float(num_averaged)
        d = min(decay, (1 + n) / (10 + n))
        torch._foreach_lerp_(averaged, current, 1 - d)  # avg + (1 - d) * (new - avg)

    return multi_avg_fn


class DDPMModule(ZooModule):
    """A denoising diffusion model on images in [0, 1] (scaled to [-1, 1] inside)."""

    def __init__(
        self,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        input_shape: Sequence[int] = (1, 8, 8),
        num_classes: int = 0,
        timesteps: int = 1000,
        schedule: str = "cosine",
        channels: int = 32,
        channel_mults: Sequence[int] = (1, 2, 2),
        num_res_blocks: int = 1,
        attention_resolutions: Sequence[int] = (4,),
        dropout: float = 0.1,
        ema_decay: float = 0.995,
        conditional: bool = False,
        p_uncond: float = 0.1,
        guidance: float = 2.0,
        sample_steps: int | None = 50,
        eta: float = 0.5,
        clip_denoised: bool = True,
        num_images: int = 64,
    ) -> None:
        super().__init__(optimizer, scheduler)
        self.save_hyperparameters(ignore=["optimizer", "scheduler"], logger=False)
        c, h, w = (int(d) for d in input_shape)
        if h != w:
            raise ValueError(f"DDPM: square images only, got {h}x{w}")
        if timesteps < 2 or not 0.0 < ema_decay < 1.0 or not 0.0 <= p_uncond < 1.0:
            raise ValueError(
                f"need timesteps >= 2, 0 < ema_decay < 1, 0 <= p_uncond < 1: {timesteps}, "
                f"{ema_decay}, {p_uncond}"
            )
        if conditional and num_classes < 2:
            raise ValueError("conditional=true needs a labelled data set (num_classes >= 2)")
        self.shape = (c, h, w)
        self.unet = UNet(
            c,
            h,
            channels,
            channel_mults,
            num_res_blocks,
            attention_resolutions,
            dropout,
            num_classes if conditional else 0,
        )
        self.ema = AveragedModel(self.unet, multi_avg_fn=ema_average(ema_decay))
        self.ema.requires_grad_(False)  # updated by averaging, never by the optimizer

        betas = beta_schedule(schedule, timesteps)
        alpha_bar = torch.cumprod(1 - betas, 0)
        alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])
        for name, value in {
            "betas": betas,
            "alphas": 1 - betas,
            "alpha_bar": alpha_bar,
            "alpha_bar_prev": alpha_bar_prev,
        }.items():  # float32 copies on the model's device; derived from hparams, not saved
            self.register_buffer(name, value.float(), persistent=False)
        self.register_buffer("fixed_noise", torch.randn(num_images, c, h, w), persistent=False)

    # --- training: predict the noise ------------------------------------------------------------
    def _loss(self, net, x0: Tensor, y: Tensor, generator: torch.Generator | None = None) -> Tensor:
        b = len(x0)
        t = torch.randint(0, self.hparams.timesteps, (b,), device=self.device, generator=generator)
        eps = torch.randn(x0.shape, device=self.device, generator=generator)
        ab = self.alpha_bar[t].view(b, 1, 1, 1)
        x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps  # x_t = sqrt(ab) x_0 + sqrt(1 - ab) eps
        labels = None
        if self.hparams.conditional:  # drop labels at rate p_uncond: learn p(x) too
            drop = torch.rand(b, device=self.device, generator=generator) < self.hparams.p_uncond
            labels = torch.where(drop, torch.full_like(y, self.hparams.num_classes), y)
        return F.mse_loss(net(x_t, t, labels), eps)  # || eps - eps_theta(x_t, t) ||^2

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        loss = self._loss(self.unet, x * 2 - 1, y)
        self.log_stage("train", {"loss": loss})
        opt = self.optimizers()
        opt.zero_grad()
        self.manual_backward(loss)  # dL/dtheta
        self.clip_manual(opt)  # to trainer.gradient_clip_val, when it is set
        opt.step()  # theta <- the optimizer's update from dL/dtheta
        self.step_lr_schedule()
        return loss.detach()

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        super().on_train_batch_end(outputs, batch, batch_idx)
        self.ema.update_parameters(self.unet)  # ema <- d * ema + (1 - d) * weights

    def _eval_step(self, batch: tuple[Tensor, Tensor], batch_idx: int, stage: str) -> None:
        # the EMA network on fixed (t, eps) per batch: a val/loss that compares across epochs
        x, y = batch
        gen = torch.Generator(device=self.device).manual_seed(batch_idx)
        loss = self._loss(self.ema.module, x * 2 - 1, y, generator=gen)
        self.log_stage(stage, {"loss": loss})

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._eval_step(batch, batch_idx, "val")
        if (
            batch_idx == 0 and not self.trainer.sanity_checking
        ):  # sampling costs sample_steps passes
            gen = torch.Generator(device=self.device).manual_seed(0)  # the same DDIM noise too
            images, x0 = self.sample(
                self.hparams.num_images, generator=gen, noise=self.fixed_noise, return_x0=True
            )
            log_image(self, "val/samples", make_grid(images, nrow=8, pad_value=1.0))
            # rows: 8 chains; columns: their x0_hat from the first step (left) to the last
            cols = torch.linspace(0, len(x0) - 1, 8).round().long()
            frames = x0[cols, :8].transpose(0, 1).flatten(0, 1)
            log_image(self, "val/denoising", make_grid(frames, nrow=8, pad_value=1.0))

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._eval_step(batch, batch_idx, "test")

    # --- export ---------------------------------------------------------------------------------
    def exported_networks(self) -> dict[str, Exported]:
        """``denoiser`` (x_t, t[, y]) -> eps, with the EMA weights it samples with."""
        hp, gen = self.hparams, torch.Generator().manual_seed(0)
        x = torch.rand(2, *self.shape, generator=gen) * 2 - 1  # x_t in [-1, 1]
        t = torch.randint(0, hp.timesteps, (2,), generator=gen)
        inputs, names = [x, t], ["x_t", "t"]
        if hp.conditional:
            inputs.append(torch.randint(0, hp.num_classes, (2,), generator=gen))
            names.append("y")
        inputs = tuple(v.to(self.device) for v in inputs)
        return {"denoiser": Exported(self.ema.module, inputs, names, ["eps"])}

    # --- sampling -------------------------------------------------------------------------------
    def _default_labels(self, n: int) -> Tensor | None:
        """Conditional models: classes 0, 1, ..., K-1, 0, 1, ... (a grid row per class)."""
        if not self.hparams.conditional:
            return None
        return torch.arange(n, device=self.device) % self.hparams.num_classes

    def _eps(self, x: Tensor, t: int, labels: Tensor | None, guidance: float) -> Tensor:
        tt = torch.full((len(x),), t, device=self.device, dtype=torch.long)
        net = self.ema.module
        if labels is None:
            return net(x, tt)
        if guidance == 1.0:
            return net(x, tt, labels)
        # classifier-free guidance: eps_u + w * (eps_c - eps_u), both in one batch
        null = torch.full_like(labels, self.hparams.num_classes)
        eps_c, eps_u = net(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([labels, null])).chunk(
            2
        )
        return eps_u + guidance * (eps_c - eps_u)

    def _x0(self, x: Tensor, eps: Tensor, t: int) -> tuple[Tensor, Tensor]:
        """x0_hat = (x_t - sqrt(1 - ab_t) eps) / sqrt(ab_t), clipped to the data range [-1, 1]
        (and eps made consistent with the clipped x0_hat)."""
        ab = self.alpha_bar[t]
        x0 = (x - (1 - ab).sqrt() * eps) / ab.sqrt()
        if self.hparams.clip_denoised:
            x0 = x0.clamp(-1, 1)
            eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
        return x0, eps

    def ddim_timesteps(self, steps: int) -> list[int]:
        """S evenly spaced timesteps from T-1 down to 0."""
        T = self.hparams.timesteps
        return torch.linspace(T - 1, 0, min(steps, T)).round().long().tolist()

    @torch.no_grad()
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        labels: Tensor | None = None,
        steps: int | None = -1,
        eta: float | None = None,
        guidance: float | None = None,
        noise: Tensor | None = None,
        return_x0: bool = False,
    ) -> Tensor:
        """n images in [0, 1]. ``steps``: DDIM steps (None: T-step ancestral DDPM; -1: the
        module's ``sample_steps``); ``eta``: DDIM's noise; ``labels``/``guidance``: conditional
        models (default labels cycle through the classes). ``return_x0``: also the chain's
        x0_hat at each step, (steps, n, C, H, W)."""
        hp = self.hparams
        steps = hp.sample_steps if steps == -1 else steps
        eta = hp.eta if eta is None else eta
        guidance = hp.guidance if guidance is None else guidance
        if hp.conditional and labels is None:
            labels = self._default_labels(n)
        if labels is not None and not hp.conditional:
            raise ValueError("labels given, but this DDPM was trained unconditionally")
        if labels is not None and (labels.min() < 0 or labels.max() >= hp.num_classes):
            raise ValueError(f"labels must be in 0..{hp.num_classes - 1}")
        if noise is not None:
            x = noise.to(self.device)
        else:  # x_T ~ N(0, I)
            x = torch.randn(n, *self.shape, device=self.device, generator=generator)
        chain = []
        if steps is None:  # ancestral DDPM, all T steps
            for t in reversed(range(hp.timesteps)):
                x0, _ = self._x0(x, self._eps(x, t, labels, guidance), t)
                z = torch.randn(x.shape, device=self.device, generator=generator) if t else 0.0
                x = ddpm_step(
                    x,
                    x0,
                    z,
                    self.alpha_bar[t],
                    self.alpha_bar_prev[t],
                    self.betas[t],
                    self.alphas[t],
                )
                chain.append(x0)
        else:  # DDIM on S evenly spaced timesteps T-1 = tau_S > ... > tau_1 = 0
            if steps < 1:
                raise ValueError(f"sample steps must be >= 1 or null (ancestral), got {steps}")
            taus = self.ddim_timesteps(steps)
            for i, t in enumerate(taus):
                x0, eps = self._x0(x, self._eps(x, t, labels, guidance), t)
                ab = self.alpha_bar[t]
                ab_prev = self.alpha_bar[taus[i + 1]] if i + 1 < len(taus) else ab.new_tensor(1.0)
                z = torch.randn(x.shape, device=self.device, generator=generator)
                x = ddim_step(x0, eps, z, ab, ab_prev, eta)
                chain.append(x0)
        images = ((x + 1) / 2).clamp(0, 1)
        if return_x0:
            return images, ((torch.stack(chain) + 1) / 2).clamp(0, 1)
        return images
