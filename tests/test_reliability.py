"""Reliability, for every concept: exact resume, signals, NaN guard, gradient clipping, safe
checkpoint loading and the `_target_` allowlist. (Bad command lines: test_bad_input.py.)

Runs are tiny (3 batches an epoch) and in-process; test-only callbacks come from
tests/stop_probe.py, which the runs allow explicitly (allow_targets=[stop_probe]).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import signal
from pathlib import Path

import pytest
import torch

from mlzoo.base.errors import ZooError
from mlzoo.callbacks.finite import NonFiniteError
from mlzoo.run.checkpoint import AtomicCheckpointIO, read_checkpoint
from mlzoo.run.targets import is_allowed
from mlzoo.run.train import CONFIG_DIR

from conftest import run_training

CONCEPTS = sorted(p.stem for p in (Path(CONFIG_DIR) / "model").glob("*.yaml"))
# Two tiny epochs of 3 batches; no test phase.
BASE = [
    "trainer=debug",
    "trainer.max_steps=-1",
    "trainer.max_epochs=2",
    "logger=none",
    "test=false",
]
TINY = {
    "dcgan": ["callbacks.sample_quality.num_samples=16"],
    "ddpm": [
        "callbacks.sample_quality.num_samples=16",
        "model.sample_steps=3",
        "model.num_images=8",
    ],
    # updates from the first step, epsilon-greedy exploration on (it decays over the run)
    "dqn": [
        "model.learning_starts=0",
        "model.train_frequency=16",
        "model.gradient_steps=4",
        "model.batch_size=8",
        "data.eval_episodes=2",
    ],
    "ppo": ["model.num_steps=16", "data.eval_episodes=2"],
}
PROBE = ["allow_targets=[stop_probe]"]


def upstream(concept: str, log_dir: Path) -> list[str]:
    """Transfer starts from a SimCLR checkpoint, DPO from an SFT one: train it first (once)."""
    source = {"transfer": "simclr", "dpo": "sft"}.get(concept)
    if source is None:
        return []
    found = sorted(log_dir.glob(f"runs/{source}-*/*/checkpoints/last.ckpt"))
    ckpt = found[0] if found else None
    if ckpt is None:
        ckpt = run_training([f"model={source}", "trainer=debug", "logger=none"], log_dir)
        ckpt = ckpt["last_checkpoint"]
    key = "model.backbone.checkpoint" if concept == "transfer" else "model.sft_checkpoint"
    return [f"{key}={ckpt}"]


def overrides(concept: str, tmp_path: Path) -> list[str]:
    return [f"model={concept}", *BASE, *TINY.get(concept, []), *upstream(concept, tmp_path / "up")]


def flat_tensors(node, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor in a nested dict/list (an optimizer state), by path."""
    out = {}
    if isinstance(node, torch.Tensor):
        out[prefix] = node
    elif isinstance(node, dict):
        for k, v in node.items():
            out.update(flat_tensors(v, f"{prefix}/{k}"))
    elif isinstance(node, list | tuple):
        for i, v in enumerate(node):
            out.update(flat_tensors(v, f"{prefix}/{i}"))
    return out


def all_finite(ckpt_file: str | Path) -> bool:
    state = torch.load(ckpt_file, weights_only=True)["state_dict"]
    return all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


# --- 1. exact resume ------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("concept", CONCEPTS)
def test_stop_and_resume_equals_a_straight_run(concept: str, tmp_path: Path) -> None:
    """2 epochs straight vs 1 epoch, stop, resume with ckpt_path=last: same step, weights and
    optimizer state within 1e-6 (dropout, shuffling, exploration and noise all active)."""
    args = overrides(concept, tmp_path)
    straight = run_training(args, tmp_path / "a")
    stop = ["+callbacks.stop._target_=stop_probe.StopAfterEpochs", "+callbacks.stop.epochs=1"]
    first = run_training([*args, *stop, *PROBE], tmp_path / "b")
    assert 0 < first["global_step"] < straight["global_step"]
    resumed = run_training([*args, "ckpt_path=last"], tmp_path / "b")
    assert resumed["run_dir"] == first["run_dir"] and resumed["resumed_from"].endswith("last.ckpt")
    assert resumed["global_step"] == straight["global_step"]
    a = torch.load(straight["last_checkpoint"], weights_only=True)
    b = torch.load(resumed["last_checkpoint"], weights_only=True)
    assert a["epoch"] == b["epoch"]
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for name, value in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][name], value, atol=1e-6, rtol=0, msg=name)
    opt_a, opt_b = flat_tensors(a["optimizer_states"]), flat_tensors(b["optimizer_states"])
    assert opt_a and opt_a.keys() == opt_b.keys()
    for name, value in opt_a.items():
        torch.testing.assert_close(opt_b[name], value, atol=1e-6, rtol=0, msg=name)


