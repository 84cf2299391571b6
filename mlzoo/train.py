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
import os
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
from omegaconf.errors import OmegaConfBaseException

from mlzoo.core.errors import ZooError
from mlzoo.core.targets import check_targets
from mlzoo.core.typecheck import check_types

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
        ".*Total length of .* across ranks is zero.*",  # said better by "no training step ran"
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


def _drop_nvml_check_without_a_driver() -> None:
    """`import lightning` sets PYTORCH_NVML_BASED_CUDA_CHECK=1, so that asking whether CUDA is
    there never initialises it (safe to fork afterwards). Without an NVIDIA driver every such
    question then tries to load libnvidia-ml, fails, and falls back to the ordinary check: ~50 us
    each time, and torch.optim asks on every optimizer step (a few % of a small MLP's step).
    Where torch could not load the library either, the variable changes nothing but that cost."""
    import ctypes

    if os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") != "1":
        return
    try:
        ctypes.CDLL("libnvidia-ml.so.1")  # the library torch.cuda's NVML check loads
    except OSError:
        del os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"]


# --------------------------------------------------------------------------------------------
# run folders and resuming
# --------------------------------------------------------------------------------------------
def _choices() -> dict[str, str]:
    """The option picked in each config group (model, data, ...), when Hydra is running."""
    if HydraConfig.initialized():
        return {k: v for k, v in HydraConfig.get().runtime.choices.items() if isinstance(v, str)}
    return {}


def _check_checkpoint(path: Path, trust: bool = False) -> None:
    """Fail early, with one line, on a missing, corrupt, foreign or pickling checkpoint file."""
    from mlzoo.core.checkpoint import check_lightning_checkpoint, read_checkpoint

    check_lightning_checkpoint(read_checkpoint(path, "ckpt_path", trust), path)


