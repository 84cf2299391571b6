"""The one place that wires a run: compose -> seed -> instantiate -> fit -> test -> summary.json.

    python train.py model=mlp data=digits trainer=cpu seed=0

Hydra composes ``configs/train.yaml`` with the command line; this module instantiates the data
module, the model (sized by the data: input shape, task, classes), callbacks, loggers and
Lightning's Trainer, fits, tests the best checkpoint and writes ``summary.json`` in the run folder.
A mistake a user can fix (bad override, missing data, unreadable checkpoint) ends with one line on
stderr and exit code 1, and the run folder this invocation created is removed.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf, open_dict

from mlzoo.core.errors import ZooError

log = logging.getLogger("mlzoo")


def _config_dir() -> str:
    """configs/ inside the installed package (a wheel), else the repository's configs/."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "configs", here.parent / "configs"):
        if (candidate / "train.yaml").is_file():
            return str(candidate)
    raise RuntimeError(f"mlzoo: no configs/train.yaml next to {here}")


CONFIG_DIR = _config_dir()


_QUIETED = False


def _quiet_known_noise() -> None:
    """Silence Lightning's tips and warnings that do not apply to the zoo's in-memory data."""
    global _QUIETED
    if _QUIETED:
        return
    _QUIETED = True
    # `import lightning` gives its logger a console handler of its own; when Hydra has set up
    # logging (a root handler), that handler would print every message twice.
    lightning_logger = logging.getLogger("lightning")
    if logging.getLogger().handlers:
        for handler in list(lightning_logger.handlers):
            lightning_logger.removeHandler(handler)
    for pattern in (
        ".*does not have many workers.*",
        ".*exists and is not empty.*",
        ".*LeafSpec.*",
        ".*is smaller than the logging interval.*",
        ".*`weights_only` was not set.*",
        ".*Trying to infer the `batch_size`.*",
    ):
        warnings.filterwarnings("ignore", message=pattern)
    warnings.filterwarnings("ignore", category=DeprecationWarning)

    class _DropTips(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            msg = record.getMessage()
            return not (
                "Tip:" in msg
                or "litlogger" in msg.lower()
                or "`weights_only` was not set" in msg  # saving a full checkpoint: intended
                or msg.startswith(("TPU available", "HPU available"))
            )

    for name in (
        "lightning.pytorch.utilities.rank_zero",
        "lightning.fabric.utilities.rank_zero",
        "lightning.pytorch.trainer.connectors.checkpoint_connector",
    ):
        logging.getLogger(name).addFilter(_DropTips())


# --------------------------------------------------------------------------------------------
# run folders and resuming
# --------------------------------------------------------------------------------------------
def _choices() -> dict[str, str]:
    """The option picked in each config group (model, data, ...), when Hydra is running."""
    if HydraConfig.initialized():
        return {k: v for k, v in HydraConfig.get().runtime.choices.items() if isinstance(v, str)}
    return {}


def _check_checkpoint(path: Path) -> None:
    """Fail early, with one line, on a missing, corrupt or foreign checkpoint file."""
    import torch

    if not path.is_file():
        raise ZooError(f"ckpt_path: no checkpoint file at {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt, truncated, or pickles arbitrary objects
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ZooError(f"ckpt_path: cannot load {path} as a checkpoint ({first[:200]})") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "global_step" not in ckpt:
        raise ZooError(f"ckpt_path: {path} is not a Lightning checkpoint written by mlzoo")


def _resolve_resume(cfg: DictConfig, fresh_dir: Path) -> tuple[str | None, Path]:
    """Turn ``ckpt_path`` into a file and the run folder to continue in.

    A checkpoint in ``<run>/checkpoints/`` resumes *in* ``<run>``, so TensorBoard curves continue in
    the same run and no second folder appears; any other file starts a new run from its weights and
    training state.
    """
    ckpt = cfg.get("ckpt_path")
    if ckpt is None:
        return None, fresh_dir
    if str(ckpt) == "last":
        log_dir = Path(cfg.paths.log_dir)
        found = [
            p
            for p in log_dir.rglob("last.ckpt")
            if cfg.name in p.parts and fresh_dir.resolve() not in p.resolve().parents
        ]
        if not found:
            raise ZooError(
                f"ckpt_path=last: no last.ckpt of a '{cfg.name}' run under {log_dir.resolve()}; "
                "train one first, or pass ckpt_path=<file>"
            )
        path = max(found, key=lambda p: p.stat().st_mtime)
    else:
        path = Path(str(ckpt)).expanduser()
    _check_checkpoint(path)
    run_dir = path.parent.parent if path.parent.name == "checkpoints" else fresh_dir
    return str(path), run_dir


def _discard(run_dir: Path) -> None:
    """Remove the run folder this invocation just created, when it holds only what Hydra put there
    (.hydra/, train.log). A folder with anything else in it (a user's ``hydra.run.dir=.``, an
    earlier run) is left alone."""
    if run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= {".hydra", "train.log"}:
        shutil.rmtree(run_dir, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# instantiation
# --------------------------------------------------------------------------------------------
def _instantiate_model(model_cfg: DictConfig, datamodule: Any) -> Any:
    """Instantiate the model, filling what the data decides (input shape, task, classes, ...)."""
    target = hydra.utils.get_class(model_cfg._target_)
    accepted = inspect.signature(target.__init__).parameters
    spec = getattr(datamodule, "spec", {})
    from_data = {k: v for k, v in spec.items() if k in accepted and k not in model_cfg}
    return hydra.utils.instantiate(model_cfg, _convert_="all", **from_data)


def _instantiate_all(group: DictConfig | None) -> list[Any]:
    return [hydra.utils.instantiate(c) for c in (group or {}).values() if c is not None]


def _flat_hparams(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as flat ``a/b/c: value`` pairs of primitives, for TensorBoard's HPARAMS."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}/{k}" if prefix else str(k))
        elif isinstance(node, (bool, int, float, str)):
            flat[prefix] = node
        elif node is None:
            flat[prefix] = "null"
        else:
            flat[prefix] = str(node)

    for section in ("model", "data", "trainer", "seed", "monitor", "name"):
        if section in resolved:
            walk(resolved[section], section)
    return flat


def _log_hparams(loggers: list[Any], cfg: DictConfig) -> None:
    """HPARAMS tab: every hyperparameter, with the monitored metric and its test counterpart;
    Text tab: the resolved config."""
    from lightning.pytorch.loggers import TensorBoardLogger
    from torch.utils.tensorboard.summary import hparams

    monitor = cfg.monitor.metric
    metrics = {monitor: 0.0, monitor.replace("val/", "test/", 1): 0.0}
    for lg in loggers:
        if isinstance(lg, TensorBoardLogger):
            # Only the experiment definition is written, never a fake metric value: TensorBoard
            # reads the columns' values from the real scalars of the same names.
            writer = lg.experiment._get_file_writer()
            for summary in hparams(_flat_hparams(cfg), metrics):
                writer.add_summary(summary)
            # The resolved config in the Text tab (indented: Markdown shows it as code).
            config_yaml = OmegaConf.to_yaml(cfg, resolve=True)
            lg.experiment.add_text("config", "    " + config_yaml.replace("\n", "\n    "))
        elif hasattr(lg, "log_hyperparams"):
            lg.log_hyperparams(_flat_hparams(cfg))


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------
def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one training job from a composed config; return (and write) its summary."""
    import lightning as L

    start = time.time()
    _quiet_known_noise()
    fresh_dir = Path(cfg.paths.output_dir)
    try:
        ckpt_path, run_dir = _resolve_resume(cfg, fresh_dir)
        if run_dir != fresh_dir:
            log.info(f"Resuming {ckpt_path} in {run_dir}")
            _discard(fresh_dir)
            with open_dict(cfg):
                cfg.paths.output_dir = str(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        if cfg.get("torch_threads") is not None:
            import torch

            torch.set_num_threads(int(cfg.torch_threads))
        if cfg.get("seed") is not None:  # `if cfg.seed:` would skip seed=0
            L.seed_everything(int(cfg.seed), workers=True, verbose=False)
        datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
        model = _instantiate_model(cfg.model, datamodule)
        callbacks = _instantiate_all(cfg.get("callbacks"))
        loggers = _instantiate_all(cfg.get("logger"))
        trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    except InstantiationException as err:
        _discard(fresh_dir)
        raise ZooError(_one_line(err)) from None
    except (ZooError, ValueError, TypeError) as err:
        _discard(fresh_dir)
        raise ZooError(_one_line(err)) from None

    if trainer.is_global_zero:  # under DDP, every rank runs this function: rank zero writes
        name = "config.yaml" if ckpt_path is None else f"config.resume-{int(start)}.yaml"
        (run_dir / name).write_text(OmegaConf.to_yaml(cfg, resolve=True))
        _log_hparams(loggers, cfg)

    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)

    ckpt_cb = trainer.checkpoint_callback
    best = getattr(ckpt_cb, "best_model_path", "") or ""
    last = run_dir / "checkpoints" / "last.ckpt"
    metrics: dict[str, float] = {}
    status = "interrupted" if trainer.interrupted else "completed"
    if cfg.get("test", True) and not trainer.interrupted:
        results = trainer.test(
            model, datamodule=datamodule, ckpt_path=best or None, weights_only=True, verbose=False
        )
        metrics.update({k: float(v) for k, v in (results[0] if results else {}).items()})
    for key, value in trainer.callback_metrics.items():
        if key.startswith("val/"):
            metrics.setdefault(key, float(value))

    choices = _choices()
    best_score = getattr(ckpt_cb, "best_model_score", None)
    summary = {
        "model": choices.get("model", cfg.model._target_.rsplit(".", 1)[-1]),
        "data": choices.get("data", cfg.data._target_.rsplit(".", 1)[-1]),
        "seed": cfg.get("seed"),
        "metrics": metrics,
        "monitor": {
            "metric": cfg.monitor.metric,
            "mode": cfg.monitor.mode,
            "best": float(best_score) if best_score is not None else None,
        },
        "best_checkpoint": str(Path(best).resolve()) if best else None,
        "last_checkpoint": str(last.resolve()) if last.is_file() else None,
        "global_step": int(trainer.global_step),
        "epochs": int(trainer.current_epoch),
        "duration_s": round(time.time() - start, 3),
        "run_dir": str(run_dir.resolve()),
        "resumed_from": ckpt_path,
        "status": status,
    }
    if trainer.is_global_zero:
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        _print_summary(summary)
    if trainer.interrupted:
        raise ZooError(
            f"run interrupted at step {trainer.global_step}; resume with ckpt_path={last}"
        )
    return summary


def _one_line(err: BaseException) -> str:
    """The innermost useful message of an exception, on one line."""
    while err.__cause__ is not None:
        err = err.__cause__
    text = " ".join(str(err).split()) or type(err).__name__
    return text if isinstance(err, ZooError) else f"{type(err).__name__}: {text}"


def _print_summary(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{summary['model']} on {summary['data']}", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in sorted(summary["metrics"].items()):
        table.add_row(key, f"{value:.4f}" if math.isfinite(value) else str(value))
    console = Console(soft_wrap=True)  # paths stay whole, for copy and paste
    console.print(table)
    console.print(f"run dir:         {summary['run_dir']}")
    console.print(f"best checkpoint: {summary['best_checkpoint']}")
    console.print(f"duration:        {summary['duration_s']:.1f} s   (summary.json in the run dir)")
    console.print("compare runs:    tensorboard --logdir logs")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    try:
        summary = train(cfg)
    except ZooError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    return summary["monitor"]["best"]


def main() -> None:
    """Console entry point (``mlzoo-train``) and ``python train.py``."""
    _hydra_main()


if __name__ == "__main__":
    main()
