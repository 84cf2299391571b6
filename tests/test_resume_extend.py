"""Extending a run: `python train.py ckpt_path=last trainer.max_epochs=N` continues a finished or
stopped run to N epochs in its own folder. A cosine schedule whose length follows
trainer.max_epochs is re-planned over N without a jump (mlzoo.base.module.replan_cosine); a
change a resume cannot honour is refused in one line naming what the user typed."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf, open_dict
from test_cli import cli, fingerprint

from mlzoo.base.errors import ZooError
from mlzoo.base.module import replan_cosine
from mlzoo.run.resume import changed_settings

from conftest import compose_config, run_training

BASE = 1e-3  # configs/optimizer/adamw.yaml's lr


def _cosine(
    T_max: int, steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([weight], lr=BASE)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=T_max)
    for _ in range(steps):
        optimizer.step()
        scheduler.step()
    return optimizer, scheduler


def _lrs(optimizer, scheduler, steps: int) -> list[float]:
    out = []
    for _ in range(steps):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def _replanned(last_lr: float, t0: int, T_max: int) -> list[float]:
    """The stated rule: the cosine over T_max, scaled to pass through the LR of step t0 - 1."""
    scale = last_lr / (1 + math.cos(math.pi * (t0 - 1) / T_max))
    return [scale * (1 + math.cos(math.pi * t / T_max)) for t in range(t0, T_max)]


@pytest.mark.parametrize(
    ("old", "trained", "new"),
    [(2, 2, 4), (2, 2, 30), (4, 2, 8), (10, 3, 5)],  # finished; finished; stopped; shortened
)
def test_a_replanned_cosine_falls_from_the_last_trained_lr_to_eta_min(
    old: int, trained: int, new: int
) -> None:
    optimizer, scheduler = _cosine(old, trained - 1)
    last = optimizer.param_groups[0]["lr"]  # the LR the last trained epoch ran at
    optimizer.step()
    scheduler.step()
    replan_cosine(scheduler, new)
    lrs = _lrs(optimizer, scheduler, new - trained)
    assert lrs == pytest.approx(_replanned(last, trained, new), rel=1e-9, abs=1e-15)
    assert all(b <= a for a, b in zip([last, *lrs], lrs, strict=False)), "the LR went up"
    assert lrs[0] > 0  # a finished cosine (its LR at eta_min) still trains on
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-15)  # eta_min at the end
    assert scheduler.T_max == new
    # The re-planned state is a plain cosine (torch's closed form gives the same LRs), so
    # extending it again re-plans from it the same way.
    replan_cosine(scheduler, new + 4)
    assert all(lr > 0 for lr in _lrs(optimizer, scheduler, 4))


def test_replan_keeps_a_schedule_of_the_same_length_and_one_not_started() -> None:
    optimizer, scheduler = _cosine(4, 2)
    state = scheduler.state_dict()
    replan_cosine(scheduler, 4)
    assert scheduler.state_dict() == state
    optimizer, scheduler = _cosine(4, 0)
    replan_cosine(scheduler, 8)
    assert scheduler.T_max == 8 and optimizer.param_groups[0]["lr"] == BASE
    assert _lrs(optimizer, scheduler, 8) == pytest.approx(_closed(8))


def _closed(T_max: int) -> list[float]:
    return [BASE * (1 + math.cos(math.pi * t / T_max)) / 2 for t in range(T_max)]


# --- what a resume applies and what it refuses (configs only; a stand-in checkpoint) --------------
def _run(tmp_path: Path, overrides: list[str], epochs: int, steps: int) -> Path:
    """A run folder as a finished run leaves it: its resolved config.yaml, and a last.ckpt that
    says how many epochs it trained and how many steps its schedule took."""
    cfg = compose_config(overrides, tmp_path / "logs")
    run_dir = Path(cfg.paths.output_dir)
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    progress = {"fit_loop": {"epoch_progress": {"current": {"processed": epochs}}}}
    torch.save(
        {"loops": progress, "lr_schedulers": [{"last_epoch": steps}]},
        run_dir / "checkpoints" / "last.ckpt",
    )
    return run_dir


def _resume(tmp_path: Path, run_dir: Path, overrides: list[str]) -> list[str]:
    cfg = compose_config([*overrides, "ckpt_path=last"], tmp_path / "logs")
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)  # as train() continues in the run's folder
    return changed_settings(cfg, run_dir)


def test_a_longer_max_epochs_replans_the_cosine_and_says_so(tmp_path: Path) -> None:
    run_dir = _run(tmp_path, ["trainer.max_epochs=2"], epochs=2, steps=2)
    lines = _resume(tmp_path, run_dir, ["trainer.max_epochs=30"])
    assert lines[0] == "trainer.max_epochs: 2 -> 30"
    assert lines[1].startswith("model.scheduler.T_max: 2 -> 30 (CosineAnnealingLR, follows ")
    assert "trainer.max_epochs" in lines[1] and "eta_min at 30" in lines[1]
    # the same length as the run's (a stopped run resumed as it was): nothing to say
    assert _resume(tmp_path, run_dir, ["trainer.max_epochs=2"]) == []
    # a T_max typed by hand is re-planned the same way
    lines = _resume(tmp_path, run_dir, ["trainer.max_epochs=2", "model.scheduler.T_max=6"])
    assert lines == [lines[0]] and lines[0].startswith("model.scheduler.T_max: 2 -> 6 (")


@pytest.mark.parametrize(
    ("scheduler", "line"),
    [(["scheduler=step"], None), (["scheduler=none"], None)],
)
def test_extending_a_step_or_constant_schedule_applies(
    tmp_path: Path, scheduler: list[str], line: None
) -> None:
    run_dir = _run(tmp_path, [*scheduler, "trainer.max_epochs=2"], epochs=2, steps=2)
    assert _resume(tmp_path, run_dir, [*scheduler, "trainer.max_epochs=5"]) == [
        "trainer.max_epochs: 2 -> 5"
    ]


def test_fewer_epochs_than_trained_is_one_line(tmp_path: Path) -> None:
    run_dir = _run(tmp_path, ["trainer.max_epochs=4"], epochs=3, steps=3)
    with pytest.raises(ZooError) as err:
        _resume(tmp_path, run_dir, ["trainer.max_epochs=2"])
    message = str(err.value)
    assert "\n" not in message
    assert "trainer.max_epochs=2" in message and "already trained 3 epochs" in message
    assert "trainer.max_epochs=3 or more" in message and "T_max" not in message
    assert _resume(tmp_path, run_dir, ["trainer.max_epochs=3"])  # as many as trained: applies


# A schedule whose length follows trainer.max_epochs but cannot be re-planned, and one planned
# for a fixed number of steps: refused, naming trainer.max_epochs (what the user typed).
LINEAR = [
    "model.scheduler._target_=torch.optim.lr_scheduler.LinearLR",
    "~model.scheduler.T_max",
    "+model.scheduler.total_iters=${trainer.max_epochs}",
]
ONECYCLE = [
    "model.scheduler._target_=torch.optim.lr_scheduler.OneCycleLR",
    "~model.scheduler.T_max",
    "+model.scheduler.max_lr=0.01",
    "+model.scheduler.total_steps=100",
]


@pytest.mark.parametrize(
    ("scheduler", "says"),
    [
        (LINEAR, "total_iters cannot be re-planned"),
        (ONECYCLE, "OneCycleLR schedule was planned for a fixed number"),
    ],
)
def test_a_schedule_that_cannot_be_extended_names_max_epochs(
    tmp_path: Path, scheduler: list[str], says: str
) -> None:
    run_dir = _run(tmp_path, [*scheduler, "trainer.max_epochs=2"], epochs=2, steps=2)
    with pytest.raises(ZooError) as err:
        _resume(tmp_path, run_dir, [*scheduler, "trainer.max_epochs=4"])
    message = str(err.value)
    assert "\n" not in message and says in message, message
    assert "trainer.max_epochs was 2" in message and "Resume with trainer.max_epochs=2" in message
    assert "train a new run with trainer.max_epochs=4" in message


def test_other_restored_changes_are_still_refused_naming_their_key(tmp_path: Path) -> None:
    run_dir = _run(tmp_path, ["trainer.max_epochs=2"], epochs=2, steps=2)
    for typed, named in [
        (["model.optimizer.lr=0.5"], "Resume with model.optimizer.lr=0.001"),
        (["seed=7"], "Resume with seed=42"),
        (["scheduler=step"], "model.scheduler._target_ was torch.optim.lr_scheduler.Cosine"),
    ]:
        with pytest.raises(ZooError, match="change would be ignored") as err:
            _resume(tmp_path, run_dir, ["trainer.max_epochs=2", *typed])
        assert named in str(err.value), str(err.value)


# --- end to end ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_finished_run_trains_on_to_more_epochs(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    common = ["trainer=debug", "trainer.max_steps=-1", "test=false"]  # 3 batches an epoch
    first = run_training([*common, "trainer.max_epochs=2"], tmp_path / "logs")
    assert first["epochs"] == 2 and first["global_step"] == 6
    run_dir = Path(first["run_dir"])

    # Refused in one line, exit 1, the run folder byte for byte as it was: fewer epochs than
    # trained, and a change that does not fit the weights (naming the setting typed).
    before = fingerprint(run_dir)
    for args, says in [
        (["trainer.max_epochs=1"], "trainer.max_epochs=1, but "),
        (["trainer.max_epochs=4", "model.net.hidden_sizes=[32]"], "model.net.hidden_sizes=[32]"),
    ]:
        out = cli(*common, *args, "ckpt_path=last", cwd=tmp_path)
        errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
        assert out.returncode == 1 and len(errors) == 1 and says in errors[0], out.stderr[-2000:]
        assert "T_max" not in errors[0] and "Traceback" not in out.stderr
        assert fingerprint(run_dir) == before

    resumed = run_training([*common, "trainer.max_epochs=4", "ckpt_path=last"], tmp_path / "logs")
    assert resumed["run_dir"] == first["run_dir"] and resumed["resumed_from"].endswith("last.ckpt")
    assert resumed["epochs"] == 4 and resumed["global_step"] == 12
    assert len(list((tmp_path / "logs" / "runs").glob("*/*"))) == 1

    # The LR each epoch trained at: 1e-3, 5e-4 (the 2-epoch cosine), then the 4-epoch cosine
    # scaled through 5e-4: 2.93e-4, 8.58e-5, and eta_min (0) after the last epoch.
    mux = EventMultiplexer().AddRunsFromDirectory(str(run_dir)).Reload()
    [run] = mux.Runs()
    lrs = [e.value for e in mux.Scalars(run, "train/lr")]
    assert [e.step for e in mux.Scalars(run, "train/lr")] == [2, 5, 8, 11]
    assert lrs == pytest.approx([BASE, BASE / 2, *_replanned(BASE / 2, 2, 4)], rel=1e-6)
    last = torch.load(resumed["last_checkpoint"], weights_only=True)
    assert last["optimizer_states"][0]["param_groups"][0]["lr"] == 0.0
    assert last["lr_schedulers"][0]["T_max"] == 4 and last["lr_schedulers"][0]["last_epoch"] == 4
