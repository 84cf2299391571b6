"""Load a zoo checkpoint back into its model, with the data module it was trained on.

Every run folder holds the resolved ``config.yaml`` beside ``checkpoints/``, so a checkpoint alone
is enough: scripts (sample.py, evaluate.py) and transfer learning rebuild the exact model from it.
Checkpoints load with ``torch.load(weights_only=True)`` (no pickled code runs); the model is
rebuilt by instantiating the ``_target_`` classes named in the run's config.yaml, so load only
run folders you trust. Constructor arguments recorded in the checkpoint (``hyper_parameters``)
take precedence over the config's, e.g. the backbone file a transfer run actually used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from mlzoo.core.errors import ZooError


def load_checkpoint(path: str | Path) -> tuple[Any, Any, DictConfig]:
    """(model in eval mode on the CPU, its data module, the run's config) for a zoo checkpoint."""
    from mlzoo.train import _check_checkpoint, _instantiate_model

    path = Path(path)
    _check_checkpoint(path)
    run_dir = path.resolve().parent.parent
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise ZooError(
            f"{path}: no config.yaml in its run folder {run_dir}; only checkpoints in "
            "<run>/checkpoints/ of a zoo run can be loaded"
        )
    cfg = OmegaConf.load(cfg_path)
    datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    recorded = ckpt.get("hyper_parameters", {})
    with open_dict(cfg):
        for key, value in recorded.items():
            if key in cfg.model:
                cfg.model[key] = value
    model = _instantiate_model(cfg.model, datamodule)
    state = ckpt["state_dict"]
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise ZooError(f"{path} does not fit the model in {cfg_path}: {first[:300]}") from None
    return model.eval(), datamodule, cfg


def resolve_checkpoint(spec: str | Path, log_dir: str | Path, option: str) -> Path:
    """A checkpoint file, or ``newest:<run name>``: the best (else last) checkpoint of the newest
    run of that name under log_dir/runs/. ``option`` names the setting in error messages."""
    if not str(spec).startswith("newest:"):
        return Path(spec)
    name = str(spec).split(":", 1)[1]
    runs = sorted(Path(log_dir).glob(f"runs/{name}/*/checkpoints"), key=lambda p: p.parent.name)
    for ckpts in reversed(runs):
        best = sorted(ckpts.glob("best-*.ckpt"))
        for candidate in [*best, ckpts / "last.ckpt"]:
            if candidate.is_file():
                return candidate
    model = name.split("-")[0]
    raise ZooError(
        f"{option}: no checkpoint of a {name} run under {log_dir}/runs/; train one first "
        f"(python train.py model={model}) or set {option}=<file>"
    )
