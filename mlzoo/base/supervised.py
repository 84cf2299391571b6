"""SupervisedModule: the training loop every supervised concept (MLP, CNN, RNN) shares.

A concept subclasses it, builds ``self.net`` and writes its ``loss``; the metrics and logging live
here once:

    classification:  metrics: acc, macro F1 (torchmetrics), test confusion matrix
    regression:      metrics: RMSE, R^2 (torchmetrics)

Regression data modules standardize the target; predictions are mapped back to the original units
(``y = y_std * target_std + target_mean``) before RMSE and R^2, so the numbers are comparable with
any other model scored on the raw target. A regression target may hold several values per example
(``num_targets``, e.g. the next k steps of a series); R^2 then pools them all.

At test time a classifier also draws its confusion matrix into TensorBoard (Images tab).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
)
from torchmetrics.regression import MeanSquaredError, R2Score

from mlzoo.base.module import Exported, OptimizerFactory, SchedulerFactory, ZooModule
from mlzoo.base.tensorboard import log_figure

TASKS = ("classification", "regression")


class SupervisedModule(ZooModule):
    """Shared steps for ``(x, y)`` batches; subclasses set ``self.net`` (x -> logits or values)."""

    net: torch.nn.Module

    def __init__(
        self,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        task: str = "classification",
        num_classes: int = 0,
        num_targets: int = 1,
        target_mean: float = 0.0,
        target_std: float = 1.0,
        scheduler_interval: str = "epoch",
    ) -> None:
        super().__init__(optimizer, scheduler, scheduler_interval)
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        if task == "classification" and num_classes < 2:
            raise ValueError(f"classification needs num_classes >= 2, got {num_classes}")
        if num_targets < 1:
            raise ValueError(f"num_targets must be >= 1, got {num_targets}")
        # the task as the subclass states it (CNN and transfer pass constants, not hyperparameters
        # of theirs), read by the shared steps, predict.py and export
        self.task = task
        self.num_classes = num_classes
        self.num_targets = num_targets
        self.target_mean = target_mean
        self.target_std = target_std
        if task == "classification":
            metrics = MetricCollection(
                {
                    "acc": MulticlassAccuracy(num_classes, average="micro"),
                    "f1": MulticlassF1Score(num_classes, average="macro"),
                }
            )
            self.test_confusion = MulticlassConfusionMatrix(num_classes)
        else:
            metrics = MetricCollection({"rmse": MeanSquaredError(squared=False), "r2": R2Score()})
        # the epoch's predictions and targets per stage, handed to the metrics at its end
        self._outputs: dict[str, list[tuple[Tensor, Tensor]]] = {"train": [], "val": [], "test": []}
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")

    @property
    def num_outputs(self) -> int:
        """Width of the network's last layer: one logit per class, or one value per target."""
        return self.num_classes if self.task == "classification" else self.num_targets

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def exported_networks(self) -> dict[str, Exported]:
        """``net``: x -> logits or the standardised regression value. A subclass saves
        ``input_shape`` in its hparams."""
        shape = [int(d) for d in self.hparams.input_shape]
        x = torch.rand(2, *shape, generator=torch.Generator().manual_seed(0)).to(self.device)
        return {"net": Exported(self.net, (x,), ["x"], ["out"])}

    def exported_facts(self) -> dict[str, Any]:
        """A regression's target standardisation: y = out * target_std + target_mean."""
        if self.task != "regression":
            return {}
        return {"target_mean": self.target_mean, "target_std": self.target_std}

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        """The training objective; each concept writes its own, beside its equation."""
        raise NotImplementedError

    def _step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        x, y = batch
        out = self(x)
        if self.task == "classification":
            loss = self.loss(out, y)
            preds, target = out.argmax(dim=-1), y
            if stage == "test":
                self.test_confusion.update(preds, target)
        else:
            out = out.reshape(y.shape)
            loss = self.loss(out, y)
            preds = (out.detach() * self.target_std + self.target_mean).flatten()
            target = (y * self.target_std + self.target_mean).flatten()
        self._outputs[stage].append((preds.detach(), target))  # scored once an epoch, below
        if stage == "train":
            # train/loss only on the steps Lightning writes (every trainer.log_every_n_steps):
            # each self.log call has a fixed cost, paid for nothing on the steps it drops
            if (self.trainer.global_step + 1) % max(1, self.trainer.log_every_n_steps) == 0:
                self.log_stage(stage, {"loss": loss.detach()})
        else:  # val/test losses: the epoch's mean over all DDP ranks (a no-op on one device)
            self.log_stage(stage, {"loss": loss})
        return loss

    def _log_epoch_metrics(self, stage: str) -> None:
        """The epoch's metrics (accuracy and F1, or RMSE and R^2), computed over all its batches
        (and all DDP ranks: torchmetrics syncs in compute), from one update with the whole
        epoch's predictions: handing the Metric objects to self.log every step would make
        Lightning move each of them to the device again every time, a fixed cost per step that
        can exceed a small network's whole step."""
        outputs, self._outputs[stage] = self._outputs[stage], []
        if not outputs:  # e.g. no batches this epoch
            return
        metrics = getattr(self, f"{stage}_metrics")
        metrics.update(torch.cat([p for p, _ in outputs]), torch.cat([t for _, t in outputs]))
        values = metrics.compute()
        metrics.reset()
        self.log_dict(values, on_epoch=True, prog_bar=stage != "train")

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss = self._step(batch, "train")
        opt = self.optimizers()
        opt.zero_grad()
        self.manual_backward(loss)  # dL/dtheta
        self.clip_manual(opt)  # to trainer.gradient_clip_val, when it is set
        opt.step()  # theta <- the optimizer's update from dL/dtheta
        self.step_lr_schedule()
        return loss.detach()

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int = 0) -> Tensor:
        """Class probabilities (classification) or predictions in the target's own units
        (regression), for ``trainer.predict``; a batch is ``x`` or ``(x, y)``."""
        x = batch[0] if isinstance(batch, tuple | list) else batch
        out = self(x)
        if self.task == "classification":
            return out.softmax(dim=-1)
        return out.reshape(len(x), -1) * self.target_std + self.target_mean

    def on_train_epoch_end(self) -> None:
        self._log_epoch_metrics("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics("test")
        if self.task != "classification":
            return
        fig, _ = self.test_confusion.plot()
        fig.axes[0].set_title("test confusion matrix (rows: true class, columns: predicted)")
        log_figure(self, "test/confusion_matrix", fig)
        self.test_confusion.reset()
