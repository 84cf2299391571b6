"""The command line as a user meets it: train.py and mlzoo-train in a subprocess."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import ROOT


def cli(
    *args: str, cwd: Path, exe: list[str] | None = None, env: dict | None = None
) -> subprocess.CompletedProcess:
    command = exe or [sys.executable, str(ROOT / "train.py")]
    return subprocess.run(
        [*command, *args], cwd=cwd, capture_output=True, text=True, timeout=600, env=env
    )


def summaries(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.rglob("summary.json"))]


def fingerprint(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_debug_run_end_to_end(tmp_path: Path) -> None:
    out = cli("trainer=debug", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    [summary] = summaries(tmp_path / "logs")
    run_dir = Path(summary["run_dir"])
    assert run_dir.parent == (tmp_path / "logs" / "runs" / "mlp-digits").resolve()
    assert summary["global_step"] == 6 and "test/acc" in summary["metrics"]
    assert "tensorboard --logdir logs" in out.stdout
    assert str(run_dir) in out.stdout.replace("\n", "")
    # Lightning's tips and duplicated log lines are silenced.
    assert "Tip:" not in out.stdout + out.stderr
    assert out.stdout.count("`Trainer.fit` stopped") <= 1


@pytest.mark.slow
def test_console_script_from_another_directory(tmp_path: Path) -> None:
    exe = shutil.which("mlzoo-train", path=str(Path(sys.executable).parent))
    assert exe, "the console script mlzoo-train is not installed next to this python"
    out = cli("trainer=debug", "logger=none", cwd=tmp_path, exe=[exe])
    assert out.returncode == 0, out.stderr[-2000:]
    assert len(summaries(tmp_path / "logs")) == 1


@pytest.mark.slow
def test_resume_last_continues_in_the_same_folder(tmp_path: Path) -> None:
    assert cli("trainer=debug", cwd=tmp_path).returncode == 0
    [first] = summaries(tmp_path / "logs")
    out = cli("trainer=debug", "ckpt_path=last", "trainer.max_steps=12", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    [resumed] = summaries(tmp_path / "logs")  # still one run folder
    assert resumed["run_dir"] == first["run_dir"]
    assert resumed["resumed_from"].endswith("last.ckpt")
    assert resumed["global_step"] == 12
    assert len(list((tmp_path / "logs" / "runs" / "mlp-digits").iterdir())) == 1


@pytest.mark.slow
def test_multirun_gives_each_run_its_own_folder(tmp_path: Path) -> None:
    out = cli("-m", "trainer=debug", "logger=none", "seed=1,2", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    found = summaries(tmp_path / "logs" / "multiruns")
    assert sorted(s["seed"] for s in found) == [1, 2]
    assert len({Path(s["run_dir"]).parent for s in found}) == 1  # one sweep folder
    assert len({s["run_dir"] for s in found}) == 2


@pytest.mark.slow
def test_bad_checkpoint_and_bad_input_leave_earlier_runs_untouched(tmp_path: Path) -> None:
    assert cli("trainer=debug", "logger=none", cwd=tmp_path).returncode == 0
    logs = tmp_path / "logs"
    before = fingerprint(logs)
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"not a checkpoint at all")
    [summary] = summaries(logs)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(Path(summary["last_checkpoint"]).read_bytes()[:1000])
    for args, message in [
        ((f"ckpt_path={corrupt}",), "cannot load"),
        ((f"ckpt_path={truncated}",), "cannot load"),
        (("data.batch_size=-5",), "batch_size"),
        (("ckpt_path=last", "model.net.hidden_sizes=[32]"), "does not fit this model"),
        (("ckpt_path=last", "optimizer=sgd"), "another optimizer"),
        (("model=nope",), "Could not find 'model/nope'"),
    ]:
        out = cli("trainer=debug", *args, cwd=tmp_path)
        assert out.returncode != 0 and message in out.stderr, (args, out.stderr[-1000:])
        assert "Traceback" not in out.stderr
    assert fingerprint(logs) == before
    assert corrupt.read_bytes() == b"not a checkpoint at all"


def test_failed_run_in_a_user_folder_deletes_nothing(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    out = cli("hydra.run.dir=.", "data.batch_size=0", cwd=tmp_path)
    assert out.returncode == 1 and "batch_size" in out.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"


@pytest.mark.slow
@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_ctrl_c_or_sigterm_saves_a_checkpoint_that_resumes(signame: str, tmp_path: Path) -> None:
    import signal
    import time

    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), "trainer.max_epochs=1000", "logger=none"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # A test runner started in the background inherits an ignored SIGINT; give the run
        # the default disposition, as in a terminal, so that Python turns it into Ctrl-C.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.time() + 300
        while not list(tmp_path.glob("logs/runs/*/*/checkpoints/last.ckpt")):
            assert proc.poll() is None, proc.stderr.read()[-2000:]
            assert time.time() < deadline, "no checkpoint appeared in 300 s"
            time.sleep(0.5)
        time.sleep(1.0)
        proc.send_signal(getattr(signal, signame))
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:  # never leave a 1000-epoch run behind
            proc.kill()
            proc.wait()
    assert proc.returncode == 1
    [interrupted] = tmp_path.glob("logs/runs/*/*/checkpoints/interrupted-step*.ckpt")
    errors = [line for line in proc.stderr.read().splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: run stopped (Ctrl-C or SIGTERM) at step {interrupted.stem.split('step')[1]}; "
        f"saved {interrupted.resolve()}; resume with ckpt_path={interrupted.resolve()}"
    ], errors
    step = torch.load(interrupted, weights_only=True)["global_step"]
    assert step > 0
    max_epochs = step // 21 + 2  # 21 batches per epoch on digits
    # a shorter run than planned, on the run's own schedule (a resume cannot change it)
    finish = [f"trainer.max_epochs={max_epochs}", "model.scheduler.T_max=1000"]
    out = cli(f"ckpt_path={interrupted}", *finish, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    [summary] = summaries(tmp_path / "logs")
    assert summary["resumed_from"] == str(interrupted) and summary["global_step"] > step


@pytest.mark.slow
@pytest.mark.parametrize("on_device", ["false", "true"])
def test_ddp_with_two_cpu_processes_one_folder_same_result_on_both_ranks(
    tmp_path: Path, on_device: str
) -> None:
    """Also with the batches built on the device (data.on_device): Lightning's distributed sampler
    then deals whole batches out to the ranks."""
    import os

    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    out = cli(
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.max_epochs=2",
        "+callbacks.rank_probe._target_=ddp_probe.RankProbe",
        "allow_targets=[ddp_probe]",
        f"data.on_device={on_device}",
        cwd=tmp_path,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    runs = list((tmp_path / "logs" / "runs").glob("*/*"))
    assert len(runs) == 1, runs  # rank 1 writes into rank 0's run folder, and nothing else
    rank0, rank1 = (json.loads((runs[0] / f"rank{r}.json").read_text()) for r in (0, 1))
    assert rank0["weights"] == rank1["weights"]  # DDP keeps the replicas identical
    assert rank0["metrics"]["val/loss"] == rank1["metrics"]["val/loss"]  # synced over ranks
    [summary] = summaries(tmp_path / "logs")
    assert summary["metrics"]["test/acc"] > 0.8  # 2 epochs
    assert summary["global_step"] == 22  # each rank: 11 of an epoch's 21 batches, not all 21


def test_multirun_with_ddp_is_refused_in_one_line(tmp_path: Path) -> None:
    out = cli("-m", "trainer=ddp", "trainer.accelerator=cpu", "seed=1,2", cwd=tmp_path)
    assert out.returncode == 1
    assert "multirun (-m) cannot use DDP" in out.stderr and "Traceback" not in out.stderr
    assert not summaries(tmp_path / "logs")


def test_optuna_search_of_3_trials_finishes(tmp_path: Path) -> None:
    out = cli(
        "hparams_search=mlp_optuna",
        "hydra.sweeper.n_trials=3",
        "trainer=debug",
        "logger=none",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    found = summaries(tmp_path / "logs" / "multiruns")
    assert len(found) == 3 and len({s["model"] for s in found}) == 1
    configs = [(Path(s["run_dir"]) / "config.yaml").read_text() for s in found]
    lrs = {line for c in configs for line in c.splitlines() if line.strip().startswith("lr:")}
    assert len(lrs) == 3  # three different learning rates were tried
    (result,) = (tmp_path / "logs" / "multiruns").glob("*/optimization_results.yaml")
    text = result.read_text()
    assert "best_params" in text and "model.optimizer.lr" in text
    best = min(s["monitor"]["best"] for s in found)  # val/loss is minimised
    assert f"best_value: {best}"[:16] in text


def test_submitit_local_launcher_runs_each_job(tmp_path: Path) -> None:
    out = cli(
        "-m",
        "hydra/launcher=submitit_local",
        "trainer=debug",
        "logger=none",
        "seed=1,2",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert sorted(s["seed"] for s in summaries(tmp_path / "logs" / "multiruns")) == [1, 2]


def test_slurm_configs_compose(tmp_path: Path) -> None:
    from conftest import compose_config

    cfg = compose_config(["trainer=slurm", "hydra/launcher=slurm"], tmp_path)
    assert cfg.trainer.strategy == "ddp" and cfg.trainer.plugins[0].auto_requeue


@pytest.mark.slow
def test_sigkill_at_random_moments_always_leaves_loadable_checkpoints(tmp_path: Path) -> None:
    """Kill -9 a run that writes a checkpoint every step (big ones: slow writes), at random
    moments, 8 times, resuming each time: every checkpoint on disk loads (weights_only) and the
    last run finishes."""
    import random
    import signal
    import time

    rng = random.Random(0)
    args = [
        "model.net.hidden_sizes=[1024,1024]",  # ~4 MB of weights, ~13 MB per checkpoint
        "+callbacks.last_checkpoint.every_n_train_steps=1",
        "trainer.max_epochs=40",
        "logger=none",
    ]
    kills = 0
    for attempt in range(8):
        resume = (
            ["ckpt_path=last"] if list(tmp_path.glob("logs/runs/*/*/checkpoints/last.ckpt")) else []
        )
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "train.py"), *args, *resume],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started = time.time()

        def fresh(since: float = started) -> list[Path]:  # written by this process: training
            found = tmp_path.glob("logs/runs/*/*/checkpoints/last.ckpt")  # replaced, not removed
            return [p for p in found if p.stat().st_mtime > since]

        try:
            while not fresh():
                assert proc.poll() is None and time.time() < started + 300, f"attempt {attempt}"
                time.sleep(0.2)
            time.sleep(rng.uniform(0.5, 4.0))  # mid-training, often mid-write
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        kills += 1
        for ckpt in tmp_path.glob("logs/runs/*/*/checkpoints/*.ckpt"):
            state = torch.load(ckpt, weights_only=True)  # whole, never half written
            assert state["global_step"] > 0, ckpt
    assert kills == 8
    runs = {p.parent.parent for p in tmp_path.glob("logs/runs/*/*/checkpoints/*.ckpt")}
    assert len(runs) == 1, "resuming made new run folders"
    [last] = tmp_path.glob("logs/runs/*/*/checkpoints/last.ckpt")
    epochs = torch.load(last, weights_only=True)["epoch"] + 2  # one more whole epoch
    # fewer epochs than planned, the run's own schedule kept (a resume cannot change it)
    finish = [f"trainer.max_epochs={epochs}", "model.scheduler.T_max=40"]
    out = cli(*args[:2], *finish, "logger=none", "ckpt_path=last", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    [summary] = summaries(tmp_path / "logs")
    assert summary["status"] == "completed" and summary["epochs"] == epochs


def test_an_option_a_concept_would_ignore_is_refused_naming_it(tmp_path: Path) -> None:
    """PPO anneals its own learning rate: a scheduler it would silently skip is one line."""
    out = cli("model=ppo", "scheduler=cosine", "trainer=debug", cwd=tmp_path)
    assert out.returncode == 1, out.stderr[-2000:]
    [line] = out.stderr.strip().splitlines()
    assert "CosineAnnealingLR" in line and "scheduler=none" in line, line
    assert not (tmp_path / "logs").exists() or not any((tmp_path / "logs").rglob("*.ckpt"))


def test_gradient_accumulation_is_refused_with_the_alternative(tmp_path: Path) -> None:
    """Concepts write their own optimizer step per batch: accumulation would be ignored."""
    out = cli("trainer=debug", "+trainer.accumulate_grad_batches=2", cwd=tmp_path)
    assert out.returncode == 1, out.stderr[-2000:]
    [line] = out.stderr.strip().splitlines()
    assert "accumulate_grad_batches" in line and "data.batch_size" in line, line


def test_a_scheduler_steps_in_the_concepts_own_update(run) -> None:
    """StepLR(step_size=1, gamma=0.5) halves the learning rate after each of 3 epochs: the
    last checkpoint's schedule has stepped 3 times."""
    summary = run(["trainer=debug", "trainer.max_steps=-1", "trainer.max_epochs=3",
                   "scheduler=step", "model.scheduler.step_size=1", "model.scheduler.gamma=0.5",
                   "model.optimizer.lr=0.001"])  # fmt: skip
    ckpt = torch.load(summary["last_checkpoint"], weights_only=True)
    [schedule] = ckpt["lr_schedulers"]
    assert schedule["last_epoch"] == 3 and schedule["_last_lr"] == [pytest.approx(0.001 / 8)]


