"""A recurrent network that reads a sequence and maps its final hidden state through a linear head.

    x: (B, T, F)      T steps of F features             -> the sequence as given
    x: (B, C, H, W)   an image, read one row per step   -> T = H steps of C*W features
    x: (B, T)         a sequence of scalars             -> T steps of 1 feature

The recurrent core is PyTorch's ``nn.RNN`` (tanh), ``nn.LSTM`` or ``nn.GRU`` (``batch_first``), so
the cuDNN kernels run on a GPU. The head reads the last layer's final hidden state ``h_T``; a
bidirectional net concatenates the forward direction's ``h_T`` with the backward direction's ``h_1``
(each direction's final state, having read the whole sequence).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

CELLS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def as_sequence(x: Tensor) -> Tensor:
    """(B, T, F) as is; (B, C, H, W) images row by row as (B, H, C*W); (B, T) as (B, T, 1)."""
    if x.ndim == 4:
        b, c, h, w = x.shape
        return x.permute(0, 2, 1, 3).reshape(b, h, c * w)  # step t reads row t of every channel
    if x.ndim == 3:
        return x
    if x.ndim == 2:
        return x.unsqueeze(-1)
    raise ValueError(
        f"expected (B, T), (B, T, F) or (B, C, H, W) input, got shape {tuple(x.shape)}"
    )


class RecurrentNet(nn.Module):
    """[RNN | LSTM | GRU] x num_layers over the sequence -> final hidden state -> dropout -> Linear.

    Args:
        input_size: features per time step (F, or C*W for an image read row by row).
        out_features: outputs of the linear head (logits or regression targets).
        cell: ``rnn`` (Elman, tanh), ``lstm`` or ``gru``.
        hidden_size: width of the hidden state (per direction).
        num_layers: stacked recurrent layers; layer l reads layer l-1's hidden states.
        bidirectional: also read the sequence backwards; the head sees both final states.
        dropout: between stacked layers and on the features the head reads.
        forget_bias: initial bias of the LSTM forget gate (Gers et al. 2000; Jozefowicz et al.
            2015): 1.0 makes the cell remember by default at the start of training.
    """

    def __init__(
        self,
        input_size: int,
        out_features: int,
        cell: str = "lstm",
        hidden_size: int = 128,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        forget_bias: float = 1.0,
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r}; choose from {sorted(CELLS)}")
        for name, value in (
            ("input_size", input_size),
            ("out_features", out_features),
            ("hidden_size", hidden_size),
            ("num_layers", num_layers),
        ):
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.cell = cell
        extra = {"nonlinearity": "tanh"} if cell == "rnn" else {}
        self.rnn = CELLS[cell](
            input_size=int(input_size),
            hidden_size=int(hidden_size),
            num_layers=int(num_layers),
            batch_first=True,
            bidirectional=bool(bidirectional),
            # nn.RNNBase applies dropout between layers only (it warns for a single layer)
            dropout=float(dropout) if num_layers > 1 else 0.0,
            **extra,
        )
        if cell == "lstm":
            # PyTorch orders the LSTM gates (input, forget, cell, output) in its bias vectors and
            # adds bias_ih + bias_hh: set the forget slice of their sum to forget_bias.
            h = int(hidden_size)
            with torch.no_grad():
                for name, bias in self.rnn.named_parameters():
                    if name.startswith("bias_"):
                        bias[h : 2 * h] = forget_bias if name.startswith("bias_ih") else 0.0
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        directions = 2 if bidirectional else 1
        self.head = nn.Linear(directions * int(hidden_size), int(out_features))

    def forward(self, x: Tensor) -> Tensor:
        seq = as_sequence(x)
        _, state = self.rnn(seq)  # state: h_n, or (h_n, c_n) for the LSTM
        h_n = state[0] if isinstance(state, tuple) else state  # (layers * directions, B, H)
        directions = 2 if self.rnn.bidirectional else 1
        final = torch.cat(list(h_n[-directions:]), dim=-1)  # last layer: forward [, backward]
        return self.head(self.dropout(final))
