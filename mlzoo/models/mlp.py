"""Multi-layer perceptron (MLP): the feed-forward network, trained by backpropagation.

Rumelhart, Hinton & Williams (1986), "Learning representations by back-propagating errors".

An MLP stacks affine maps and non-linearities:

    h_0 = x (flattened)
    h_l = phi(W_l h_{l-1} + b_l)            l = 1 .. L-1   (optionally normalized, then dropout)
    f(x) = W_L h_{L-1} + b_L                logits (classification) or a value (regression)

Without phi the stack collapses to one linear map; with it, one wide enough hidden layer can
approximate any continuous function on a compact set (Cybenko 1989, Hornik 1991). Training walks
the weights downhill on the loss with the gradients that backpropagation (autograd) computes:

    classification:  L = -log softmax(f(x))_y          (cross-entropy)
    regression:      L = (f(x) - y)^2                  (mean squared error)
    update:          theta <- theta - lr * dL/dtheta   (or Adam/AdamW, from the config)

The loss, the update (zero_grad, backward, clip, step), metrics and logging shared with the CNN
and RNN live in ``mlzoo.base.supervised``; the network is ``mlzoo.nets.mlp.MLP``. Try
``model.net.activation=sigmoid model.net.hidden_sizes=[64,64,64,64,64]`` to watch gradients
vanish, or ``model.net.norm=batch`` to see them recover.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from mlzoo.base.module import OptimizerFactory, SchedulerFactory
from mlzoo.base.supervised import SupervisedModule


class MLPModule(SupervisedModule):
    """An MLP classifier or regressor; the data module supplies input shape, task and classes."""

    def __init__(
        self,
        net: Callable[..., nn.Module],
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        input_shape: Sequence[int] = (64,),
        task: str = "classification",
        num_classes: int = 10,
        num_targets: int = 1,
        target_mean: float = 0.0,
        target_std: float = 1.0,
    ) -> None:
        super().__init__(
            optimizer, scheduler, task, num_classes, num_targets, target_mean, target_std
        )
        # net, optimizer and scheduler are injected partials: keep them out of the checkpoint's
        # hyperparameters so that it stays loadable with torch.load(weights_only=True).
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"], logger=False)
        in_features = math.prod(int(d) for d in input_shape)
        # f: R^{in_features} -> R^{num_outputs}, hidden widths and activation from the config.
        self.net = net(in_features=in_features, out_features=self.num_outputs)

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        if self.task == "classification":
            return F.cross_entropy(out, y)  # L = -log softmax(f(x))_y, averaged over the batch
        return F.mse_loss(out, y)  # L = mean (f(x) - y)^2, on the standardized target
