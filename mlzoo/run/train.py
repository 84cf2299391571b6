"""The one place that wires a run: compose -> seed -> instantiate -> fit -> test -> summary.json.

    python train.py model=mlp data=digits trainer=cpu seed=0

Hydra composes ``configs/train.yaml`` with the command line; this module instantiates the data
module, the model (sized by the data: input shape, task, classes), callbacks, loggers and
Lightning's Trainer, fits, tests the best checkpoint and writes ``summary.json`` in the run folder.
A mistake a user can fix (bad override, missing data, unreadable checkpoint) ends with one line on
stderr and exit code 1, and the run folder this invocation created is removed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
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

from mlzoo.base.errors import ZooError, describe, error_line, fault
from mlzoo.run import guard
from mlzoo.run.files import check_can_create, run_artifacts, write_text_atomically
from mlzoo.run.resume import (
    changed_settings,
    check_fits,
    is_rank_zero_process,
    lock_run,
    resolve_resume,
    resume_record,
)
from mlzoo.run.sweep import register_resolvers
from mlzoo.run.targets import check_config
from mlzoo.run.typecheck import check_before_imports, check_types, check_values

log = logging.getLogger("mlzoo")


def _config_dir() -> str:
    """configs/ inside the installed package (a wheel), else the repository's configs/."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "configs", here.parent.parent / "configs"):
        if (candidate / "train.yaml").is_file():
            return str(candidate)
    raise RuntimeError(f"mlzoo: no configs/train.yaml next to {here}")


CONFIG_DIR = _config_dir()
register_resolvers()  # ${mlzoo_run_label:...}: sweep run folders (configs/hydra/default.yaml)


_QUIETED = False


def _quiet_known_noise() -> None:
    """Silence Lightning's tips and warnings that do not apply to the zoo's in-memory data."""
    global _QUIETED
    if _QUIETED:
        return
    _QUIETED = True
    # `import lightning` gives its logger a console handler of its own; when Hydra has set up
    # logging (a root handler), that handler would print every message twice.
    # (lightning.pytorch and lightning.fabric do the same, and stop propagating, when imported
    # before Hydra set up logging.)
    if logging.getLogger().handlers:
        for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
            lightning_logger = logging.getLogger(name)
            for handler in list(lightning_logger.handlers):
                lightning_logger.removeHandler(handler)
            lightning_logger.propagate = True
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


def _discard(
    run_dir: Path, keep: set[str] | frozenset[str] = frozenset(), root: Path | None = None
) -> None:
    """Undo a run folder this invocation created: remove every entry in it but ``keep`` (what was
    there before, e.g. a user's files under ``hydra.run.dir=.``), and the folder if then empty;
    then the folders above it, up to ``root`` (paths.log_dir), that are left empty
    (``logs/runs/<name>/`` of a first run that failed)."""
    if not run_dir.is_dir():
        return
    for entry in run_dir.iterdir():
        if entry.name not in keep:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    if any(run_dir.iterdir()):
        return
    run_dir.rmdir()
    if root is None:
        return
    root = root.resolve()
    for parent in run_dir.resolve().parents:
        if parent != root and root not in parent.parents:
            break
        try:
            parent.rmdir()  # only an empty folder goes
        except OSError:
            break


