"""Convolutional neural network (CNN): learned filters slid over an image.

LeCun et al. (1998), "Gradient-based learning applied to document recognition" (LeNet-5);
batch normalization: Ioffe & Szegedy (2015); dropout: Srivastava et al. (2014).

A convolution layer computes, for every output channel k and pixel (i, j),

    y[k, i, j] = b_k + sum_c sum_{u,v} W[k, c, u, v] * x[c, i + u, j + v]

with the same small kernel W everywhere in the image (weight sharing: far fewer parameters than a
dense layer, and a pattern is detected wherever it appears). Stacking conv -> ReLU -> 2x2 max
pooling grows the receptive field and makes the features tolerant to small shifts; a linear head
maps the last feature map to class logits, trained with cross-entropy:

    L = -log softmax(f(x))_y

Batch norm (``model.net.batch_norm``) standardizes each channel over the batch,
``BN(z) = gamma * (z - mean_B) / sqrt(var_B + eps) + beta``, which smooths the optimization;
dropout (``model.net.dropout``) zeroes head units at random while training.

``model.net`` is the network: ``mlzoo.nets.cnn.ConvNet`` (default) or a torchvision ResNet-18
adapted to small images (``cnn_net=resnet18``, trained from scratch). The loss,
metrics and confusion matrix are shared with the MLP and RNN (``mlzoo.base.supervised``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from mlzoo.base.module import OptimizerFactory, SchedulerFactory
from mlzoo.base.supervised import SupervisedModule


class CNNModule(SupervisedModule):
    """An image classifier; the data module supplies the image shape and the number of classes."""

    def __init__(
        self,
        net: Callable[..., nn.Module],
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        input_shape: Sequence[int] = (1, 8, 8),
        num_classes: int = 10,
    ) -> None:
        if len(input_shape) != 3:
            raise ValueError(f"a CNN needs images (C, H, W), got input shape {list(input_shape)}")
        super().__init__(optimizer, scheduler, "classification", num_classes)
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"], logger=False)
        channels, height, width = (int(d) for d in input_shape)
        # f: (C, H, W) image -> num_classes logits
        self.net = net(in_channels=channels, out_features=num_classes, image_size=(height, width))

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(out, y)  # L = -log softmax(f(x))_y, averaged over the batch
