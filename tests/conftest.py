"""Shared fixtures: compose the real config tree in-process and run it in a temporary folder."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from mlzoo.run.train import CONFIG_DIR, train

ROOT = Path(__file__).resolve().parents[1]
# Quiet, fast runs for tests: no progress bar unless a test asks for one.
QUIET = ["~callbacks.progress_bar", "trainer.enable_model_summary=false"]
# Extra overrides for every run, e.g. the CUDA path on a GPU machine:
#   MLZOO_TEST_OVERRIDES="trainer.accelerator=gpu trainer.precision=bf16-mixed" pytest -k few_steps
EXTRA = os.environ.get("MLZOO_TEST_OVERRIDES", "").split()

# Under pytest-xdist (`make test` runs one worker per core), each worker and every process it
# starts uses one thread: two workers with two threads each on two cores run several times
# slower than one worker, not faster (measured on the 2-core CI machine).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Slow tests first, so the longest ones do not start last and leave one worker idle."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def compose_config(overrides: list[str], log_dir: Path) -> DictConfig:
    """Compose configs/train.yaml as `python train.py <overrides>` would, runs under log_dir."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    run_dir = log_dir / "runs" / str(cfg.name) / f"run{len(list(log_dir.glob('runs/*/*')))}"
    with open_dict(cfg):
        cfg.paths.log_dir = str(log_dir)
        cfg.paths.data_dir = str(log_dir.parent / "data")  # e.g. the FID classifier cache
        cfg.paths.output_dir = str(run_dir)
        del cfg["hydra"]
    return cfg


def run_training(overrides: list[str], log_dir: Path) -> dict[str, Any]:
    """Train in-process; return summary.json as written to the run folder."""
    summary = train(compose_config([*QUIET, *overrides, *EXTRA], log_dir))
    written = json.loads((Path(summary["run_dir"]) / "summary.json").read_text())
    assert written == json.loads(json.dumps(summary))
    return written


@pytest.fixture
def run(tmp_path: Path):
    """`run([...overrides])` trains in-process under tmp_path/logs and returns the summary."""
    return lambda overrides, log_dir=tmp_path / "logs": run_training(overrides, log_dir)


def load_script(name: str):
    """A module from scripts/ (e.g. evaluate, compare_runs), imported for in-process tests."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