@pytest.mark.slow
def test_tensorboard_curves_continue_after_resume(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    common = ["trainer=debug", "trainer.max_steps=-1", "trainer.max_epochs=4", "test=false"]
    stop = ["+callbacks.stop._target_=stop_probe.StopAfterEpochs", "+callbacks.stop.epochs=2"]
    run_training([*common, *stop, *PROBE], tmp_path)
    resumed = run_training([*common, "ckpt_path=last"], tmp_path)
    mux = EventMultiplexer().AddRunsFromDirectory(resumed["run_dir"]).Reload()
    [run] = mux.Runs()  # one run: the resumed events went into the same folder
    steps = [e.step for e in mux.Scalars(run, "train/loss")]
    assert steps == sorted(set(steps)), f"repeated or backwards steps: {steps}"
    assert steps[-1] == resumed["global_step"] - 1 and len(steps) == resumed["global_step"]


# --- 2. signals: a checkpoint, one line, non-zero exit; then it resumes ---------------------------
@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("concept", CONCEPTS)
def test_signal_saves_a_checkpoint_that_resumes(concept: str, signum, tmp_path: Path) -> None:
    args = [*overrides(concept, tmp_path), "trainer.max_epochs=3"]
    kill = ["+callbacks.kill._target_=stop_probe.SignalAt", f"+callbacks.kill.signum={int(signum)}"]
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    try:
        with pytest.raises(ZooError, match="resume with ckpt_path=") as err:
            run_training([*args, *kill, "+callbacks.kill.at=4", *PROBE], tmp_path / "logs")
    finally:
        signal.signal(signal.SIGINT, previous)  # Lightning ignores SIGINT after a Ctrl-C
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    message = str(err.value)
    assert "\n" not in message
    saved = Path(message.rsplit("ckpt_path=", 1)[1])
    assert saved.name.startswith("interrupted-step") and saved.is_file(), message
    ckpt = read_checkpoint(saved)  # weights_only
    assert ckpt["global_step"] > 0 and all_finite(saved)
    [summary_file] = (tmp_path / "logs").glob("runs/*/*/summary.json")
    assert json.loads(summary_file.read_text())["status"] == "interrupted"
    resumed = run_training([*args, f"ckpt_path={saved}"], tmp_path / "logs")
    assert resumed["status"] == "completed" and resumed["global_step"] > ckpt["global_step"]


@pytest.mark.parametrize(("epochs", "at"), [(4, 3), (1, 2)], ids=["mid-run", "last-save"])
def test_a_ctrl_c_in_the_middle_of_a_checkpoint_save_stops_the_run_after_it(
    epochs: int, at: int, tmp_path: Path
) -> None:
    """mid-run: checkpoint 3 is epoch 1's new best; a Ctrl-C while it was written used to stop
    the run inside the save (CI, 2026-12-06), so the interrupted checkpoint named a best file that
    was never written and the resumed run failed to test it. Ctrl-C now stops at the next batch.
    last-save: checkpoint 2 of a one-epoch run is its last.ckpt, after the last batch: the run
    still stops (at the end of fit, before the test stage)."""
    args = ["trainer=debug", "trainer.max_steps=-1", f"trainer.max_epochs={epochs}", "logger=none"]
    ctrl_c = ["+callbacks.kill._target_=stop_probe.SignalInSave", f"+callbacks.kill.at={at}"]
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    try:
        with pytest.raises(ZooError, match="resume with ckpt_path=") as err:
            run_training([*args, *ctrl_c, *PROBE], tmp_path / "logs")
    finally:
        signal.signal(signal.SIGINT, previous)
    saved = Path(str(err.value).rsplit("ckpt_path=", 1)[1])
    state = read_checkpoint(saved)["callbacks"]
    paths = [v.get("best_model_path") or "" for v in state.values() if isinstance(v, dict)]
    [best] = [p for p in paths if Path(p).name.startswith("best-")]  # the monitored checkpoint
    assert Path(best).is_file(), (best, sorted(p.name for p in saved.parent.iterdir()))
    assert read_checkpoint(saved)["global_step"] == 3 * (1 if epochs == 1 else 2)
    resumed = run_training([*args, f"ckpt_path={saved}"], tmp_path / "logs")
    assert resumed["status"] == "completed" and "test/acc" in resumed["metrics"], resumed


# --- 3. NaN guard and gradient clipping ------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("concept", CONCEPTS)
def test_non_finite_loss_stops_the_run_and_keeps_finite_checkpoints(
    concept: str, tmp_path: Path
) -> None:
    # NaN weights before the 5th step (in the 2nd epoch: an epoch-end checkpoint exists)
    args = [*overrides(concept, tmp_path), "trainer.max_epochs=4"]
    poison = ["+callbacks.poison._target_=stop_probe.PoisonWeights", "+callbacks.poison.at=5"]
    with pytest.raises(NonFiniteError, match=r"at step \d+|by step \d+") as err:
        run_training([*args, *poison, *PROBE], tmp_path / "logs")
    assert "\n" not in str(err.value)
    [run_dir] = (tmp_path / "logs").glob("runs/*/*")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "diverged"
    checkpoints = list(run_dir.glob("checkpoints/*.ckpt"))
    assert any(p.name == "last.ckpt" for p in checkpoints)
    for ckpt in checkpoints:
        assert all_finite(ckpt), ckpt


def test_nan_message_names_the_metric_and_step(tmp_path: Path) -> None:
    poison = ["+callbacks.poison._target_=stop_probe.PoisonWeights", "+callbacks.poison.at=3"]
    with pytest.raises(NonFiniteError) as err:
        run_training(["trainer=debug", "logger=none", *poison, *PROBE], tmp_path)
    assert str(err.value).startswith("loss became nan at step 3 "), err.value


@pytest.mark.parametrize("concept", ["mlp", "dcgan"])
def test_deferred_nan_checks_name_the_first_bad_step(concept: str, tmp_path: Path) -> None:
    """The GPU mode (checks kept on the device, read every n steps; here forced on the CPU):
    found at the next read, named with the step it went bad at; no checkpoint holds NaNs.
    dcgan: manual optimization, its losses and weights are checked."""
    args = [*overrides(concept, tmp_path), "trainer.max_epochs=4"]
    args += ["callbacks.finite_guard.every_n_steps=4"]
    poison = ["+callbacks.poison._target_=stop_probe.PoisonWeights", "+callbacks.poison.at=5"]
    with pytest.raises(NonFiniteError) as err:
        run_training([*args, *poison, *PROBE], tmp_path / "logs")
    message = str(err.value)
    assert "\n" not in message
    assert re.match(r"\S+ became non-finite at step (\d+) \(read at step (\d+)", message), message
    first, read = map(int, re.findall(r"step (\d+)", message)[:2])
    assert first <= read <= first + 4 * 2  # dcgan: two optimizer steps per batch
    [run_dir] = (tmp_path / "logs").glob("runs/*/*")
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "diverged"
    for ckpt in run_dir.glob("checkpoints/*.ckpt"):
        assert all_finite(ckpt), ckpt


def test_a_diverging_learning_rate_is_caught(tmp_path: Path) -> None:
    # no test hook: SGD with lr 1e30 overflows the weights within a few steps
    args = ["trainer=debug", "logger=none", "optimizer=sgd", "model.optimizer.lr=1e30"]
    with pytest.raises(NonFiniteError, match="became"):
        run_training([*args, "model.net.norm=none", "trainer.max_steps=50"], tmp_path)


# The agents step torch's optimizer directly (no Lightning hook sees their gradients) and clip
# with model.max_grad_norm: tests/test_rl.py checks theirs.
CLIPPED_BY_LIGHTNING = [c for c in CONCEPTS if c not in ("dqn", "ppo")]


@pytest.mark.slow
@pytest.mark.parametrize("concept", CLIPPED_BY_LIGHTNING)
def test_gradient_clipping_from_config(concept: str, tmp_path: Path) -> None:
    """A concept's one clipping setting (trainer.gradient_clip_val, or the concept's own:
    DCGAN's model.gradient_clip_val) bounds every optimizer step's gradient norm."""
    from hydra.utils import get_class
    from omegaconf import OmegaConf

    from mlzoo.run.train import CONFIG_DIR as configs

    target = OmegaConf.load(Path(configs) / "model" / f"{concept}.yaml").model._target_
    setting = get_class(target).own_clip_setting or "trainer.gradient_clip_val"
    clip = 1e-3
    norms_file = tmp_path / "norms.json"
    probe = [
        "+callbacks.probe._target_=stop_probe.GradNormProbe",
        f"+callbacks.probe.path={norms_file}",
    ]
    args = [*overrides(concept, tmp_path), *probe, *PROBE]
    run_training([*args, f"{setting}={clip}"], tmp_path / "clipped")
    norms = json.loads(norms_file.read_text())
    assert norms and max(norms) <= clip * (1 + 1e-4), max(norms)
    if concept in ("mlp", "dcgan"):  # without the setting the norms are larger: the probe can fail
        run_training(args, tmp_path)
        assert max(json.loads(norms_file.read_text())) > 10 * clip


# --- 4. crash safety and safe loading -------------------------------------------------------------
def test_atomic_checkpoint_write_keeps_the_old_file_when_a_save_dies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}, "global_step": 1}, path)
    real_save = torch.save

    def dies_halfway(obj, f, *a, **k):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt  # e.g. killed in the middle of writing

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}, "global_step": 2}, path)
    monkeypatch.setattr(torch, "save", real_save)
    assert read_checkpoint(path)["global_step"] == 1  # the old file, whole
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary left