def _flat_hparams(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as flat ``a/b/c: value`` pairs of primitives (MLflow's and W&B's params)."""
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


# HPARAMS: what TensorBoard's HPARAMS tab lists for a run, besides every setting its command line
# changed (a sweep's swept keys among them). A config group's name (model, data, optimizer, ...)
# stands for the option chosen (data: the env for RL; experiment: the preset, or none), a dotted
# key for its value; a key a run's config lacks, or holds null, is left out. TensorBoard's table
# first shows five of them, those that differ between the runs, by name. The whole config:
# config.yaml and the Text tab.
HPARAMS = (
    "experiment",
    "model",
    "data",
    "optimizer",
    "model.optimizer.lr",
    "data.batch_size",
    "model.batch_size",
    "trainer.max_epochs",
    "seed",
)
HPARAMS_OF = {  # each concept's key settings (by the model option)
    "mlp": (
        "model.net.hidden_sizes",
        "model.net.activation",
        "model.net.norm",
        "model.net.dropout",
    ),
    "cnn": ("cnn_net",),
    "rnn": ("model.net.cell", "model.net.hidden_size", "model.net.num_layers"),
    "autoencoder": ("model.arch", "model.latent_dim", "model.noise_std"),
    "vae": ("model.arch", "model.latent_dim", "model.beta"),
    "simclr": ("model.temperature", "model.feature_dim"),
    "dcgan": ("model.latent_dim", "model.width"),
    "ddpm": ("model.schedule", "model.timesteps", "model.sample_steps", "model.conditional"),
    "dqn": ("model.gamma", "model.double_dqn", "model.dueling"),
    "ppo": ("model.gamma", "model.gae_lambda", "model.clip_coef", "data.num_envs"),
    "dpo": ("model.beta", "model.loss_type", "model.policy"),
    "sft": ("model.policy", "model.tokenizer"),
    "transfer": ("model.mode", "model.backbone.timm", "model.backbone.torchvision", "model.lora_r"),
}


def _task_overrides() -> list[str]:
    """The command line's overrides of this run (a sweep job's: its own), when Hydra runs."""
    if HydraConfig.initialized():
        return [str(o) for o in HydraConfig.get().overrides.task]
    return []


def _hparam_value(value: Any) -> Any:
    """A value as HPARAMS shows it: numbers and text as they are, true/false as text (torch would
    write them as 1.0/0.0), lists and mappings as their YAML-like text, null as nothing."""
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=True)
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return value
    return str(value)


def hparams_of(cfg: DictConfig, overrides: list[str] | None = None) -> dict[str, Any]:
    """The run's HPARAMS: HPARAMS, its concept's HPARAMS_OF, then every setting the overrides
    (default: Hydra's task overrides) changed, keyed as on the command line."""
    from mlzoo.run.sweep import is_setting, override_key

    choices = _choices()
    overrides = _task_overrides() if overrides is None else overrides
    model = choices.get("model") or ""
    keys = [*HPARAMS, *HPARAMS_OF.get(model, ())]
    keys += [override_key(o) for o in overrides if is_setting(o) and not o.startswith("~")]
    found: dict[str, Any] = {}
    for key in dict.fromkeys(keys):
        if key == "data":
            value = choices.get("data") or choices.get("env")
        elif key == "experiment":  # in every run: a mix of presets and plain runs tells them apart
            value = choices.get("experiment") or "none"
        elif key in choices:
            value = choices[key]
        else:
            try:
                value = OmegaConf.select(cfg, key.replace("/", "."))
            except OmegaConfBaseException:
                value = None
        value = _hparam_value(value)
        if value is not None:
            found[key] = value
    return found


def hp_tag(cfg: DictConfig) -> str:
    """The HPARAMS metric of a run: ``hp/`` and its monitored metric (hp/val/acc, hp/val/return),
    so a column holds one metric, never val/loss of one concept beside val/acc of another."""
    return f"hp/{cfg.monitor.metric}"


def _log_hparams(loggers: list[Any], cfg: DictConfig) -> None:
    """HPARAMS tab: this run's hyperparameters (hparams_of) as a session; Text tab: the resolved
    config. MLflow and W&B get every setting, flattened (their run pages search them).

    Only the session is written, not an hparams *experiment*: TensorBoard shows one experiment
    per log folder, picking any run's when several wrote one, and hides the hyperparameters and
    metrics of every other run. Without one it takes the union of all runs' hyperparameters and
    scalars, so any mix of concepts and sweeps compares (hp/<monitored metric>: _log_monitor)."""
    from lightning.pytorch.loggers import TensorBoardLogger
    from torch.utils.tensorboard.summary import hparams

    for lg in loggers:
        if isinstance(lg, TensorBoardLogger):
            writer = lg.experiment.file_writer  # SummaryWriter's own FileWriter, open until close()
            _experiment, session_start, session_end = hparams(hparams_of(cfg), {})
            writer.add_summary(session_start)
            writer.add_summary(session_end)
            # The resolved config in the Text tab (indented: Markdown shows it as code).
            config_yaml = OmegaConf.to_yaml(cfg, resolve=True)
            lg.experiment.add_text("config", "    " + config_yaml.replace("\n", "\n    "))
        elif hasattr(lg, "log_hyperparams"):
            lg.log_hyperparams(_flat_hparams(cfg))


def _log_monitor(trainer: Any, cfg: DictConfig, best: float | None) -> None:
    """hp/<monitored metric>: its best value, the run's HPARAMS metric (hp_tag)."""
    from lightning.pytorch.loggers import TensorBoardLogger

    if best is None or not math.isfinite(best):
        return
    for lg in trainer.loggers:
        if isinstance(lg, TensorBoardLogger):
            lg.experiment.add_scalar(hp_tag(cfg), best, trainer.global_step)
            lg.experiment.flush()


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


# What a constructor raises for a value it cannot take (a bad size, a missing file, ...).
_USER_MISTAKES = (ValueError, TypeError, RuntimeError, KeyError, OSError)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one training job from a composed config; return (and write) its summary.

    preflight (checks, the run folder) -> build -> fit -> test and summarize. A mistake found
    before training starts removes what this invocation created and nothing else."""
    start = time.time()
    fresh_dir = Path(cfg.paths.output_dir)
    _refuse_an_earlier_run(fresh_dir)
    # What the folder held before this run (Hydra only adds .hydra/ and train.log to a new one).
    keep = {p.name for p in fresh_dir.glob("*")} - {".hydra", "train.log"}
    try:  # the mistakes a config shows without importing torch or Lightning: answered in a second
        check_before_imports(cfg)
    except (ZooError, OmegaConfBaseException) as err:
        _discard(fresh_dir, keep, Path(cfg.paths.log_dir))
        raise ZooError(error_line(err)) from None
    import lightning  # noqa: F401  (first: importing it adds the console handlers quieted next)

    from mlzoo.run.build import build_run  # torch and Lightning: only once a run starts
    from mlzoo.run.load import load_checkpoint

    _quiet_known_noise()
    _drop_nvml_check_without_a_driver()
    with contextlib.ExitStack() as held:  # holds a resumed run's lock until the run ends
        try:
            ckpt_path, run_dir = _preflight(cfg, fresh_dir, keep, held)
            datamodule, model, loggers, trainer = build_run(cfg, load_checkpoint)
            if ckpt_path is not None:
                check_fits(ckpt_path, model, bool(cfg.get("trust_checkpoint")))
                if run_dir != fresh_dir:
                    for line in changed_settings(cfg, Path(cfg.paths.output_dir)):
                        log.info(f"Resume applies a changed setting: {line}")
        except (ZooError, InstantiationException, OmegaConfBaseException, *_USER_MISTAKES) as err:
            _discard(fresh_dir, keep, Path(cfg.paths.log_dir))
            raise ZooError(error_line(err)) from None
        held.callback(_close_loggers, loggers)
        record = None
        there = {p.name for p in run_dir.iterdir()}  # a resumed run's own files
        if trainer.is_global_zero:  # under DDP, every rank runs this function: rank zero writes
            record = run_dir / "config.yaml" if ckpt_path is None else resume_record(run_dir)
            write_text_atomically(record, OmegaConf.to_yaml(cfg, resolve=True))
            _log_hparams(loggers, cfg)
        trust = bool(cfg.get("trust_checkpoint"))
        try:
            diverged = _fit(
                trainer,
                model,
                datamodule,
                ckpt_path,
                trust,
                (fresh_dir, keep, Path(cfg.paths.log_dir)),
            )
        except _ResumeFailed:
            _close_loggers(loggers)
            if run_dir == fresh_dir:  # a new run from someone's checkpoint: nothing of it stays
                _discard(fresh_dir, keep, Path(cfg.paths.log_dir))
                raise
            for new in set(run_dir.iterdir()) - {run_dir / n for n in there}:
                if new.is_file():  # its record and event files: the resumed run stays as it was
                    new.unlink()
            raise
        summary = _summarize(cfg, trainer, model, datamodule, run_dir, ckpt_path, diverged, start)
    if diverged:
        raise diverged
    if trainer.interrupted:
        saved = [getattr(cb, "saved", None) for cb in trainer.callbacks]
        resume_from = next((p for p in saved if p is not None), run_dir / "checkpoints/last.ckpt")
        raise ZooError(
            f"run stopped (Ctrl-C or SIGTERM) at step {trainer.global_step}; saved "
            f"{resume_from}; resume with ckpt_path={resume_from}"
        )
    return summary


def _refuse_an_earlier_run(fresh_dir: Path) -> None:
    """paths.output_dir pointing at an earlier run is refused before anything is written there
    (only Hydra's own new folder, its .hydra/ and train.log, is removed)."""
    earlier = run_artifacts(fresh_dir, ignore=(".hydra", "train.log"))  # Hydra's, just written
    if not earlier or not is_rank_zero_process():  # (DDP's other ranks join rank zero's folder)
        return
    if HydraConfig.initialized():
        own = Path(HydraConfig.get().runtime.output_dir)
        if own.resolve() != fresh_dir.resolve():
            _discard(own, {p.name for p in own.glob("*")} - {".hydra", "train.log"})
    raise ZooError(
        f"paths.output_dir={fresh_dir} already holds a run ({', '.join(earlier)}); choose a "
        "new folder (to continue that run: ckpt_path=<its checkpoints/last.ckpt>)"
    )


def _close_loggers(loggers: list[Any]) -> None:
    """End what a logger keeps open after its run: W&B's run (else the next run in this process,
    a sweep's next job, would log into it and its file would stay unflushed)."""
    for lg in loggers:
        run = getattr(lg, "_experiment", None)
        if type(lg).__name__ == "WandbLogger" and run is not None:
            run.finish()


def _preflight(
    cfg: DictConfig, fresh_dir: Path, keep: set[str], held: contextlib.ExitStack
) -> tuple[str | None, Path]:
    """What can be refused before anything is built: code in the config, types and values, a
    resume that cannot be; then the run folder (the resumed run's, locked, or the new one)."""
    check_config(cfg, cfg.get("allow_targets") or ())
    check_types(cfg)
    check_values(cfg)
    _check_multirun_ddp(cfg)
    ckpt_path, run_dir = resolve_resume(cfg, fresh_dir)
    if run_dir != fresh_dir:
        if is_rank_zero_process():  # DDP's other ranks join rank zero's resume
            held.enter_context(lock_run(run_dir))
        log.info(f"Resuming {ckpt_path} in {run_dir}")
        _discard(fresh_dir, keep)
        with open_dict(cfg):
            cfg.paths.output_dir = str(run_dir)
    check_can_create(run_dir, "hydra.run.dir")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise fault(err, run_dir, "create the run folder") from None
    if is_rank_zero_process():  # a killed run's half-written checkpoints and records
        from mlzoo.run.checkpoint import remove_stale_temporaries

        for folder in (run_dir, run_dir / "checkpoints"):
            remove_stale_temporaries(folder)
    return ckpt_path, run_dir


def _fit(
    trainer: Any, model: Any, datamodule: Any, ckpt_path: str | None, trust: bool, undo: tuple
) -> Any:
    """trainer.fit; returns the NonFiniteError if training diverged. A mistake that shows only
    once fit starts, before any step, is one line and undoes the new run folder."""
    from mlzoo.callbacks.finite import NonFiniteError, first_non_finite

    fresh_dir, keep, root = undo
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=not trust)
    except SystemExit:  # Ctrl-C and SIGTERM end fit with SystemExit: write the summary first
        if not trainer.interrupted:
            raise
    except NonFiniteError as err:
        return err
    except Exception as err:
        found = first_non_finite(dict(model.named_parameters()))
        if found is not None:  # e.g. a distribution refusing NaN logits: the weights diverged
            return NonFiniteError(
                f"weight {found[0]} became {found[1]} by step {trainer.global_step} "
                f"({error_line(err)[:200]}); lower the learning rate or clip gradients"
            )
        if ckpt_path is not None and trainer.global_step <= _saved_step(ckpt_path, trust):
            # the checkpoint's training state could not be restored, or failed the first step
            message = f"ckpt_path: cannot resume from {ckpt_path}: {error_line(err)}"
            raise _ResumeFailed(str(err) if isinstance(err, ZooError) else message) from None
        if trainer.global_step > 0 or ckpt_path is not None:  # the run folder holds progress
            if isinstance(err, ZooError):
                raise  # already one line (e.g. a checkpoint that could not be written)
            if isinstance(err, OSError) and describe(err):
                raise ZooError(f"a file could not be written: {error_line(err)}") from None
            raise  # a crash in the middle of training: the traceback is what a user needs
        # A mistake that only shows once fit starts (a bad learning rate, an empty split, ...).
        _discard(fresh_dir, keep, root)
        raise ZooError(error_line(err)) from None
    if trainer.global_step == 0 and ckpt_path is None and not trainer.interrupted:
        _discard(fresh_dir, keep, root)
        raise ZooError(
            "no training step ran (is the training split smaller than one batch, or "
            "trainer.max_epochs / max_steps 0?); nothing was learned"
        )
    return None


class _ResumeFailed(ZooError):
    """A resume that stopped before its first new step: nothing of it is kept."""


def _saved_step(ckpt_path: str, trust: bool) -> int:
    from mlzoo.run.checkpoint import read_checkpoint

    try:
        return int(read_checkpoint(ckpt_path, "ckpt_path", trust).get("global_step", 0))
    except Exception:
        return 2**62  # unreadable now: no step of this resume can have counted


def _own_best(best: str, run_dir: Path) -> str:
    """The best checkpoint to test, if it is a file in this run's checkpoints/. A resumed
    checkpoint carries its ModelCheckpoint's best_model_path, which Lightning restores as it
    finds it: another run's file (a run started from someone's checkpoint), or any path a
    tampered file names (a FIFO would block the test forever). Otherwise: the weights at hand."""
    if not best:
        return ""
    path, own = Path(best), (run_dir / "checkpoints").resolve()
    if path.resolve().parent == own and path.is_file() and not path.is_symlink():
        return best
    log.warning(f"Testing the weights at hand: the best checkpoint {best} is not in {own}")
    return ""


def _summarize(
    cfg: DictConfig,
    trainer: Any,
    model: Any,
    datamodule: Any,
    run_dir: Path,
    ckpt_path: str | None,
    diverged: Any,
    start: float,
) -> dict[str, Any]:
    """Test the best checkpoint (a completed run), then write and print summary.json."""
    ckpt_cb = trainer.checkpoint_callback
    best = _own_best(getattr(ckpt_cb, "best_model_path", "") or "", run_dir)
    last = run_dir / "checkpoints" / "last.ckpt"
    metrics: dict[str, float] = {}
    status = "diverged" if diverged else "interrupted" if trainer.interrupted else "completed"
    tested = None
    if cfg.get("test", True) and status == "completed":
        tested = "best checkpoint" if best else "final weights"
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
        "no_best_because": None if best else _why_no_best(cfg, trainer, status),
        "last_checkpoint": str(last.resolve()) if last.is_file() else None,
        "tested": tested,
        "global_step": int(trainer.global_step),
        "epochs": int(trainer.current_epoch),
        "duration_s": round(time.time() - start, 3),
        "run_dir": str(run_dir.resolve()),
        "resumed_from": ckpt_path,
        "status": status,
    }
    if trainer.is_global_zero:
        _log_monitor(trainer, cfg, summary["monitor"]["best"])
        write_text_atomically(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
        _print_summary(summary)
    return summary


def _why_no_best(cfg: DictConfig, trainer: Any, status: str) -> str:
    """Why a run has no best checkpoint, in words a user can act on."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    metric = cfg.monitor.metric
    watching = [
        cb
        for cb in trainer.callbacks
        if isinstance(cb, ModelCheckpoint) and cb.monitor == metric and cb.save_top_k != 0
    ]
    if not watching:
        return f"no checkpoint callback keeps the best {metric} (callbacks.model_checkpoint)"
    if metric not in trainer.callback_metrics:
        every = int(cfg.trainer.get("check_val_every_n_epoch") or 1)
        epochs = int(trainer.current_epoch) + (0 if status == "completed" else 1)
        if every > 1 and epochs < every:
            return (
                f"{metric} was never logged: validation runs every {every} epochs "
                f"(trainer.check_val_every_n_epoch) and this run trained {epochs} epoch(s)"
            )
        return f"{metric} was never logged (no validation ran, or it does not log {metric})"
    if status != "completed":
        return f"the run {status} before a best {metric} was saved"
    return f"the best {metric} was not saved in this run's checkpoints/ (see the warning above)"


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
    monitor = summary["monitor"]
    if summary["best_checkpoint"]:
        score = f"{monitor['best']:.4f}" if monitor["best"] is not None else "?"
        tested = ", tested" if summary["tested"] else ""
        console.print(
            f"best checkpoint: {summary['best_checkpoint']}  ({monitor['metric']} {score}{tested})"
        )
    else:
        console.print(f"best checkpoint: none: {summary['no_best_because']}")
        if summary["tested"]:
            console.print("tested:          the final weights (as in last checkpoint)")
    console.print(f"last checkpoint: {summary['last_checkpoint'] or 'none saved'}")
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
        numbers = re.findall(r"(?<![\w./-])\d{31,}(?![\w./-])", arg.split("=", 1)[-1])
        digits = max((len(n) for n in numbers), default=0)
        if digits:  # beyond any setting (and past 4,300 digits Python will not parse it)
            key = arg.split("=", 1)[0]
            print(f"error: {key}: a {digits}-digit number is out of range", file=sys.stderr)
            sys.exit(1)
    sys.argv[1:] = [_quoted_path(arg) for arg in sys.argv[1:]]
    guard.install()  # every config Hydra composes is checked before Hydra acts on it
    _hydra_main()


def _quoted_path(arg: str) -> str:
    """``ckpt_path=logs/runs/mlp-digits/<time>_optimizer=sgd,lr=0.1/checkpoints/last.ckpt``, as
    the console prints it, quoted for Hydra: run folders carry ``key=value`` labels, and Hydra's
    override grammar reads an unquoted ``=`` or ``,`` in a value as its own syntax. Only a value
    with a ``/`` and an ``=`` (a path: no setting's value has both) that is not quoted already."""
    key, sep, value = arg.partition("=")
    if not sep or "/" not in value or "=" not in value or value[:1] in ("'", '"', "[", "{"):
        return arg
    if "'" in value or "${" in value:
        return arg  # left to Hydra's own message
    return f"{key}='{value}'"


if __name__ == "__main__":
    main()
