"""ZooModule: the LightningModule base every concept shares for its optimizer and LR schedule.

Optimizers and schedulers are injected by Hydra as partials (``_partial_: true``), so a user swaps
them from the command line (``optimizer=sgd``, ``scheduler=cosine``) without touching the concept.

Every concept writes its own update in ``training_step``, as CleanRL writes it::

    opt = self.optimizers()
    opt.zero_grad()
    self.manual_backward(loss)   # backward, with loss scaling under fp16 and DDP's gradient sync
    self.clip_manual(opt)        # trainer.gradient_clip_val, when set
    opt.step()
    self.step_lr_schedule()      # scheduler=..., per step or per epoch

(Lightning's manual optimization: ``automatic_optimization = False``.) The RL agents, which take
thousands of small updates per rollout, step the torch optimizer itself instead (mlzoo/rl/agent.py).

Gradient clipping has one setting per concept. A concept that clips with a setting of its own
names it in ``own_clip_setting`` (DQN and PPO: ``model.max_grad_norm``) and a run that also sets
``trainer.gradient_clip_val`` is refused; for every other concept ``trainer.gradient_clip_val``
(with ``trainer.gradient_clip_algorithm``) is the only source, applied by ``clip_manual``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, NamedTuple

import lightning as L
import torch

from mlzoo.base.loader import checkpoint_loader

OptimizerFactory = Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer], Any]


class Exported(NamedTuple):
    """One network a concept exports: the module, example inputs (batch first; the exported
    batch size stays free), and the names of its inputs and outputs."""

    module: torch.nn.Module
    inputs: tuple[torch.Tensor, ...]
    input_names: list[str]
    output_names: list[str]


def replan_cosine(scheduler: torch.optim.lr_scheduler.CosineAnnealingLR, T_max: int) -> None:
    """Re-plan a restored cosine schedule over a new length ``T_max`` (a resume with another
    trainer.max_epochs), without a jump in the learning rate the batches train with.

    The schedule becomes torch's cosine over ``T_max`` steps, its peak (``base_lrs``) rescaled so
    that it passes through the LR of the last step trained (step ``t0 - 1``, ``t0`` =
    ``last_epoch``, the steps taken)::

        lr(t) = eta_min + (lr(t0 - 1) - eta_min) * (1 + cos(pi t / T_max))
                                                 / (1 + cos(pi (t0 - 1) / T_max)),  t >= t0

    so it keeps falling from where the run was and reaches eta_min at ``T_max``. (The LR the old
    schedule set after its last step is not used: a finished cosine left it at eta_min, where
    an extension would learn nothing.) Only public attributes change: ``T_max``, ``base_lrs``
    and the optimizer's ``lr``; torch's own step continues from there. A schedule that has not
    stepped yet just takes the new ``T_max``."""
    old, t0, eta = scheduler.T_max, scheduler.last_epoch, scheduler.eta_min
    if T_max == old or T_max < max(t0, 1):  # (a length already passed: mlzoo.run.resume refuses)
        return
    if t0 > 0:
        groups = scheduler.optimizer.param_groups
        for i, (group, base) in enumerate(zip(groups, scheduler.base_lrs, strict=True)):
            last = eta + (base - eta) * (1 + math.cos(math.pi * (t0 - 1) / old)) / 2
            peak = eta + 2 * (last - eta) / (1 + math.cos(math.pi * (t0 - 1) / T_max))
            scheduler.base_lrs[i] = peak
            group["lr"] = eta + (peak - eta) * (1 + math.cos(math.pi * t0 / T_max)) / 2
    scheduler.T_max = T_max


class ZooModule(L.LightningModule):
    """Base class: holds the injected optimizer/scheduler factories and builds them on demand."""

    def __init__(
        self,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        scheduler_interval: str = "epoch",
    ) -> None:
        super().__init__()
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(
                f"scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}"
            )
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_interval = scheduler_interval
        # Every concept writes its own update in training_step (zero_grad, backward, clip, step:
        # what a reader came to see), so Lightning's automatic loop, which would hide it, is off
        self.automatic_optimization = False

    # The config key of a concept's own clipping setting, for a concept that clips with one
    # (e.g. "model.max_grad_norm"); None: trainer.gradient_clip_val clips it (mlzoo.run.build
    # refuses that setting for a concept that names its own).
    own_clip_setting: ClassVar[str | None] = None
    # trainer.gradient_clip_val / _algorithm, handed over by mlzoo.run.build: Lightning's Trainer
    # clips only under automatic optimization, so a concept clips through clip_manual()
    manual_clip_val: float | None = None
    manual_clip_algorithm: str = "norm"

    def clip_manual(self, optimizer: Any, default: float | None = None) -> None:
        """Clip the gradients of ``optimizer``'s parameters to trainer.gradient_clip_val, when the
        config sets it. ``default``: the value of the concept's own setting, for a concept that
        names one in ``own_clip_setting`` (then the trainer's is refused, so one source applies);
        None or 0: no clipping."""
        value = self.manual_clip_val if self.manual_clip_val is not None else default
        if value:
            self.clip_gradients(
                optimizer,
                gradient_clip_val=value,
                gradient_clip_algorithm=self.manual_clip_algorithm,
            )

    def step_lr_schedule(self) -> None:
        """After an optimizer step: advance the LR schedule (``scheduler=...``), per step or at an
        epoch's last batch (``model.scheduler_interval``), as Lightning's automatic loop would;
        with manual optimization the concept steps it."""
        if self.scheduler_interval == "step" or self.trainer.is_last_batch:
            for scheduler in self._schedulers():
                scheduler.step()

    def _schedulers(self) -> list[Any]:
        schedulers = self.lr_schedulers()
        if schedulers is None:
            return []
        return schedulers if isinstance(schedulers, list) else [schedulers]

    def on_train_start(self) -> None:
        # Lightning has restored the optimizers and schedules of a resumed run by now (after
        # on_fit_start): a cosine whose length this command changes is re-planned over it.
        planned = getattr(self.scheduler_factory, "keywords", None) or {}  # Hydra's partial
        if isinstance(planned.get("T_max"), int):
            for scheduler in self._schedulers():
                if isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingLR):
                    replan_cosine(scheduler, planned["T_max"])

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: Any, map_location: Any = None, **kwargs: Any):
        """Lightning's loader, for zoo checkpoints: the model is rebuilt from its run folder's
        config.yaml (the network, optimizer and data-sized arguments a concept is built with are
        not all in its hyperparameters) by the run side's loader, as ``mlzoo.load`` does; eval
        mode. The base names no loader: the package registers it (mlzoo.base.loader)."""
        if kwargs:
            raise TypeError(
                f"{cls.__name__}.load_from_checkpoint rebuilds the model from its run's "
                f"config.yaml and takes no overrides ({', '.join(kwargs)})"
            )
        model = checkpoint_loader()(checkpoint_path)
        if not isinstance(model, cls):
            raise TypeError(
                f"{checkpoint_path} holds a {type(model).__name__}, not a {cls.__name__}"
            )
        return model.to(map_location) if map_location is not None else model

    # What scripts/export.py writes. A concept that has something to deploy overrides these;
    # the exporter asks the model and knows no concept by name.
    def exported_networks(self) -> dict[str, Exported]:
        """``--format onnx|torchscript``: name -> the network to trace, with example inputs."""
        return {}

    def exported_facts(self) -> dict[str, Any]:
        """Numbers a deployed network needs beside it (written to export.json)."""
        return {}

    def exported_hf(self) -> tuple[Any, Any] | None:
        """``--format hf``: (a transformers model, adapters merged, its tokenizer), or None."""
        return None

    def log_stage(
        self, stage: str, values: dict[str, Any], prog_bar: Iterable[str] = ("loss",), **kw: Any
    ) -> None:
        """Log ``values`` as ``<stage>/<name>``, at the cadence the zoo's metric names promise
        (README, "Metric names"): under train/ every trainer.log_every_n_steps steps, under val/
        and test/ once per epoch, as the mean over the epoch's batches (and all DDP ranks). One
        cadence per tag, so no tag carries Lightning's _step/_epoch suffixes."""
        train, shown = stage == "train", set(prog_bar)
        for name, value in values.items():
            self.log(
                f"{stage}/{name}",
                value,
                on_step=train,
                on_epoch=not train,
                sync_dist=not train,
                prog_bar=name in shown,
                **kw,
            )

    def param_groups(self) -> list[dict[str, Any]]:
        """What the optimizer trains: one group of every trainable parameter. A concept may split
        them; a group's ``lr_scale`` multiplies the optimizer's learning rate for that group."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    def configure_optimizers(self) -> Any:
        groups = self.param_groups()
        scales = [group.pop("lr_scale", 1.0) for group in groups]
        optimizer = self.optimizer_factory(groups)
        for group, scale in zip(optimizer.param_groups, scales, strict=True):
            group["lr"] *= scale
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": self.scheduler_interval},
        }

    @property
    def attached_datamodule(self) -> Any:
        """The data module of the Trainer this model runs in; None outside a Trainer (a model
        built and called in plain Python)."""
        try:
            return self.trainer.datamodule
        except RuntimeError:  # Lightning's answer for a model attached to no Trainer
            return None

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        # DDP broadcasts rank 0's buffers (batch-norm statistics, observation normalisers) at
        # the start of a forward only if the previous forward expected a backward; under manual
        # optimization Lightning runs the backward inside the forward and switches that off,
        # so the replicas' statistics would drift apart. Ask for the broadcast, as the
        # automatic loop gets it. (No-op outside DDP, or outside a Trainer.)
        try:
            model = self.trainer.strategy.model
        except RuntimeError:  # not attached to a Trainer (a unit test calling the hook)
            return
        if getattr(model, "broadcast_buffers", False):
            model.require_forward_param_sync = True

    def on_train_epoch_start(self) -> None:
        # The learning rate each epoch runs at, beside the losses (a logger-free LR monitor).
        optimizers = self.trainer.optimizers
        if optimizers:
            lr = float(optimizers[0].param_groups[0]["lr"])
            self.log("train/lr", lr, on_step=False, on_epoch=True)
