"""Building a run's parts from a checked config: the one place configs become objects.

Both the entry point (mlzoo.run.train) and checkpoint loading (mlzoo.run.checkpoint) build through
here, so every object a config names has passed mlzoo.run.targets' check first.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import netrc
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import hydra
from lightning.pytorch.callbacks import Callback, ModelSummary, ProgressBar
from omegaconf import DictConfig

from mlzoo.base.errors import ZooError, one_line
from mlzoo.run.targets import allowed_by_user

log = logging.getLogger("mlzoo")
NEWEST = "newest:"


def to_train_log(message: str | logging.LogRecord) -> None:
    """A message for the run's train.log only, not the console: written to the file handlers
    of the root logger (Hydra's job logging; none outside a Hydra run: then it goes nowhere)."""
    record = message
    if not isinstance(record, logging.LogRecord):
        record = log.makeRecord(log.name, logging.INFO, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler) and record.levelno >= handler.level:
            handler.handle(record)


class TrainLogSummary(Callback):
    """Lightning's model summary (layers, parameters, modules in train and eval mode) written to
    train.log, not to the console: there its table (with "Total FLOPs: 0": FLOPs are counted
    only for a model with an example_input_array) pushed what a run says out of sight."""

    def __init__(self, max_depth: int = 1) -> None:
        self.max_depth = max_depth

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        from lightning.pytorch.utilities.model_summary import summarize

        if trainer.is_global_zero:
            to_train_log(f"Model summary:\n{summarize(pl_module, max_depth=self.max_depth)}")


# Lightning's lines that say again what the zoo says itself, kept for train.log: the checkpoint a
# test or resume restores (the summary's "best checkpoint:", "Resuming ... in ..."), and where no
# GPU is, that none is used.
TRAIN_LOG_ONLY = (
    "Restoring states from the checkpoint path at ",
    "Restored all states from the checkpoint at ",
    "Loaded model weights from the checkpoint at ",
    "GPU available: False, used: False",
)
LIGHTNING_INFO_LOGGERS = (  # rank_zero_info logs to one of the first two
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "lightning.pytorch.trainer.connectors.checkpoint_connector",
)


class _TrainLogOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not record.getMessage().startswith(TRAIN_LOG_ONLY):
            return True
        to_train_log(record)
        return False


def quiet_console() -> None:
    """Lightning's repeated lines (TRAIN_LOG_ONLY) go to train.log only; once per process."""
    for name in LIGHTNING_INFO_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _TrainLogOnly) for f in logger.filters):
            logger.addFilter(_TrainLogOnly())


def instantiate_model(
    model_cfg: DictConfig,
    datamodule: Any,
    trust: bool = False,
    allow_targets: tuple[str, ...] = (),
    load: Callable[..., Any] | None = None,
) -> Any:
    """Instantiate the model, filling what the data decides (input shape, task, classes, ...)
    and the networks its config names by where they are (mlzoo.run.parts: an earlier run's
    checkpoint, a Hugging Face model, ...; ``trust`` and ``allow_targets`` apply to checkpoints,
    which ``load``, mlzoo.run.load.load_checkpoint, loads)."""
    from mlzoo.run.parts import resolve_parts

    target = hydra.utils.get_class(model_cfg._target_)
    accepted = inspect.signature(target.__init__).parameters
    spec = getattr(datamodule, "spec", {})
    model_cfg, parts = resolve_parts(target, model_cfg, spec, trust, allow_targets, load)
    from_data = {
        k: v for k, v in spec.items() if k in accepted and k not in model_cfg and k not in parts
    }
    return hydra.utils.instantiate(model_cfg, _convert_="all", **from_data, **parts)


def instantiate_all(group: DictConfig | None, name: str) -> list[Any]:
    """Every entry of a config group (callbacks, loggers), skipping the ones set to null. An
    entry that cannot be built is one line naming its key (``logger.mlflow``), what it is and
    why: a tracking_uri the MLflow client refuses, a package that is not installed, ... ``name``:
    the group's key in the run's config."""
    built = []
    for key, entry in (group or {}).items():
        if entry is None:
            continue
        try:
            built.append(hydra.utils.instantiate(entry))
        except ZooError:
            raise
        except Exception as err:
            raise ZooError(_not_built(f"{name}.{key}", entry, err)) from None
    return built


