"""Bad input, many ways: each malformed or wrong command line exits non-zero with one clear reason,
no Python traceback, and leaves every earlier run folder exactly as it was.

The cases run through the real entry point (mlzoo.run.train.main, Hydra's command-line parsing
included) in one subprocess, one after another (tests/cli_cases.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from cli_cases import run_cases

from conftest import ROOT

# Each case: (arguments, a piece of the reason the error must give).
CASES: list[tuple[list[str], str]] = [
    # unknown groups and options
    (["model=nope"], "Could not find 'model/nope'"),
    (["data=nope"], "Could not find 'data/nope'"),
    (["trainer=nope"], "Could not find 'trainer/nope'"),
    (["optimizer=nope"], "Could not find 'optimizer/nope'"),
    (["scheduler=nope"], "Could not find 'scheduler/nope'"),
    (["logger=nope"], "Could not find 'logger/nope'"),
    (["callbacks=nope"], "Could not find 'callbacks/nope'"),
    (["env=nope"], "Could not find 'env/nope'"),
    (["experiment=nope"], "Could not find 'experiment/nope'"),
    (["hparams_search=nope"], "Could not find 'hparams_search/nope'"),
    (["modle=mlp"], "modle"),
    (["MODEL=mlp"], "MODEL"),
    # typo'd keys
    (["trainer.max_epoch=3"], "did you mean trainer.max_epochs"),
    (["model.lrr=0.1"], "lrr"),
    (["data.batchsize=8"], "did you mean data.batch_size?"),
    (["seeds=1"], "did you mean seed?"),
    (["model.net.hidden_size=[8]"], "did you mean model.net.hidden_sizes?"),
    # malformed overrides
    (["trainer.max_epochs"], "trainer.max_epochs"),
    (["=3"], "=3"),
    (["model.net.hidden_sizes=[8,"], "'[8,'"),
    (["seed=${nope}"], "nope"),
    # wrong types
    (["trainer.max_epochs=abc"], "max_epochs"),
    (["data.batch_size=abc"], "batch_size"),
    (["data.batch_size=1.5"], "batch_size"),
    (["seed=abc"], "seed"),
    (["model.optimizer.lr=fast"], "lr"),
    (["torch_threads=two"], "torch_threads"),
    (["model.net.hidden_sizes=8"], "hidden_sizes"),
    (["model.net.activation=banana"], "banana"),
    (["model.net.norm=sometimes"], "sometimes"),
    (["trainer.precision=bf17"], "bf17"),
    (["trainer.accelerator=tpu9"], "tpu9"),
    # negative, zero and absurd sizes
    (["data.batch_size=-5"], "data.batch_size must be >= 1"),
    (["data.batch_size=0"], "data.batch_size must be >= 1"),
    (["trainer.max_epochs=-2"], "max_epochs"),
    (["trainer.max_epochs=0"], "no training step ran"),
    (["model.net.hidden_sizes=[-4]"], "hidden"),
    (["model.net.hidden_sizes=[0]"], "hidden"),
    (["model.net.dropout=1.5"], "dropout"),
    (["model.optimizer.lr=-1"], "learning rate"),
    (["data.val_fraction=1.5"], "data.val_fraction must be in (0, 1)"),
    (["data.val_fraction=-0.1"], "data.val_fraction must be in (0, 1)"),
    (["data.test_fraction=1.0"], "data.test_fraction must be in (0, 1)"),
    (["data.train_subset=0"], "data.train_subset must be >= 1"),
    (["data.labels_per_class=0"], "data.labels_per_class must be >= 1"),
    (["data.image_size=-8"], "image_size"),
    (["torch_threads=0"], "threads"),
    (["trainer.devices=0"], "devices"),
    (["trainer.accelerator=gpu"], "gpu"),
    (["model=rnn", "data=series", "data.window=0"], "data.window and data.horizon must be >= 1"),
    (["model=cnn", "data=diabetes"], "needs images"),
    # empty data and missing files
    (["data=mnist"], "MNIST"),
    (["data=cifar10", "data.root=/nonexistent"], "CIFAR"),
    (["data=mnist", "data.root={mnist}"], "holds pickled Python objects"),
    (["model=sft", "data=jsonl", "data.source=/nonexistent.jsonl"], "nonexistent.jsonl"),
    (["model=sft", "data=jsonl", "data.source={empty}"], "empty"),
    (["model=sft", "data=jsonl", "data.source={badjson}"], "badjson.jsonl:2"),
    (["model=sft", "data=jsonl", "data.source={deep}"], "deep.jsonl:2: JSON nested too deeply"),
    (["model=sft", "data=jsonl", "data.source={bigint}"], "bigint.jsonl:1: unreadable JSON"),
    (["model=sft", "data=jsonl"], "data.source"),
    (["model=dpo", "model.sft_checkpoint=/nonexistent.ckpt"], "nonexistent.ckpt"),
    (["model=dpo", "model.sft_checkpoint=newest:sft-nothing"], "sft-nothing"),
    (["model=transfer", "model.backbone.checkpoint={corrupt}"], "cannot load"),
    (["model=transfer", "model.backbone.checkpoint=/nonexistent.ckpt"], "nonexistent.ckpt"),
    (
        [
            "model=transfer",
            "model.backbone.checkpoint=null",
            "model.backbone.torchvision=os.system",
        ],
        "model.backbone.torchvision='os.system' is not a torchvision classification model",
    ),
    # checkpoints: missing, corrupt, truncated, foreign, pickled, mismatched
    (["ckpt_path=/nonexistent.ckpt"], "no checkpoint file"),
    (["ckpt_path={corrupt}"], "cannot load"),
    (["ckpt_path={truncated}"], "cannot load"),
    (["ckpt_path={empty_ckpt}"], "cannot load"),
    (["ckpt_path={bare_state_dict}"], "not a checkpoint written by mlzoo"),
    (["ckpt_path={pickled}"], "pickled Python objects"),
    (["ckpt_path=last", "model.net.hidden_sizes=[32]"], "does not fit this model"),
    (["ckpt_path=last", "optimizer=sgd"], "another optimizer"),
    (["ckpt_path=last", "model=cnn"], "no last.ckpt of a 'cnn-digits' run"),
    (["model=cnn", "ckpt_path={last}"], "does not fit this model"),
    # RL environments
    (["model=dqn", "data.env_id=NoSuchEnv-v0"], "NoSuchEnv-v0"),
    (["model=dqn", "data.num_envs=0"], "num_envs"),
    (["model=ppo", "data.iterations_per_epoch=-1"], "iterations_per_epoch"),
    (["model=dqn", "env=pendulum"], "Discrete"),
    (["model=ppo", "data.env_kwargs.nope=1"], "nope"),
    # configs that would run code outside the zoo
    (["+callbacks.x._target_=os.system", "+callbacks.x.command=echo pwned"], "os.system"),
    (["model._target_=builtins.eval"], "builtins.eval"),
    (["+logger.x._target_=torch.hub.load"], "torch.hub.load"),
    (["model.net._target_=subprocess.run"], "subprocess.run"),
]


def fingerprint(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_bad_input_gives_one_clear_line_and_touches_nothing(tmp_path: Path) -> None:
    assert len(CASES) >= 50
    # an earlier run, whose folder must come through every case unchanged
    first = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "trainer=debug"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert first.returncode == 0, first.stderr[-2000:]
    [last] = tmp_path.glob("logs/runs/mlp-digits/*/checkpoints/last.ckpt")
    files = tmp_path / "files"
    files.mkdir()
    ckpt = torch.load(last, weights_only=True)
    (files / "corrupt.ckpt").write_bytes(b"this is not a checkpoint")
    (files / "truncated.ckpt").write_bytes(last.read_bytes()[:2000])
    (files / "empty_ckpt.ckpt").write_bytes(b"")
    torch.save(ckpt["state_dict"], files / "bare_state_dict.ckpt")
    torch.save({**ckpt, "extra": subprocess.CompletedProcess([], 0)}, files / "pickled.ckpt")
    processed = files / "mnist" / "MNIST" / "processed"  # torchvision's legacy files, poisoned
    processed.mkdir(parents=True)
    for name in ("training.pt", "test.pt"):
        torch.save(subprocess.CompletedProcess([], 0), processed / name)
    (files / "empty.jsonl").write_text("")
    (files / "badjson.jsonl").write_text('{"prompt": "1+1=", "completion": "2"}\n{oops\n')
    (files / "deep.jsonl").write_text('{"prompt": "1+1=", "completion": "2"}\n' + "[" * 200_000)
    (files / "bigint.jsonl").write_text('{"prompt": ' + "9" * 5000 + "}\n")
    paths = {p.stem: str(p) for p in files.iterdir()} | {"last": str(last)}

    def fill(arg: str) -> str:
        for name, path in paths.items():
            arg = arg.replace("{" + name + "}", path)
        return arg

    cases = [([fill(a) for a in args], reason) for args, reason in CASES]
    before = fingerprint(tmp_path / "logs")

    failures = run_cases(
        [("train", args, reason) for args, reason in cases], tmp_path, strict=False
    )
    assert not failures, f"{len(failures)} of {len(cases)} cases:\n" + "\n".join(failures)
    assert fingerprint(tmp_path / "logs") == before, "a failed run changed an earlier run folder"
    runs = sorted(p.name for p in tmp_path.glob("logs/runs/*/*"))
    assert len(runs) == 1, f"failed runs left folders behind: {runs}"


# -o / --out: checked before any work (the checkpoint is not even read), by one function


def test_check_output_refuses_what_cannot_be_a_new_file(tmp_path: Path) -> None:
    from mlzoo.base.errors import ZooError
    from mlzoo.run.files import check_output

    (tmp_path / "taken.csv").write_text("earlier\n")
    (tmp_path / "a_file").write_text("")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "link").symlink_to(tmp_path / "taken.csv")
    cases = [
        (tmp_path / "taken.csv", {}, "exists: choose a new name"),
        (tmp_path / "dangling", {}, "is a symbolic link"),
        (tmp_path / "link", {}, "is a symbolic link"),
        (tmp_path / "missing" / "out.csv", {}, f"no folder {tmp_path / 'missing'}"),
        (tmp_path / "a_file" / "out.csv", {}, "a_file is a file, not a folder"),
        (tmp_path / "a_file" / "new" / "out", {"parents": True}, "a_file is a file"),
        (tmp_path / ("x" * 300), {}, "has 300 bytes"),
    ]
    if Path("/sys").is_dir():  # a folder no one can create files in, root included
        cases.append((Path("/sys/out.csv"), {}, "cannot write in /sys"))
    for path, kwargs, message in cases:
        with pytest.raises(ZooError, match=r"^-o") as caught:
            check_output(path, "-o", **kwargs)
        assert message in str(caught.value) and "\n" not in str(caught.value), (path, caught)
    assert check_output(tmp_path / "new.csv") == tmp_path / "new.csv"
    assert check_output(tmp_path / "run" / "export" / "x", parents=True)  # default outputs
    after = sorted(p.name for p in tmp_path.iterdir())
    assert after == ["a_file", "dangling", "link", "taken.csv"]  # the probe left nothing
    assert (tmp_path / "taken.csv").read_text() == "earlier\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in a mode 0o555 folder")
def test_check_output_refuses_a_read_only_folder(tmp_path: Path) -> None:
    from mlzoo.base.errors import ZooError
    from mlzoo.run.files import check_output

    (tmp_path / "ro").mkdir(mode=0o555)
    with pytest.raises(ZooError, match=r"cannot write in .*ro: permission denied"):
        check_output(tmp_path / "ro" / "out.csv")


def test_scripts_check_their_output_before_reading_the_checkpoint(tmp_path: Path, capsys) -> None:
    """predict/export/sample/evaluate: a path that cannot be a new output is one line, before the
    checkpoint is read (this one is not even a checkpoint), and nothing is written anywhere."""
    from conftest import load_script

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    ckpt = str(run / "checkpoints" / "last.ckpt")
    Path(ckpt).write_bytes(b"not a checkpoint")
    (run / "videos").write_text("a file where evaluate --video puts its folder")
    (tmp_path / "dangling.csv").symlink_to(tmp_path / "nowhere.csv")
    (tmp_path / "file").write_text("")
    missing = tmp_path / "missing" / "preds.csv"
    cases = [
        ("predict", [ckpt, "in.csv", "-o", str(missing)], f"no folder {missing.parent}"),
        ("predict", [ckpt, "in.csv", "-o", str(tmp_path / "dangling.csv")], "symbolic link"),
        ("predict", [ckpt, "in.csv", "-o", str(tmp_path / "file" / "p.csv")], "not a folder"),
        ("export", [ckpt, "--format", "onnx", "-o", str(tmp_path / "missing" / "x")], "no folder"),
        ("sample", [ckpt, "--out", str(tmp_path / "dangling.csv")], "symbolic link"),
        ("evaluate", [ckpt, "--video"], "videos is a file, not a folder"),
    ]
    if Path("/sys").is_dir():  # read-only for root too
        cases += [
            ("predict", [ckpt, "in.csv", "-o", "/sys/preds.csv"], "cannot write in /sys"),
            ("export", [ckpt, "--format", "onnx", "-o", "/sys/onnx"], "cannot write in /sys"),
        ]
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    scripts = {name: load_script(name) for name in {c[0] for c in cases}}
    capsys.readouterr()
    for name, args, message in cases:
        assert scripts[name].main(args) == 1, (name, args)
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and message in lines[0], (name, args, err)
        assert "Traceback" not in err and "cannot load" not in err
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_loggers_and_render_mode_refused_in_one_line(tmp_path: Path) -> None:
    """An MLflow server where nothing answers, W&B online without a login (never a prompt), a
    training env asked to open a window: one line naming the setting, no run folder left."""
    import importlib.util

    cases = [(["model=dqn", "+data.env_kwargs.render_mode=human"], "data.env_kwargs.render_mode")]
    if importlib.util.find_spec("mlflow"):
        uri = "http://127.0.0.1:9"  # the discard port: nothing listens
        cases.append(
            (
                ["logger=mlflow", f"logger.mlflow.tracking_uri={uri}"],
                f"logger.mlflow.tracking_uri={uri}: nothing answers there",
            )
        )
        cases.append(  # refused by the client's constructor, before any first contact
            (
                ["logger=mlflow", "logger.mlflow.tracking_uri=bogus://nowhere"],
                "logger.mlflow (MLFlowLogger) could not be built at tracking_uri=bogus://nowhere",
            )
        )
    if importlib.util.find_spec("wandb"):
        cases.append((["logger=wandb", "logger.wandb.mode=online"], "logger.wandb.mode=online"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env["NETRC"] = str(tmp_path / "no-netrc")  # no `wandb login` either
    start = time.monotonic()
    failures = run_cases([("train", args, reason) for args, reason in cases], tmp_path, env=env)
    assert not failures, "\n".join(failures)
    assert time.monotonic() - start < 120  # MLflow's client alone would retry for minutes
    assert not list(tmp_path.glob("logs/runs/*/*")), "a failed run left its folder"