def test_the_console_shows_the_run_not_lightnings_model_summary(tmp_path: Path) -> None:
    """Lightning's model summary ("Total FLOPs: 0") and its lines that repeat the checkpoint a
    test restores go to train.log only; the console keeps the run's own lines."""
    out = cli("trainer=debug", "trainer.enable_model_summary=true", "logger=none", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    console = out.stdout + out.stderr
    for noise in ("Total FLOPs", "Total params", "Restoring states", "Loaded model weights"):
        assert noise not in console, console
    [summary] = summaries(tmp_path / "logs")
    log = (Path(summary["run_dir"]) / "train.log").read_text()
    assert "Total params" in log and "Loaded model weights from the checkpoint" in log, log
    assert "best checkpoint:" in out.stdout


@pytest.mark.slow
def test_a_run_built_from_an_earlier_run_names_it(run, caplog) -> None:
    """DPO from the newest SFT run, transfer from the newest SimCLR run: each says which run,
    checkpoint, step and score it starts from (the mlzoo logger: console and train.log), and
    DPO's frozen reference (in eval mode by design) sets off no Lightning warning."""
    import logging
    import re
    import warnings

    short = ["trainer=debug", "trainer.max_steps=1", "trainer.limit_train_batches=1",
             "trainer.limit_val_batches=1", "test=false", "logger=none"]  # fmt: skip
    sft = run(["model=sft", *short])
    caplog.set_level(logging.INFO, logger="mlzoo")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        run(["model=dpo", *short])
    assert not [w for w in seen if "in eval mode" in str(w.message)], [str(w.message) for w in seen]
    run_dir = re.escape(str(Path(sft["run_dir"]).resolve()))
    best = re.escape(Path(sft["best_checkpoint"]).name)
    said = re.compile(
        rf"Using the SFT run {run_dir} \(checkpoints/{best}, step 1, val/\S+ [-\d.e]+\) as the "
        "policy and the reference"
    )
    assert any(said.fullmatch(r.getMessage()) for r in caplog.records), caplog.text
    simclr = run(["model=simclr", *short])
    run(["model=transfer", *short])
    expected = f"Using the SimCLR run {Path(simclr['run_dir']).resolve()} (checkpoints/"
    assert any(r.getMessage().startswith(expected) for r in caplog.records), caplog.text
    assert any(r.getMessage().endswith(") as the backbone") for r in caplog.records), caplog.text