def _not_built(setting: str, entry: Any, err: BaseException) -> str:
    """``logger.mlflow (MLFlowLogger) could not be built at tracking_uri=...: <why>``."""
    while err.__cause__ is not None:  # Hydra's InstantiationException wraps the error itself
        err = err.__cause__
    fields = entry if isinstance(entry, dict | DictConfig) else {}
    kind = str(fields.get("_target_") or "?").rsplit(".", 1)[-1]
    if isinstance(err, ImportError):
        extra = ": pip install 'mlzoo[loggers]'" if setting.startswith("logger") else ""
        return f"{setting} ({kind}) needs {err.name or 'a package not installed'}{extra}"
    uri = fields.get("tracking_uri")
    at = f" at tracking_uri={uri}" if uri else ""
    why = f"{type(err).__name__}: {one_line(err)}"
    return f"{setting} ({kind}) could not be built{at}: {why}"


# MLflow's HTTP client retries an unreachable server with growing pauses (minutes, by default);
# the first contact, below, waits this long at most (unless the user set these variables)
FIRST_CONTACT_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
CONNECT_TIMEOUT_S = 5.0
WANDB_ONLINE_MODES = ("online", "run", "shared")
LOCAL_LOGGERS = ("TensorBoardLogger", "CSVLogger")


@contextlib.contextmanager
def _first_contact_env() -> Iterator[None]:
    unset = [k for k in FIRST_CONTACT_ENV if k not in os.environ]
    os.environ.update({k: FIRST_CONTACT_ENV[k] for k in unset})
    try:
        yield
    finally:
        for k in unset:
            os.environ.pop(k, None)