def test_pickled_objects_are_refused_unless_trusted(tmp_path: Path) -> None:
    first = run_training(["trainer=debug", "logger=none"], tmp_path / "logs")
    ckpt = torch.load(first["last_checkpoint"], weights_only=True)
    ckpt["note"] = argparse.Namespace(evil=True)  # any pickled class
    foreign = tmp_path / "foreign.ckpt"
    torch.save(ckpt, foreign)
    with pytest.raises(ZooError, match=r"pickled Python objects.*trust_checkpoint=true"):
        run_training(["trainer=debug", f"ckpt_path={foreign}"], tmp_path / "logs")
    trusted = ["trainer=debug", "logger=none", f"ckpt_path={foreign}", "trust_checkpoint=true"]
    resumed = run_training([*trusted, "trainer.max_steps=9"], tmp_path / "logs")
    assert resumed["global_step"] == 9


def test_read_checkpoint_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "empty.ckpt").write_bytes(b"")
    with pytest.raises(ZooError, match=r"cannot load .*empty.ckpt"):
        read_checkpoint(tmp_path / "empty.ckpt")
    with pytest.raises(ZooError, match="no checkpoint file at"):
        read_checkpoint(tmp_path / "missing.ckpt")


# --- 5. the _target_ allowlist --------------------------------------------------------------------
def test_targets_outside_the_allowlist_are_refused(tmp_path: Path) -> None:
    evil = ["+callbacks.evil._target_=os.system", f"+callbacks.evil.command=touch {tmp_path}/pwned"]
    with pytest.raises(
        ZooError, match=r"callbacks.evil._target_=os.system .*allow_targets=\[os\.system\]"
    ):
        run_training(["trainer=debug", *evil], tmp_path / "logs")
    assert not (tmp_path / "pwned").exists()
    assert not list((tmp_path / "logs").glob("runs/*/*")), "a refused run left a folder"
    for target in ("torch.load", "torch.hub.load", "builtins.eval", "subprocess.run"):
        assert not is_allowed(target), target
    for target in ("torch.optim.AdamW", "mlzoo.models.mlp.MLPModule", "signal.Signals"):
        assert is_allowed(target), target
    probe = ["+callbacks.stop._target_=stop_probe.StopAfterEpochs", "+callbacks.stop.epochs=1"]
    with pytest.raises(ZooError, match="stop_probe"):
        run_training(["trainer=debug", "logger=none", *probe], tmp_path / "logs")
    summary = run_training(["trainer=debug", "logger=none", *probe, *PROBE], tmp_path / "logs")
    assert summary["epochs"] == 1  # allowed explicitly: it ran, and stopped the run


def test_a_tampered_run_config_is_refused_when_loading(tmp_path: Path) -> None:
    from mlzoo.run.load import load_checkpoint

    summary = run_training(["trainer=debug", "logger=none"], tmp_path / "logs")
    config = Path(summary["run_dir"]) / "config.yaml"
    config.write_text(config.read_text().replace("mlzoo.nets.mlp.MLP", "os.system", 1))
    with pytest.raises(ZooError, match=r"os\.system"):
        load_checkpoint(summary["last_checkpoint"])
    assert math.isfinite(summary["metrics"]["test/loss"])


# --- 7. TensorBoard stays on localhost --------------------------------------------------------------
def test_tensorboard_is_documented_and_suggested_on_localhost_only() -> None:
    import re

    from conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"tensorboard --logdir[^\n`#]*", readme)
    assert commands and all("--host localhost" in c for c in commands), commands
    assert "--bind_all" not in readme.replace("never starts it\nwith `--bind_all`", "")
    source = (ROOT / "mlzoo" / "run" / "train.py").read_text()
    assert "tensorboard --logdir logs --host localhost" in source  # the hint after every run
