"""Recurrent neural networks: a vanilla (Elman) RNN, the LSTM and the GRU, read a sequence step by step.

Elman (1990), "Finding structure in time": a network with a hidden state that it feeds back to
itself, so that step t sees everything before it through h_{t-1}:

    h_t = tanh(W_x x_t + W_h h_{t-1} + b)                   vanilla RNN
    f(x_{1..T}) = W_out h_T + b_out                         logits or forecasts, from the last state

Backpropagation through time (BPTT; Werbos 1990) unrolls the loop into a T-layer network that shares
its weights across layers and backpropagates through it. The gradient that reaches step k from the
loss at step T is a product of T - k Jacobians:

    dL/dh_k = dL/dh_T * prod_{t=k+1..T} dh_t/dh_{t-1},     dh_t/dh_{t-1} = diag(1 - h_t^2) W_h

Each factor's norm is at most |W_h| (tanh' <= 1), so when the largest singular value of W_h is below
1 the product shrinks geometrically with the distance T - k: the gradient *vanishes* and the network
cannot learn dependencies many steps long (Bengio, Simard & Frasconi 1994; Hochreiter 1991). When it
is above 1 the product can *explode* instead: clipping the gradient norm (Pascanu et al. 2013) tames
that, and the zoo does it in the trainer (``trainer.gradient_clip_val``), not here.

LSTM (Hochreiter & Schmidhuber 1997; forget gate: Gers, Schmidhuber & Cummins 2000) adds a cell
state c_t that is carried forward by addition, gated by sigmoids sigma in (0, 1):

    i_t = sigma(W_i [x_t, h_{t-1}] + b_i)                   input gate: how much to write
    f_t = sigma(W_f [x_t, h_{t-1}] + b_f)                   forget gate: how much to keep
    o_t = sigma(W_o [x_t, h_{t-1}] + b_o)                   output gate: how much to show
    g_t = tanh(W_g [x_t, h_{t-1}] + b_g)                    candidate values
    c_t = f_t * c_{t-1} + i_t * g_t                         the "constant error carousel"
    h_t = o_t * tanh(c_t)

Along the cell path dc_t/dc_{t-1} = diag(f_t): no weight matrix, no squashing, so with f_t near 1
the error flows back over hundreds of steps unchanged. (The net starts the forget bias at 1.)

GRU (Cho et al. 2014) merges the cell and hidden state and uses two gates:

    z_t = sigma(W_z [x_t, h_{t-1}] + b_z)                   update gate
    r_t = sigma(W_r [x_t, h_{t-1}] + b_r)                   reset gate
    n_t = tanh(W_n x_t + r_t * (U_n h_{t-1}) + b_n)         candidate state
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}                   keep the old state where z_t ~ 1

The loss is the shared supervised one (``mlzoo.base.supervised``): cross-entropy for classes,
mean squared error for regression targets (a forecast of ``horizon`` future values, or a sum). The
network is ``mlzoo.nets.rnn.RecurrentNet`` over PyTorch's cuDNN-backed ``nn.RNN/LSTM/GRU``; images
are read one row per step (8x8 digits: 8 steps of 8 pixels). See the gap between the cells on the
adding problem with ``python train.py -m experiment=rnn_cells``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from mlzoo.base.module import OptimizerFactory, SchedulerFactory
from mlzoo.base.supervised import SupervisedModule


def features_per_step(input_shape: Sequence[int]) -> int:
    """What the network reads at each step: F of a (T, F) sequence, C*W of a (C, H, W) image read
    row by row, 1 of a (T,) sequence of scalars."""
    shape = [int(d) for d in input_shape]
    if len(shape) == 1:
        return 1
    if len(shape) == 2:
        return shape[1]
    if len(shape) == 3:
        return shape[0] * shape[2]
    raise ValueError(f"a recurrent net reads (T,), (T, F) or (C, H, W) inputs, got {shape}")


class RNNModule(SupervisedModule):
    """A recurrent classifier or regressor (cell: rnn | lstm | gru, from the net's config)."""

    def __init__(
        self,
        net: Callable[..., nn.Module],
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        input_shape: Sequence[int] = (8, 8),
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
        # h_t = cell(x_t, h_{t-1}) over the T steps, then f(x) = W_out h_T + b_out.
        self.net = net(input_size=features_per_step(input_shape), out_features=self.num_outputs)

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        if self.task == "classification":
            return F.cross_entropy(out, y)  # L = -log softmax(f(x))_y, averaged over the batch
        return F.mse_loss(out, y)  # L = mean (f(x) - y)^2, on the standardized target