def check_server(setting: str, uri: str) -> None:
    """An http(s) tracking server must answer a connection, at once: else one line naming the
    setting (a client library would retry for minutes, then end in a traceback)."""
    url = urlparse(uri)
    if url.scheme not in ("http", "https") or not url.hostname:
        return
    try:
        port = url.port or (443 if url.scheme == "https" else 80)
        with socket.create_connection((url.hostname, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except (OSError, ValueError) as err:
        cause = (
            f"no answer in {CONNECT_TIMEOUT_S:g} s"
            if isinstance(err, TimeoutError)
            else "unknown host"
            if isinstance(err, socket.gaierror)
            else one_line(getattr(err, "strerror", None) or err)
        )
        raise ZooError(
            f"{setting}={uri}: nothing answers there ({cause.lower()}); start the server, or "
            "leave the setting at its default (a local SQLite store)"
        ) from None


def has_wandb_login() -> bool:
    """Whether W&B will find credentials without asking: WANDB_API_KEY, an identity token file,
    or a netrc login for its host (what `wandb login` writes)."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname
    path = os.environ.get("NETRC") or os.path.expanduser("~/.netrc")
    try:
        return netrc.netrc(path).authenticators(host or "") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def start_loggers(group: DictConfig | None, loggers: list[Any]) -> None:
    """Each logger's first contact (its ``experiment``) now, while a failure can still be one
    line naming the logger and the run folder be undone, instead of a traceback inside fit: an
    MLflow server where nothing answers, W&B online without a login (refused before W&B could
    prompt for a key), a store that cannot be opened."""
    names = [k for k, c in (group or {}).items() if c is not None]
    started: list[Any] = []
    try:
        for key, lg in zip(names, loggers, strict=True):
            cfg, setting = group[key], f"logger.{key}"
            kind = type(lg).__name__
            if kind in LOCAL_LOGGERS:
                continue  # files in the run folder, opened in fit (a refused resume writes none)
            if kind == "MLFlowLogger" and cfg.get("tracking_uri"):
                check_server(f"{setting}.tracking_uri", str(cfg.tracking_uri))
            if kind == "WandbLogger" and not cfg.get("offline"):
                mode = cfg.get("mode") or os.environ.get("WANDB_MODE") or "online"
                if mode in WANDB_ONLINE_MODES and not has_wandb_login():
                    raise ZooError(
                        f"{setting}.mode={mode}: no W&B login (set WANDB_API_KEY or run "
                        f"`wandb login`), or log offline: {setting}.mode=offline"
                    )
            try:
                with _first_contact_env():
                    _ = lg.experiment
            except ImportError as err:
                raise ZooError(
                    f"{setting} needs {err.name or 'its package'}: pip install 'mlzoo[loggers]'"
                ) from None
            except Exception as err:
                uri = cfg.get("tracking_uri")
                at = f" at tracking_uri={uri}" if kind == "MLFlowLogger" and uri else ""
                raise ZooError(f"{setting} ({kind}) could not start{at}: {one_line(err)}") from None
            started.append(lg)
    except ZooError:
        for lg in started:  # a W&B run already begun ends (its files go with the run folder)
            if type(lg).__name__ == "WandbLogger":
                with contextlib.suppress(Exception):
                    lg.experiment.finish()
        raise


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


def resolve_newest(cfg: DictConfig) -> None:
    """Every ``newest:<run name>`` setting under ``model`` (DPO's sft_checkpoint, a transfer
    backbone's checkpoint) replaced, in place, by the checkpoint file it names today under
    paths.log_dir: the run's config.yaml then records that file, and reloading the run never
    picks up a newer one. Concepts get files only."""

    def walk(node: DictConfig, where: str) -> None:
        for key in list(node.keys()):
            value = node.get(key)
            if isinstance(value, DictConfig):
                walk(value, f"{where}.{key}")
            elif isinstance(value, str) and value.startswith(NEWEST):
                found = resolve_checkpoint(value, cfg.paths.log_dir, f"{where}.{key}")
                node[key] = str(found.resolve())

    if isinstance(cfg.get("model"), DictConfig):
        walk(cfg.model, "model")


def build_run(cfg: DictConfig, load: Callable[..., Any]) -> tuple:
    """(data module, model, loggers, Trainer) of a checked config, seeded; ``newest:<run>``
    settings resolved (in cfg, so the run's config.yaml records the file)."""
    import lightning as L

    quiet_console()
    if cfg.get("torch_threads") is not None:
        import torch

        torch.set_num_threads(int(cfg.torch_threads))
    if cfg.get("seed") is not None:  # `if cfg.seed:` would skip seed=0
        L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    if int(cfg.trainer.get("accumulate_grad_batches") or 1) != 1:
        raise ZooError(
            "trainer.accumulate_grad_batches: the zoo's concepts write their own optimizer "
            "steps (one per batch), which Lightning cannot accumulate; raise data.batch_size "
            "instead (or lower the learning rate to match a smaller batch)"
        )
    resolve_newest(cfg)
    with allowed_by_user(cfg.get("allow_targets") or ()):  # a backbone checkpoint, say
        datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
        model = instantiate_model(cfg.model, datamodule, load=load)
    callbacks = instantiate_all(cfg.get("callbacks"), "callbacks")
    loggers = instantiate_all(cfg.get("logger"), "logger")
    start_loggers(cfg.get("logger"), loggers)
    overrides: dict[str, Any] = {}  # Trainer arguments the config's values turn into
    if cfg.trainer.get("gradient_clip_val"):
        # one clipping setting per concept: a concept with its own (ZooModule.own_clip_setting)
        # takes no other; for the rest Lightning would clip only under automatic optimization
        # (and refuses the setting otherwise), so the concept clips in ZooModule.clip_manual
        if model.own_clip_setting:
            raise ZooError(
                f"trainer.gradient_clip_val: {type(model).__name__} clips its gradients with "
                f"{model.own_clip_setting}; set that instead (null: no clipping)"
            )
        model.manual_clip_val = float(cfg.trainer.gradient_clip_val)
        model.manual_clip_algorithm = cfg.trainer.get("gradient_clip_algorithm") or "norm"
        overrides.update(gradient_clip_val=None, gradient_clip_algorithm=None)
    if cfg.trainer.get("enable_model_summary", True) and not any(
        isinstance(c, ModelSummary) for c in callbacks
    ):  # the summary goes to train.log (a ModelSummary callback of the user's: to the console)
        callbacks.append(TrainLogSummary())
        overrides["enable_model_summary"] = False
    if "enable_progress_bar" not in cfg.trainer and not any(
        isinstance(c, ProgressBar) for c in callbacks
    ):
        # ~callbacks.progress_bar means no bar: Lightning would otherwise add its own, which
        # redraws every batch
        overrides["enable_progress_bar"] = False
    trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, **overrides
    )
    if cfg.get("compile"):
        # the networks, not the LightningModule (metrics and logging stay eager); in place,
        # so state_dict keys and checkpoints are the same as without compiling
        for child in model.children():
            if any(True for _ in child.parameters()):
                child.compile()
    return datamodule, model, loggers, trainer
