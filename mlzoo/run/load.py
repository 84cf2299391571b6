"""A model loaded back from a zoo checkpoint: its run folder's config.yaml rebuilds it.

Every run folder holds the resolved ``config.yaml`` beside ``checkpoints/``, so a checkpoint
alone is enough: scripts (sample.py, evaluate.py, export.py, predict.py) rebuild the exact model
from it. Constructor arguments recorded in the checkpoint (``hyper_parameters``) take precedence
over the config's; the merged config passes the same trust check as a training run's
(mlzoo.run.targets) before anything in it is built. ``trust`` (pickled objects) covers the file
named, never the checkpoints its config names in turn.

A concept built from an earlier run's checkpoint (DPO from its SFT run, transfer from a
pretraining run) loads that one the same way: mlzoo.run.parts receives this loader from its
caller, so the builder never imports it (no import cycle).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, open_dict

from mlzoo.base.errors import ZooError, error_line, one_line
from mlzoo.run.build import instantiate_model
from mlzoo.run.checkpoint import check_lightning_checkpoint, read_checkpoint
from mlzoo.run.files import read_config_file
from mlzoo.run.targets import check_config, check_size, user_allowed


def load_checkpoint(
    path: str | Path,
    option: str = "checkpoint",
    trust: bool = False,
    allow_targets: Iterable[str] = (),
) -> tuple[Any, Any, DictConfig]:
    """(model in eval mode on the CPU, its data module, the run's config) for a zoo checkpoint.

    The run folder's config.yaml and the checkpoint's hyperparameters are someone else's data:
    they are merged, then checked as one config (mlzoo.run.targets) before anything is built.
    Only the caller's ``allow_targets`` (and the command line's, during a run) widen the check;
    the ones the loaded config.yaml records are ignored."""
    path = Path(path)
    ckpt = read_checkpoint(path, option, trust)
    check_lightning_checkpoint(ckpt, path, option)
    run_dir = path.resolve().parent.parent
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise ZooError(
            f"{path}: no config.yaml in its run folder {run_dir}; only checkpoints in "
            "<run>/checkpoints/ of a zoo run can be loaded"
        )
    cfg = read_config_file(cfg_path, "config.yaml")
    if not isinstance(cfg, DictConfig) or not isinstance(cfg.get("model"), DictConfig):
        raise ZooError(f"{cfg_path}: not a zoo run's config (no model section)")
    recorded = ckpt.get("hyper_parameters") or {}
    if not isinstance(recorded, dict):
        raise ZooError(f"{path}: its hyper_parameters are not a mapping")
    check_size(recorded, f"{path}: its hyper_parameters")
    try:
        with open_dict(cfg):
            for key, value in recorded.items():
                if key in cfg.model:
                    cfg.model[key] = value
            _drop_retired_keys(cfg.model)
    except Exception as err:  # a value OmegaConf cannot hold (a tensor, say): not a zoo run's
        raise ZooError(f"{path}: unusable hyper_parameters ({one_line(err, 160)})") from None
    allowed = (*allow_targets, *user_allowed())
    where = f"{cfg_path} with the hyperparameters of {path.name}"
    check_config(cfg, allowed, where=where, from_file=True)
    try:
        datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
        model = instantiate_model(
            cfg.model, datamodule, allow_targets=allowed, load=load_checkpoint
        )
    except ZooError:
        raise
    except Exception as err:  # a setting no constructor takes, a value it refuses, ...
        raise ZooError(f"{where}: cannot build its model ({error_line(err, 200)})") from None
    state = ckpt["state_dict"]
    try:
        model.load_state_dict(state)
    except Exception as err:  # shapes (RuntimeError), or a state_dict that is no mapping
        raise ZooError(
            f"{path} does not fit the model in {cfg_path}: {error_line(err, 300)}"
        ) from None
    return model.eval(), datamodule, cfg


def _drop_retired_keys(model_cfg: DictConfig) -> None:
    """Settings runs once recorded that no concept takes any more: ``log_dir`` (DPO, and a
    transfer backbone's), where ``newest:<run>`` used to be looked up by the concept itself."""
    model_cfg.pop("log_dir", None)
    if isinstance(model_cfg.get("backbone"), DictConfig):
        model_cfg.backbone.pop("log_dir", None)