def _resolve_resume(cfg: DictConfig, fresh_dir: Path) -> tuple[str | None, Path]:
    """Turn ``ckpt_path`` into a file and the run folder to continue in.

    A checkpoint in ``<run>/checkpoints/`` of a zoo run under ``paths.log_dir`` resumes *in* ``<run>``,
    so TensorBoard curves continue in the same run and no second folder appears; any other file
    starts a new run folder from its weights and training state.
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
    _check_checkpoint(path, bool(cfg.get("trust_checkpoint")))
    run_dir = path.parent.parent
    log_dir = Path(cfg.paths.log_dir).resolve()
    is_zoo_run = (
        path.parent.name == "checkpoints"
        and (run_dir / "config.yaml").is_file()
        and log_dir in run_dir.resolve().parents
    )
    return str(path), run_dir if is_zoo_run else fresh_dir


def _check_fits(ckpt_path: str, model: Any, trust: bool = False) -> None:
    """Refuse, before anything is written, a checkpoint whose weights or optimizer do not match the
    model and optimizer this command line builds (resume with the run's own settings)."""
    from mlzoo.core.checkpoint import read_checkpoint

    ckpt = read_checkpoint(ckpt_path, "ckpt_path", trust)
    theirs, ours = ckpt["state_dict"], model.state_dict()
    for key in sorted(set(theirs) | set(ours)):
        if key not in theirs or key not in ours or theirs[key].shape != ours[key].shape:
            shapes = [tuple(d[key].shape) if key in d else "missing" for d in (theirs, ours)]
            raise ZooError(
                f"ckpt_path: {ckpt_path} does not fit this model: {key} is {shapes[0]} in the "
                f"checkpoint and {shapes[1]} here; resume with the run's own settings "
                "(its config.yaml)"
            )
    saved = ckpt.get("optimizer_states") or []
    if saved:
        configured = model.configure_optimizers()
        if isinstance(configured, dict):
            configured = configured["optimizer"]
        if isinstance(configured, tuple) and len(configured) == 2:  # ([optimizers], [schedulers])
            configured = configured[0]
        optimizers = configured if isinstance(configured, list | tuple) else [configured]
        optimizers = [o["optimizer"] if isinstance(o, dict) else o for o in optimizers]
        if len(optimizers) != len(saved):
            raise ZooError(
                f"ckpt_path: {ckpt_path} holds {len(saved)} optimizer states, this model has "
                f"{len(optimizers)} optimizers; resume with the run's own settings"
            )
        for optimizer, state in zip(optimizers, saved, strict=True):
            # every setting of this optimizer must be in the saved groups (a concept may add
            # its own keys to a group, e.g. PPO's base_lr for its annealing)
            keys = set(state["param_groups"][0]) - {"params", "initial_lr"}
            if not set(optimizer.defaults) <= keys:
                raise ZooError(
                    f"ckpt_path: {ckpt_path} was written with another optimizer (its settings "
                    f"{sorted(keys)}, this one's {sorted(optimizer.defaults)}); resume with the "
                    "run's own optimizer"
                )


def _discard(run_dir: Path, keep: set[str] | frozenset[str] = frozenset()) -> None:
    """Undo a run folder this invocation created: remove every entry in it but ``keep`` (what was
    there before, e.g. a user's files under ``hydra.run.dir=.``), and the folder if then empty."""
    if not run_dir.is_dir():
        return
    for entry in run_dir.iterdir():
        if entry.name not in keep:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    if not any(run_dir.iterdir()):
        run_dir.rmdir()


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
def _check_multirun_ddp(cfg: DictConfig) -> None:
    """Refuse a multirun (-m) whose runs use DDP over several processes: Lightning starts each
    extra rank by re-running the command line, so every extra rank would run the whole sweep
    again, in a second sweep folder (seen with lightning 2.6 and hydra 1.3)."""
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return
    launcher = str(HydraConfig.get().launcher.get("_target_", ""))
    if "submitit" in launcher:  # every run is its own job: srun starts the ranks, not Lightning
        return
    trainer = cfg.get("trainer") or {}
    devices, nodes = trainer.get("devices", 1), int(trainer.get("num_nodes", 1) or 1)
    several = nodes > 1 or devices == -1 or (isinstance(devices, int) and devices > 1)
    several = several or (not isinstance(devices, int | str) and len(devices) > 1)  # a list
    if "ddp" in str(trainer.get("strategy", "")) and several:
        raise ZooError(
            "a multirun (-m) cannot use DDP over several processes: each extra rank would re-run "
            "the whole sweep. Run each configuration as its own command, or give every run its "
            "own job with a launcher (hydra/launcher=submitit_slurm)"
        )


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one training job from a composed config; return (and write) its summary."""
    import lightning as L

    from mlzoo.callbacks.finite import NonFiniteError, first_non_finite

    start = time.time()
    _quiet_known_noise()
    _drop_nvml_check_without_a_driver()
    fresh_dir = Path(cfg.paths.output_dir)
    # What the folder held before this run (Hydra only adds .hydra/ and train.log to a new one).
    keep = {p.name for p in fresh_dir.glob("*")} - {".hydra", "train.log"}
    trust = bool(cfg.get("trust_checkpoint"))
    try:
        check_targets(cfg, cfg.get("allow_targets") or ())
        check_types(cfg)
        _check_multirun_ddp(cfg)
        ckpt_path, run_dir = _resolve_resume(cfg, fresh_dir)
        if run_dir != fresh_dir:
            log.info(f"Resuming {ckpt_path} in {run_dir}")
            _discard(fresh_dir, keep)
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
        clip = {}
        if not model.automatic_optimization and cfg.trainer.get("gradient_clip_val"):
            # Lightning clips only under automatic optimization (and refuses the setting
            # otherwise): a manual-optimization concept clips itself, in ZooModule.clip_manual
            model.manual_clip_val = float(cfg.trainer.gradient_clip_val)
            model.manual_clip_algorithm = cfg.trainer.get("gradient_clip_algorithm") or "norm"
            clip = {"gradient_clip_val": None, "gradient_clip_algorithm": None}
        trainer = hydra.utils.instantiate(
            cfg.trainer, callbacks=callbacks, logger=loggers or False, **clip
        )
        if ckpt_path is not None:
            _check_fits(ckpt_path, model, trust)
        if cfg.get("compile"):
            # the networks, not the LightningModule (metrics and logging stay eager); in place,
            # so state_dict keys and checkpoints are the same as without compiling
            for child in model.children():
                if any(True for _ in child.parameters()):
                    child.compile()
    except InstantiationException as err:
        _discard(fresh_dir, keep)
        raise ZooError(_one_line(err)) from None
    except (ZooError, ValueError, TypeError, RuntimeError, KeyError, OmegaConfBaseException) as err:
        _discard(fresh_dir, keep)
        raise ZooError(_one_line(err)) from None

    if trainer.is_global_zero:  # under DDP, every rank runs this function: rank zero writes
        name = "config.yaml" if ckpt_path is None else f"config.resume-{int(start)}.yaml"
        _write_atomically(run_dir / name, OmegaConf.to_yaml(cfg, resolve=True))
        _log_hparams(loggers, cfg)

    diverged: NonFiniteError | None = None
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=not trust)
    except SystemExit:  # Ctrl-C and SIGTERM end fit with SystemExit: write the summary first
        if not trainer.interrupted:
            raise
    except NonFiniteError as err:
        diverged = err
    except Exception as err:
        found = first_non_finite(dict(model.named_parameters()))
        if found is not None:  # e.g. a distribution refusing NaN logits: the weights diverged
            diverged = NonFiniteError(
                f"weight {found[0]} became {found[1]} by step {trainer.global_step} "
                f"({_one_line(err)[:200]}); lower the learning rate or clip gradients"
            )
        elif trainer.global_step > 0 or ckpt_path is not None:
            raise  # a crash in the middle of training: the traceback is what a user needs
        else:
            # A mistake that only shows once fit starts (a bad learning rate, an empty split, ...).
            _discard(fresh_dir, keep)
            raise ZooError(_one_line(err)) from None
    if trainer.global_step == 0 and ckpt_path is None and not trainer.interrupted and not diverged:
        _discard(fresh_dir, keep)
        raise ZooError(
            "no training step ran (is the training split smaller than one batch, or "
            "trainer.max_epochs / max_steps 0?); nothing was learned"
        )

    ckpt_cb = trainer.checkpoint_callback
    best = getattr(ckpt_cb, "best_model_path", "") or ""
    last = run_dir / "checkpoints" / "last.ckpt"
    metrics: dict[str, float] = {}
    status = "diverged" if diverged else "interrupted" if trainer.interrupted else "completed"
    if cfg.get("test", True) and status == "completed":
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
        "data": choices.get("data") or choices.get("env") or cfg.data._target_.rsplit(".", 1)[-1],
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
        _write_atomically(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
        _print_summary(summary)
    if diverged:
        raise diverged
    if trainer.interrupted:
        saved = [getattr(cb, "saved", None) for cb in trainer.callbacks]
        resume_from = next((p for p in saved if p is not None), last)
        raise ZooError(
            f"run stopped (Ctrl-C or SIGTERM) at step {trainer.global_step}; saved "
            f"{resume_from}; resume with ckpt_path={resume_from}"
        )
    return summary


def _write_atomically(path: Path, text: str) -> None:
    """Write a small text file through a temporary name, so that it is never seen half written."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


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
    console.print("compare runs:    tensorboard --logdir logs --host localhost")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    try:
        summary = train(cfg)
    except ZooError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:  # before training started (Lightning handles it during fit)
        print("error: interrupted before training started; nothing was saved", file=sys.stderr)
        sys.exit(1)
    return summary["monitor"]["best"]


def main() -> None:
    """Console entry point (``mlzoo-train``) and ``python train.py``."""
    for arg in sys.argv[1:]:
        if arg.startswith("="):  # Hydra's parser fails on this with a traceback
            print(f"error: {arg!r} is not an override: write key=value", file=sys.stderr)
            sys.exit(1)
    _hydra_main()


if __name__ == "__main__":
    main()
