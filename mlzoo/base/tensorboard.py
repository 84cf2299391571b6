"""Small helpers to put figures and images into TensorBoard from any LightningModule."""

from __future__ import annotations

import lightning as L
from matplotlib.figure import Figure
from torch import Tensor


def log_figure(module: L.LightningModule, tag: str, fig: Figure) -> None:
    """Draw a matplotlib figure into every TensorBoard logger of the module's trainer."""
    import matplotlib.pyplot as plt
    from lightning.pytorch.loggers import TensorBoardLogger

    try:
        for logger in module.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_figure(tag, fig, global_step=module.global_step, close=False)
    finally:
        plt.close(fig)


def log_image(module: L.LightningModule, tag: str, image: Tensor) -> None:
    """Put a (C, H, W) image with values in [0, 1] (e.g. a ``make_grid``) into TensorBoard."""
    from lightning.pytorch.loggers import TensorBoardLogger

    for logger in module.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(
                tag, image.detach().clamp(0, 1).cpu(), global_step=module.global_step
            )


def log_embedding(
    module: L.LightningModule, tag: str, features: Tensor, labels: Tensor, images: Tensor
) -> None:
    """Vectors with their labels (and image thumbnails) for TensorBoard's Projector tab. Keep
    ``tag`` free of "/" (TensorBoard URL-encodes it and the projector then finds nothing)."""
    from lightning.pytorch.loggers import TensorBoardLogger

    for logger in module.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_embedding(
                features.detach().cpu(),
                metadata=labels.tolist(),
                label_img=images.detach().cpu() if images.dim() == 4 else None,
                global_step=module.global_step,
                tag=tag,
            )


def log_scalars(module: L.LightningModule, values: dict[str, float], step: int) -> None:
    """Scalars at an explicit x value (RL: environment steps) in every TensorBoard logger. Only
    rank zero writes; Lightning's own ``self.log`` would put them at the optimizer step."""
    from lightning.pytorch.loggers import TensorBoardLogger

    if module.trainer is None or not module.trainer.is_global_zero:
        return
    for logger in module.loggers:
        if isinstance(logger, TensorBoardLogger):
            for tag, value in values.items():
                logger.experiment.add_scalar(tag, value, global_step=step)


def log_table(module: L.LightningModule, tag: str, columns: dict[str, list[str]]) -> None:
    """A Markdown table (columns of equal length) in TensorBoard's Text tab, at the current
    step: e.g. prompts and the model's answers after each validation."""
    from lightning.pytorch.loggers import TensorBoardLogger

    if module.trainer is None or not module.trainer.is_global_zero:
        return

    def cell(text: str) -> str:  # one line, and no "|" that would end the cell
        return " ".join(str(text).split()).replace("|", "\\|") or " "

    names = list(columns)
    lines = ["| " + " | ".join(names) + " |", "|" + " --- |" * len(names)]
    rows = zip(*columns.values(), strict=True)
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    for logger in module.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_text(tag, "\n".join(lines), global_step=module.global_step)
