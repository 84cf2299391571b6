"""Every option of every config group composes, and the command line fails loudly on mistakes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import hydra
import pytest
from omegaconf import OmegaConf

from mlzoo.run.train import CONFIG_DIR

from conftest import ROOT, compose_config

CONFIGS = Path(CONFIG_DIR)
SELECTABLE = [
    "data",
    "model",
    "optimizer",
    "scheduler",
    "trainer",
    "logger",
    "callbacks",
    "experiment",
    "hparams_search",
]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


@pytest.mark.parametrize(
    "override", [f"{g}={o}" for g in SELECTABLE for o in options(g)], ids=lambda s: s
)
def test_every_option_composes_and_resolves(override: str, tmp_path: Path) -> None:
    cfg = compose_config([override], tmp_path)
    OmegaConf.resolve(cfg)  # every interpolation resolves
    assert cfg.model._target_ and cfg.data._target_ and cfg.trainer._target_
    for section in ("model", "data", "trainer"):
        hydra.utils.get_class(cfg[section]._target_)  # each target imports
    for node in [*cfg.callbacks.values(), *cfg.logger.values()]:
        if node is not None:
            hydra.utils.get_class(node._target_)


def test_config_groups_exist() -> None:
    for group in [*SELECTABLE, "paths", "hydra", "tuned"]:
        assert options(group), f"configs/{group}/ is empty"
    assert set(options("trainer")) >= {"default", "cpu", "gpu", "ddp", "debug"}
    assert set(options("logger")) >= {"tensorboard", "csv", "none"}


def test_model_config_picks_its_data_and_command_line_wins(tmp_path: Path) -> None:
    assert compose_config(["model=mlp"], tmp_path).data._target_.endswith("DigitsDataModule")
    cfg = compose_config(["model=mlp", "data=diabetes"], tmp_path)
    assert cfg.data._target_.endswith("DiabetesDataModule")
    assert cfg.name == "mlp-diabetes"


def test_optimizer_and_scheduler_groups_land_in_the_model(tmp_path: Path) -> None:
    cfg = compose_config(["optimizer=nesterov", "scheduler=step"], tmp_path)
    assert cfg.model.optimizer._target_ == "torch.optim.SGD" and cfg.model.optimizer.nesterov
    assert cfg.model.scheduler._target_.endswith("StepLR")
    assert compose_config(["scheduler=none"], tmp_path).model.scheduler is None


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_help_lists_the_config_groups(tmp_path: Path) -> None:
    out = cli("--help", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    for group in ("model:", "data:", "trainer:", "logger:", "optimizer:", "callbacks:"):
        assert group in out.stdout
    assert "ddp" in out.stdout and "tensorboard" in out.stdout


@pytest.mark.parametrize(
    "override, message",
    [
        ("model=nosuchmodel", "Could not find 'model/nosuchmodel'"),
        ("trainer=gpus", "Could not find 'trainer/gpus'"),
        ("model.net.hiden_sizes=[3]", "hiden_sizes"),
        ("trainer.max_epoch=3", "max_epoch"),
        ("sed=1", "sed"),
    ],
)
def test_bad_overrides_exit_nonzero_with_hydras_message(
    override: str, message: str, tmp_path: Path
) -> None:
    out = cli(override, cwd=tmp_path)
    assert out.returncode != 0
    assert message in out.stderr
    assert not (tmp_path / "logs").exists() or not any((tmp_path / "logs").rglob("*"))


@pytest.mark.parametrize(
    "override, message",
    [
        ("+model.net.hidden=3", "hidden"),  # `+` adds a key the model does not take
        ("model.net.activation=swishy", "unknown activation"),
        ("data.batch_size=0", "batch_size"),
        ("ckpt_path=/no/such/file.ckpt", "no checkpoint file"),
        ("ckpt_path=last", "no last.ckpt"),
        ("model.optimizer.lr=-1", "learning rate"),  # raised by torch once fit starts
        ("trainer.max_epochs=0", "no training step ran"),  # (a tiny split: its batch clamps)
        ("torch_threads=0", "threads"),
    ],
)
def test_bad_values_exit_nonzero_with_one_line_and_no_run_dir(
    override: str, message: str, tmp_path: Path
) -> None:
    out = cli(override, "trainer=debug", cwd=tmp_path)
    assert out.returncode == 1
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().startswith("error:") and len(out.stderr.strip().splitlines()) == 1
    assert not list((tmp_path / "logs").rglob("*.ckpt"))
    assert not list((tmp_path / "logs").glob("runs/*/*")), "the failed run left a folder behind"


@pytest.mark.parametrize("tuned", options("tuned"))
def test_tuned_configs_apply_to_their_model_and_data(tuned: str, tmp_path: Path) -> None:
    model, data = tuned.split("_", 1)
    assert model in options("model") and data in options("data"), tuned
    cfg = compose_config([f"model={model}", f"data={data}"], tmp_path)
    OmegaConf.resolve(cfg)
    tuned_cfg = OmegaConf.to_container(OmegaConf.load(CONFIGS / "tuned" / f"{tuned}.yaml"))

    def leaves(node: dict, prefix: str = "") -> list[tuple[str, object]]:
        out = []
        for k, v in node.items():
            key = f"{prefix}.{k}" if prefix else k
            out += leaves(v, key) if isinstance(v, dict) else [(key, v)]
        return out

    assert leaves(tuned_cfg), f"{tuned}.yaml sets nothing"
    for key, expected in leaves(tuned_cfg):  # every value of the tuned file lands in the config
        assert (
            OmegaConf.to_container(cfg, resolve=True) and OmegaConf.select(cfg, key) == expected
        ), key


@pytest.mark.parametrize("option", options("cnn_net"))
def test_cnn_net_options_compose_with_the_cnn(option: str, tmp_path: Path) -> None:
    cfg = compose_config(["model=cnn", f"cnn_net={option}"], tmp_path)
    assert hydra.utils.get_method(cfg.model.net._target_)
