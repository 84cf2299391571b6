"""Configs and checkpoints from others are data, never code; nothing earlier is ever lost.

Each attack names code that would run if the check were missing (the poisoned pickle is proven
live at the start: loading it creates its marker file), and goes through the real entry points: train.py's main() with Hydra's own
command-line parsing, scripts/sample.py and scripts/evaluate.py. Each case must exit non-zero
with exactly one ``error:`` line naming what was refused, no traceback, no marker file, and the
earlier run folder byte for byte as it was (sha256 of every file).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pickle
import re
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from cli_cases import run_cases
from omegaconf import OmegaConf

from mlzoo.base.errors import ZooError
from mlzoo.run.resume import resume_record
from mlzoo.run.targets import check_config, check_tree, is_allowed

from conftest import ROOT

TRAIN = [sys.executable, str(ROOT / "train.py")]


def fingerprint(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


class _Touch:
    """Unpickling this runs ``touch <path>``: the payload a poisoned pickle carries."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


# --- the objects, not the names -------------------------------------------------------------
def test_targets_are_compared_as_objects_not_as_names() -> None:
    for target in (
        "torch.optim.AdamW",
        "torch.nn.modules.linear.Linear",  # torch.nn.Linear by another path: the same class
        "torch.optim.lr_scheduler.CosineAnnealingLR",
        "mlzoo.models.mlp.MLPModule",
        "mlzoo.nets.cnn.small_resnet18",
        "lightning.pytorch.callbacks.ModelCheckpoint",
        "gymnasium.wrappers.AtariPreprocessing",
        "signal.Signals",
    ):
        assert is_allowed(target), target
    for target in (
        "mlzoo.run.checkpoint.torch.load",  # torch.load, reached through a zoo module
        "mlzoo.run.train.shutil.copyfile",
        "mlzoo.run.checkpoint.read_checkpoint",  # a zoo function, not a class it builds
        "mlzoo.run.train.train",
        "torch.load",
        "torch.save",
        "torch.hub.load",
        "gymnasium.make",
        "gymnasium.envs.registration.EnvSpec",
        "gymnasium.wrappers.RecordVideo",
        "builtins.eval",
        "os.system",
        "${oc.env:TARGET}",
        None,
    ):
        assert not is_allowed(target), target
    assert is_allowed("collections.OrderedDict", ["collections"])  # the user's opt-in
    assert not is_allowed("collections.OrderedDict")
    assert is_allowed("mlzoo.run.train.shutil.copyfile", ["shutil.copyfile"])  # by what it is
    assert not is_allowed("mlzoo.run.train.shutil.copyfile", ["shutil.rmtree"])


def test_resolving_a_target_never_imports_a_foreign_module(tmp_path: Path) -> None:
    (tmp_path / "sideeffect.py").write_text(f"open({str(tmp_path / 'imported')!r}, 'w')\n")
    sys.path.insert(0, str(tmp_path))
    try:
        assert not is_allowed("sideeffect.anything")
    finally:
        sys.path.remove(str(tmp_path))
    assert "sideeffect" not in sys.modules and not (tmp_path / "imported").exists()


def test_logging_and_code_naming_values_are_refused() -> None:
    job_logging = {"handlers": {"h": {"class": "logging.StreamHandler"}}}
    check_tree({"hydra": {"job_logging": job_logging}})  # the standard ones pass
    bad = [
        ({"formatters": {"f": {"()": "os.system"}}}, r"\(\)=os.system"),
        ({"handlers": {"h": {"class": "logging.handlers.SocketHandler"}}}, "SocketHandler"),
        ({"handlers": {"h": {"stream": "ext://os.system"}}}, "ext://os.system"),
        ({"handlers": {"h": {"filename": "/tmp/x.log"}}}, "run folder"),
        ({"handlers": {"h": {"filename": "${hydra.runtime.output_dir}/../x"}}}, "run folder"),
    ]
    for section, message in bad:
        with pytest.raises(ZooError, match=message):
            check_tree({"hydra": {"hydra_logging": section}})
    with pytest.raises(ZooError, match="entry_point"):
        check_tree({"data": {"env_kwargs": {"spec": {"entry_point": "os:system"}}}})
    with pytest.raises(ZooError, match="module:Env"):
        check_tree({"data": {"env_id": "evil:Env-v0"}})
    with pytest.raises(ZooError, match="interpolation"):
        check_tree({"model": {"_target_": "${oc.env:X}"}})


@pytest.mark.parametrize(
    "overrides",
    [[], ["hparams_search=mlp_optuna"], ["hydra/launcher=submitit_local"], ["trainer=slurm"]],
    ids=lambda o: " ".join(o) or "default",
)
def test_shipped_configs_pass_the_check_hydra_section_included(overrides: list[str]) -> None:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from mlzoo.run.train import CONFIG_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    assert "job_logging" in cfg.hydra
    tree = OmegaConf.to_container(cfg, resolve=False)
    check_tree({"hydra": tree.pop("hydra")}, hydra_plugins=True)  # as mlzoo.run.guard does
    check_config(tree)
    # a launcher's name outside Hydra's own section, or a registered plugin's module: refused
    launcher = cfg.hydra.launcher._target_
    with pytest.raises(ZooError, match="not a class the zoo instantiates"):
        check_tree({"model": {"net": {"_target_": launcher}}}, hydra_plugins=True)
    with pytest.raises(ZooError, match="not a class the zoo instantiates"):
        check_tree({"hydra": {"launcher": {"_target_": launcher}}})  # a file's hydra section
    with pytest.raises(ZooError, match="not a class the zoo instantiates"):
        sneak = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.os.mkdir"
        check_tree({"hydra": {"launcher": {"_target_": sneak}}}, hydra_plugins=True)


def test_resume_records_are_never_overwritten(tmp_path: Path) -> None:
    first = resume_record(tmp_path)
    first.write_text("a")
    second = resume_record(tmp_path)
    assert second != first and not second.exists()


# --- through the real entry points -----------------------------------------------------------
@pytest.fixture(scope="module")
def earlier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding one finished run (logs/runs/mlp-digits/<time>/)."""
    home = tmp_path_factory.mktemp("earlier")
    out = subprocess.run(
        [*TRAIN, "trainer=debug", "logger=none"], cwd=home, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return home


def _tampered(run: Path, dest: Path, config=None, hparams=None) -> Path:
    """A copy of a run folder with its config.yaml and/or checkpoint hyperparameters changed;
    returns its last.ckpt."""
    shutil.copytree(run, dest)
    if config is not None:
        cfg = yaml.safe_load((dest / "config.yaml").read_text())
        config(cfg)
        (dest / "config.yaml").write_text(yaml.safe_dump(cfg))
    ckpt = dest / "checkpoints" / "last.ckpt"
    if hparams is not None:
        state = torch.load(ckpt, weights_only=True)
        state["hyper_parameters"].update(hparams)
        torch.save(state, ckpt)
        torch.load(ckpt, weights_only=True)  # still a clean, weights-only file
    return ckpt


@pytest.mark.slow
def test_code_from_configs_and_checkpoints_never_runs(earlier: Path, tmp_path: Path) -> None:
    [run] = earlier.glob("logs/runs/mlp-digits/*")
    last = run / "checkpoints" / "last.ckpt"
    mark = tmp_path / "marks"
    mark.mkdir()

    # payloads, each proven live first
    evil_pkl = tmp_path / "evil.pkl"
    evil_pkl.write_bytes(pickle.dumps(_Touch(mark / "live")))
    with contextlib.suppress(RuntimeError):  # it runs, then torch finds no tensors in it
        torch.load(evil_pkl, weights_only=False)
    assert (mark / "live").exists(), "the pickle payload is not live"
    (mark / "live").unlink()
    (tmp_path / "evilmod.py").write_text(
        f"open({str(mark / 'imported')!r}, 'w')\nimport sys\nstream = sys.stdout\n"
    )

    def torch_load(cfg):  # mlzoo.run.checkpoint.torch.load is torch.load
        cfg["data"] = {"_target_": "mlzoo.run.checkpoint.torch.load", "f": str(evil_pkl)}
        cfg["data"]["weights_only"] = False

    def gym_entry_point(cfg):
        spec = {"_target_": "gymnasium.envs.registration.EnvSpec", "id": "Pwn-v0"}
        spec |= {"entry_point": "os:system", "kwargs": {"command": f"touch {mark}/gym"}}
        cfg["data"] = {"_target_": "gymnasium.make", "id": spec}

    def grants_itself(cfg):
        torch_load(cfg)
        cfg["allow_targets"] = ["mlzoo", "torch", "os"]

    shared = tmp_path / "shared"
    t_load = _tampered(run, shared / "a", config=torch_load)
    t_gym = _tampered(run, shared / "b", config=gym_entry_point)
    t_self = _tampered(run, shared / "c", config=grants_itself)
    hp = {"net": {"_target_": "torch.load", "f": str(evil_pkl), "weights_only": False}}
    t_hparams = _tampered(run, shared / "d", hparams=hp)

    gym = [
        "+callbacks.x._target_=gymnasium.make",
        "+callbacks.x.id._target_=gymnasium.envs.registration.EnvSpec",
        "+callbacks.x.id.id=Pwn-v0",
        "+callbacks.x.id.entry_point=os:system",
        f"+callbacks.x.id.kwargs.command='touch {mark}/cli-gym'",
    ]
    cases: list[tuple[str, list[str], str]] = [
        ("train", gym, "gymnasium.make"),
        # the same EnvSpec nested in an allowed callback's arguments
        (
            "train",
            [*gym[1:], "+callbacks.x._target_=mlzoo.callbacks.rng.RNGStateCallback"],
            "callbacks.x.id",
        ),
        (
            "train",
            [
                "+hydra.callbacks.x._target_=os.system",
                f"+hydra.callbacks.x.command='touch {mark}/h'",
            ],
            "hydra.callbacks.x._target_=os.system",
        ),
        (
            "train",
            [
                "model.net._target_=mlzoo.run.checkpoint.torch.load",
                f"+model.net.f={evil_pkl}",
                "+model.net.weights_only=false",
            ],
            "which is torch.serialization.load",
        ),
        (
            "train",
            [
                "+callbacks.x._target_=mlzoo.run.train.shutil.copyfile",
                f"+callbacks.x.src={evil_pkl}",
                f"+callbacks.x.dst={last}",
            ],
            "which is shutil.copyfile",
        ),
        (
            "train",
            ["+callbacks.x._target_=torch.save", "+callbacks.x.obj=1", f"+callbacks.x.f={last}"],
            "torch.save",
        ),
        (
            "train",
            [
                "hydra.job_logging.handlers.file.class=zipfile.ZipFile",
                "+hydra.job_logging.handlers.file.mode=w",
            ],
            "zipfile.ZipFile",
        ),
        (
            "train",
            [
                f"hydra.job_logging.handlers.file.filename={last}",
                "+hydra.job_logging.handlers.file.mode=w",
            ],
            "must lie in the run folder",
        ),
        ("train", ["hydra.job_logging.handlers.console.stream=ext://evilmod.stream"], "ext://"),
        (
            "train",
            ["model.net._target_=${oc.env:EVIL_TARGET}", "+model.net.command=x"],
            "interpolation",
        ),
        ("train", ["model=dqn", "data.env_id=evilmod:Pwn-v0"], "module:Env"),
        (
            "train",
            ["-m", "model.net._target_=mlzoo.nets.mlp.MLP,mlzoo.run.train.os.system"],
            "which is posix.system",
        ),
        # folders that already hold a run are never written into
        ("train", [f"hydra.run.dir={run}"], "already holds a run"),
        ("train", ["-m", "seed=1,2", f"hydra.sweep.dir={run}"], "already holds a run"),
        ("train", [f"paths.output_dir={run}"], "already holds a run"),
        ("train", [f"hydra.output_subdir={run}/.hydra"], "inside the run's own folder"),
        ("train", ["-m", "seed=1,2", f"hydra.sweep.subdir=../../runs/x/{run.name}"], "without .."),
        # run folders and checkpoints from others
        ("sample", [str(t_load)], "which is torch.serialization.load"),
        ("evaluate", [str(t_load)], "which is torch.serialization.load"),
        ("sample", [str(t_gym)], "gymnasium.make"),
        ("evaluate", [str(t_gym)], "gymnasium.make"),
        ("sample", [str(t_self)], "torch.serialization.load"),
        ("sample", [str(t_hparams)], "net._target_=torch.load"),
        ("train", ["model=transfer", f"model.backbone.checkpoint={t_hparams}"], "torch.load"),
        ("train", ["model=dpo", f"model.sft_checkpoint={t_hparams}"], "torch.load"),
        ("train", ["model=dpo", f"model.sft_checkpoint={t_gym}"], "gymnasium.make"),
        ("train", ["model=transfer", f"model.backbone.checkpoint={t_gym}"], "gymnasium.make"),
    ]
    before = fingerprint(earlier / "logs")
    env = {**os.environ, "EVIL_TARGET": "os.system", "PYTHONPATH": str(tmp_path)}
    failures = run_cases(cases, tmp_path, env=env)
    assert not failures, f"{len(failures)} of {len(cases)} cases:\n" + "\n".join(failures)
    assert not list(mark.iterdir()), f"code ran: {sorted(p.name for p in mark.iterdir())}"
    assert fingerprint(earlier / "logs") == before, "an earlier run folder changed"
    assert not list(tmp_path.glob("logs/runs/*/*")), "a refused run left a folder"


def _payloads(pkl: Path) -> dict[str, str]:
    """Interpolations whose resolver turns a string into config nodes: torch.load of a pickle."""
    node = f"{{_target_: torch.load, f: '{pkl}', weights_only: false}}"
    return {"oc.create": "${oc.create:" + node + "}", "oc.decode": '${oc.decode:"' + node + '"}'}


def test_resolvers_that_build_nodes_are_refused_by_key_and_name(tmp_path: Path) -> None:
    import hydra

    mark = tmp_path / "live"
    pkl = tmp_path / "evil.pkl"
    pkl.write_bytes(pickle.dumps(_Touch(mark)))
    for name, payload in _payloads(pkl).items():
        with contextlib.suppress(Exception):  # it runs, then torch finds no tensors in it
            hydra.utils.instantiate(OmegaConf.create({"net": payload}).net)
        assert mark.exists(), f"the {name} payload is not live"
        mark.unlink()
        for tree in (
            {"model": {"net": payload}},
            {"data": {"path": f"prefix {payload}"}},
            {"model": {"kw": [1, {"x": "${oc.env:HOME," + payload + "}"}]}},  # nested
        ):
            with pytest.raises(ZooError, match=rf"\.(net|path|x)=.* the resolver {name} is not"):
                check_config(tree, where="a file")
    refused = {
        "${ oc.create :{a: 1}}": "oc.create",  # spaces are the grammar's
        "${oc.select:nowhere,{_target_: os.system}}": "oc.select",  # a default builds a node
        "${oc.dict.values:model}": "oc.dict.values",
        "${${name}:x}": "${name}",  # a resolver named by an interpolation
        "${oc.create:": "not an interpolation OmegaConf can read",
    }
    for value, reason in refused.items():
        with pytest.raises(ZooError, match=re.escape(reason)):
            check_config({"name": "oc.create", "model": {"x": value}})
    # the zoo's own and plain interpolations stay usable; escaped text is text
    check_config({"a": 1, "b": "${a}", "c": "${oc.env:HOME,x}", "d": "\\${oc.create:{a: 1}}"})
    check_tree({"hydra": {"dir": "${now:%H}/${mlzoo_run_label:x,y}/${hydra:job.name}"}})
    assert not mark.exists()


@pytest.mark.slow
def test_resolver_payloads_in_downloaded_runs_never_run(earlier: Path, tmp_path: Path) -> None:
    """oc.create / oc.decode payloads in a run folder's config.yaml or a checkpoint's
    hyperparameters, through every route that reads one: one line naming key and resolver."""
    import mlzoo

    [run] = earlier.glob("logs/runs/mlp-digits/*")
    mark = tmp_path / "marks"
    mark.mkdir()
    pkl = tmp_path / "evil.pkl"
    pkl.write_bytes(pickle.dumps(_Touch(mark / "ran")))
    payloads = _payloads(pkl)
    home = tmp_path / "home"  # resumed runs must lie under its logs/ to resume in place
    runs = home / "logs" / "runs" / "mlp-digits"
    ckpts: dict[tuple[str, str], Path] = {}
    for name, payload in payloads.items():

        def data_path(cfg, payload=payload):
            cfg["data"]["path"] = payload

        ckpts[name, "config"] = _tampered(run, runs / f"{name}-config", config=data_path)
        ckpts[name, "hparams"] = _tampered(run, runs / f"{name}-hparams", hparams={"net": payload})
    cases: list[tuple[str, list[str], str]] = []
    for (name, where), ckpt in ckpts.items():
        key = "data.path" if where == "config" else "net"
        reason = f"the resolver {name} is not allowed"
        cases += [
            ("sample", [str(ckpt), "--out", str(tmp_path / "s")], reason),
            ("evaluate", [str(ckpt)], reason),
            ("predict", [str(ckpt), str(tmp_path / "rows.csv")], reason),
            ("export", [str(ckpt), "--format", "onnx", "-o", str(tmp_path / "m.onnx")], reason),
            ("train", [f"ckpt_path={ckpt}"], reason),
            ("train", ["model=transfer", f"model.backbone.checkpoint={ckpt}"], reason),
            ("train", ["model=dpo", f"model.sft_checkpoint={ckpt}"], reason),
        ]
        with pytest.raises(ZooError, match=rf"{re.escape(key)}=.*{reason}"):
            mlzoo.load(ckpt)
    on_the_command_line = {  # named by the user's key, not Hydra's copy of the overrides
        "oc.create": f'+model.extra="{payloads["oc.create"]}"',
        "oc.decode": "+model.extra='${oc.decode:\"{_target_: os.system, command: x}\"}'",
    }
    for name, override in on_the_command_line.items():
        cases.append(("train", [override], f"model.extra=${{{name}:"))
    before = fingerprint(home / "logs")
    failures = run_cases(cases, home)
    assert not failures, f"{len(failures)} of {len(cases)} cases:\n" + "\n".join(failures)
    assert not list(mark.iterdir()), "code ran"
    assert fingerprint(home / "logs") == before, "a run folder changed"
    assert sorted(p.name for p in runs.iterdir()) == sorted(f"{n}-{w}" for n, w in ckpts)
    assert not list((tmp_path / "home").glob("logs/runs/*/2*")), "a refused run left a folder"


@pytest.mark.slow
def test_hostile_run_folders_end_in_one_line_never_run_code_and_never_hang(
    earlier: Path, tmp_path: Path
) -> None:
    """A run folder as someone else may send it: a launcher class reached by interpolation, YAML
    aliases and interpolations that grow into billions of entries, hyperparameters that do the
    same through pickle's memo, a setting no constructor takes, a training state that is not
    Lightning's. Each is one line, with nothing run and nothing of the earlier run changed."""
    [run] = earlier.glob("logs/runs/mlp-digits/*")
    mark = tmp_path / "marks"
    mark.mkdir()
    home = tmp_path / "home"
    runs = home / "logs" / "runs" / "mlp-digits"
    sneak = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.os.mkdir"

    def launcher(cfg):  # Hydra's plugin packages are its own to build, never a file's
        cfg["model"]["net"] = "${hydra.launcher}"
        cfg["hydra"] = {"launcher": {"_target_": sneak, "_args_": [str(mark / "plugin")]}}
        cfg["hydra"]["x"] = "${nope}"  # a value that cannot resolve

    def interpolated_laughs(cfg):
        cfg["laughs"] = {"l0": [0] * 10}
        cfg["laughs"] |= {f"l{i}": [f"${{laughs.l{i - 1}}}"] * 10 for i in range(1, 8)}

    def no_such_setting(cfg):
        cfg["model"]["net"]["bogus"] = 1

    shared: list = [0] * 10
    for _ in range(8):
        shared = [shared] * 10  # 10**8 leaves through pickle's memo
    made = {
        "launcher": _tampered(run, runs / "launcher", config=launcher),
        "laughs": _tampered(run, runs / "laughs", config=interpolated_laughs),
        "memo": _tampered(run, runs / "memo", hparams={"extra": shared}),
        "bogus": _tampered(run, runs / "bogus", config=no_such_setting),
        "aliases": _tampered(run, runs / "aliases"),
        "loops": _tampered(run, runs / "loops"),
    }
    aliases = "".join(f"l{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9))
    config = runs / "aliases" / "config.yaml"
    config.write_text(config.read_text() + "l0: &a0 [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]\n" + aliases)
    state = torch.load(made["loops"], weights_only=True)
    state["loops"] = "not a loop state"
    torch.save(state, made["loops"])
    reasons = {
        "launcher": "hydra.launcher._target_=hydra_plugins",
        "laughs": "holds no interpolations",
        "memo": "more than 100,000 entries",
        "bogus": "cannot build its model (TypeError",
        "aliases": "more than 100,000 entries",
    }
    cases: list[tuple[str, list[str], str]] = []
    for name, reason in reasons.items():
        out = str(tmp_path / f"{name}.pt")
        cases.append(("export", [str(made[name]), "--format", "torchscript", "-o", out], reason))
        cases.append(("train", ["model=dpo", f"model.sft_checkpoint={made[name]}"], reason))
    cases += [
        ("train", [f"ckpt_path={made['memo']}"], "more than 100,000 entries"),
        ("train", [f"ckpt_path={made['aliases']}"], "more than 100,000 entries"),
        ("train", [f"ckpt_path={made['laughs']}"], "holds no interpolations"),
        ("train", [f"ckpt_path={made['loops']}", "trainer.max_steps=9"], "cannot resume from"),
        ("train", ["model.net.hidden_sizes=[1,2"], "cannot read the override"),
    ]
    before = fingerprint(home / "logs")
    failures = run_cases(cases, home, timeout=900)
    assert not failures, f"{len(failures)} of {len(cases)} cases:\n" + "\n".join(failures)
    assert not list(mark.iterdir()), "code ran"
    assert fingerprint(home / "logs") == before, "a run folder changed (a resume record?)"
    assert sorted(p.name for p in (home / "logs" / "runs").iterdir()) == ["mlp-digits"]

    # a resumed checkpoint whose saved best_model_path names a FIFO: tested on its own weights
    fifo = tmp_path / "best.ckpt"
    os.mkfifo(fifo)
    best = _tampered(run, runs / "best")
    state = torch.load(best, weights_only=True)
    for saved in state["callbacks"].values():
        if "best_model_path" in saved:
            saved["best_model_path"] = str(fifo)
    torch.save(state, best)
    cmd = [*TRAIN, "trainer=debug", "logger=none", f"ckpt_path={best}"]  # 6 steps: all done
    out = subprocess.run(cmd, cwd=home, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Testing the weights at hand" in out.stdout + out.stderr
    summary = json.loads((runs / "best" / "summary.json").read_text())
    assert summary["best_checkpoint"] is None and summary["metrics"]["test/acc"] > 0


# --- nothing earlier is lost --------------------------------------------------------------------
def _dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
    )
    return int(done.stdout)


def _temporaries(folder: Path, dead: int) -> dict[str, Path]:
    """A killed run's temporary files (old), a live writer's (this process), a fresh one."""
    made = {
        "stale": folder / f".last.ckpt.tmp-{dead}",
        "stale_record": folder.parent / f".summary.json.tmp-{dead}",
        "live": folder / f".best.ckpt.tmp-{os.getpid()}",
        "fresh": folder / f".other.ckpt.tmp-{dead + 1}",  # written to a moment ago
        "not_ours": folder / ".notes.tmp-x",
    }
    for name, path in made.items():
        path.write_bytes(b"x" * 1000)
        if name != "fresh":
            os.utime(path, (1e9, 1e9))
    return made


def test_a_killed_runs_temporary_files_are_removed_and_a_live_writers_kept(
    tmp_path: Path,
) -> None:
    from mlzoo.run.checkpoint import remove_stale_temporaries

    (tmp_path / "checkpoints").mkdir()
    made = _temporaries(tmp_path / "checkpoints", _dead_pid())
    removed = remove_stale_temporaries(tmp_path / "checkpoints")
    removed += remove_stale_temporaries(tmp_path)
    assert sorted(removed) == sorted([made["stale"], made["stale_record"]])
    assert all(made[k].exists() for k in ("live", "fresh", "not_ours"))


@pytest.mark.slow
def test_a_resume_cleans_what_a_killed_write_left(earlier: Path, tmp_path: Path) -> None:
    [run] = earlier.glob("logs/runs/mlp-digits/*")
    copy = tmp_path / "logs" / "runs" / "mlp-digits" / run.name
    shutil.copytree(run, copy)
    made = _temporaries(copy / "checkpoints", _dead_pid())
    cmd = [*TRAIN, "trainer=debug", "logger=none", "ckpt_path=last", "trainer.max_steps=9"]
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert not made["stale"].exists() and not made["stale_record"].exists()
    assert all(made[k].exists() for k in ("live", "fresh", "not_ours"))
    assert f"Removed {made['stale']} (1,000 bytes)" in out.stdout + out.stderr


@pytest.mark.slow
def test_resume_is_refused_while_another_resume_holds_the_run(earlier: Path) -> None:
    [run] = earlier.glob("logs/runs/mlp-digits/*")
    before = fingerprint(run)
    held = os.open(run, os.O_RDONLY)
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running resume holds it
        out = subprocess.run(
            [*TRAIN, "trainer=debug", "logger=none", "ckpt_path=last", "trainer.max_steps=12"],
            cwd=earlier,
            capture_output=True,
            text=True,
        )
    finally:
        os.close(held)
    assert out.returncode == 1 and "being resumed by another process" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert fingerprint(run) == before
    assert len(list(earlier.glob("logs/runs/mlp-digits/*"))) == 1


@pytest.mark.slow
def test_a_failed_checkpoint_write_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    """The file-size limit (ulimit -f) hit while a resume writes its checkpoint: one line naming
    the file and the cause; the earlier last.ckpt whole and loadable."""
    first = subprocess.run(
        [*TRAIN, "trainer=debug", "logger=none"], cwd=tmp_path, capture_output=True, text=True
    )
    assert first.returncode == 0, first.stderr[-2000:]
    [last] = tmp_path.glob("logs/runs/mlp-digits/*/checkpoints/last.ckpt")
    digest, size = hashlib.sha256(last.read_bytes()).hexdigest(), last.stat().st_size
    limit = size // 4
    assert limit > 64_000  # room for the small files (config, log), none for a checkpoint

    def small_files_only() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    out = subprocess.run(
        [*TRAIN, "trainer=debug", "logger=none", "ckpt_path=last", "trainer.max_steps=12"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        preexec_fn=small_files_only,
    )
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert out.returncode == 1 and len(errors) == 1, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    assert "file-size limit" in errors[0] and ".ckpt" in errors[0], errors
    assert hashlib.sha256(last.read_bytes()).hexdigest() == digest
    assert torch.load(last, weights_only=True)["global_step"] == 6
    assert not list(last.parent.glob(".*.tmp-*")), "a temporary file was left behind"


@pytest.mark.slow
def test_odd_values_and_file_system_faults_get_one_line(earlier: Path, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    cases = [
        (["seed=-1"], "seed: must be in [0, 2**32)"),
        ([f"seed={2**40}"], "seed: must be in [0, 2**32)"),
        (["seed=" + "9" * 5000], "seed: a 5000-digit number"),
        ([f"trainer.max_epochs={2**70}"], "trainer.max_epochs"),
        (["model.optimizer.lr=nan"], "model.optimizer.lr: NaN"),
        (["model.optimizer.lr=inf"], "model.optimizer.lr: a learning rate"),
        (["model.optimizer.lr=0"], "model.optimizer.lr: a learning rate"),
        (["trainer.gradient_clip_val=-1"], "trainer.gradient_clip_val"),
        (["model=dcgan", "trainer.gradient_clip_val=-1"], "trainer.gradient_clip_val"),
        ([f"paths.log_dir={tmp_path / 'afile'}"], "is a file, not a directory"),
        (["name=" + "n" * 300], "a file system allows 255"),
        (["ckpt_path=last", "model.optimizer.lr=0.5"], "model.optimizer.lr was 0.001"),
    ]
    before = fingerprint(earlier / "logs")
    failures = run_cases([("train", args, reason) for args, reason in cases], earlier)
    assert not failures, "\n".join(failures)
    assert fingerprint(earlier / "logs") == before
    assert len(list(earlier.glob("logs/runs/*/*"))) == 1

    # a script's bad argument: argparse's one line, before anything is loaded
    sample = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "sample.py"), "x.ckpt", "--labels", "x"],
        capture_output=True,
        text=True,
    )
    assert sample.returncode == 2 and "class labels are integers" in sample.stderr
    assert "Traceback" not in sample.stderr


def test_check_config_accepts_an_omegaconf_tree() -> None:
    check_config(OmegaConf.create({"model": {"_target_": "mlzoo.models.mlp.MLPModule"}}))
    with pytest.raises(ZooError, match=r"os\.system"):
        check_config(OmegaConf.create({"model": {"_target_": "os.system"}}))


# --- data files from others ------------------------------------------------------------------
def test_cifar_batches_are_unpickled_as_arrays_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlzoo.data.vision import CIFAR10DataModule

    from fakedata import skip_cifar_md5, write_cifar10

    payload = pickle.dumps(_Touch(tmp_path / "live"))
    pickle.loads(payload)
    assert (tmp_path / "live").exists(), "the payload is not live"
    write_cifar10(tmp_path)
    skip_cifar_md5(monkeypatch)
    assert len(CIFAR10DataModule(root=str(tmp_path), batch_size=8).load().train.x) == 100
    (tmp_path / "cifar-10-batches-py" / "data_batch_2").write_bytes(
        pickle.dumps(_Touch(tmp_path / "ran"), protocol=2)
    )
    with pytest.raises(ZooError, match=r"data_batch_2 was refused: posix\.system"):
        CIFAR10DataModule(root=str(tmp_path)).load()
    assert not (tmp_path / "ran").exists()


def test_jsonl_lines_end_at_newline_only_and_bad_lines_name_file_and_line(tmp_path: Path) -> None:
    from mlzoo.data.text_pairs import read_jsonl

    good = tmp_path / "good.jsonl"
    rows = [{"prompt": "a\u2028b", "completion": "c\u2029d\x85"}, {"prompt": "1", "response": "2"}]
    good.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\r\n")
    assert [r["prompt"] for r in read_jsonl(good, "sft")] == ["a\u2028b", "1"]
    assert read_jsonl(good, "sft")[1]["_where"] == f"{good}:2"
    bad = tmp_path / "bad.jsonl"
    lines = [b'{"prompt": "1", "completion": "2"}', b"3", b"null", b"\xff\xfe", b'{"prompt": "x"}']
    bad.write_bytes(b"\n".join(lines))
    with pytest.raises(ZooError) as info:
        read_jsonl(bad, "sft", "data.val_path")
    message = str(info.value)
    assert message.startswith("data.val_path: ") and "\n" not in message
    for n, reason in [
        (2, "not a JSON object but int"),
        (3, "not a JSON object but NoneType"),
        (4, "not UTF-8"),
    ]:
        assert f"{bad}:{n}: {reason}" in message, message
    assert (
        f"{bad}:5: a sft line needs string fields" in message
        and "(completion is missing)" in message
    )
    assert f"{bad}:1" not in message


@pytest.mark.slow
def test_an_example_longer_than_the_context_is_refused_by_file_and_line(tmp_path: Path) -> None:
    train = tmp_path / "train.jsonl"
    train.write_text(
        "".join(json.dumps({"prompt": f"{i}+1=", "completion": "x"}) + "\n" for i in range(40))
    )
    val = tmp_path / "val.jsonl"
    val.write_text(json.dumps({"prompt": "1+1=", "completion": "2"}) + "\n")
    val.write_text(val.read_text() + json.dumps({"prompt": "9" * 40, "completion": "2"}) + "\n")
    args = ["model=sft", "data=jsonl", f"data.source={train}", f"data.val_path={val}"]
    out = subprocess.run(
        [*TRAIN, "trainer=debug", "logger=none", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert f"error: {val}:2: prompt and response take 42 positions" in out.stderr, out.stderr
    assert not list(tmp_path.glob("logs/runs/*/*")), "the refused run left a folder"


@pytest.fixture
def tmpfs(tmp_path: Path):
    """``tmpfs(size_kb, read_only)``: a small file system of its own (needs mount rights, as
    root in CI; skipped elsewhere), unmounted after the test."""
    mounted: list[Path] = []

    def mount(size_kb: int, read_only: bool = False) -> Path:
        point = tmp_path / f"fs{len(mounted)}"
        point.mkdir()
        out = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(point)],
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {out.stderr.strip()[:100]}")
        mounted.append(point)
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", str(point)], check=True)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


@pytest.mark.slow
def test_no_space_and_read_only_file_systems_get_one_line(
    earlier: Path, tmp_path: Path, tmpfs
) -> None:
    [run] = earlier.glob("logs/runs/mlp-digits/*")
    # ENOSPC: the earlier run copied onto a file system with room for small files only
    used = sum(p.stat().st_size for p in run.rglob("*") if p.is_file()) // 1024
    full = tmpfs(used + 256)
    shutil.copytree(earlier / "logs", full / "logs")
    [last] = full.glob("logs/runs/mlp-digits/*/checkpoints/last.ckpt")
    digest = hashlib.sha256(last.read_bytes()).hexdigest()
    resume = ["trainer=debug", "logger=none", "ckpt_path=last", "trainer.max_steps=12"]
    out = subprocess.run([*TRAIN, *resume], cwd=full, capture_output=True, text=True)
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert out.returncode == 1 and len(errors) == 1, out.stderr[-2000:]
    assert "no space left on the device" in errors[0] and "Traceback" not in out.stderr, errors
    assert errors[0].startswith("error: cannot write the checkpoint") and "kept whole" in errors[0]
    assert hashlib.sha256(last.read_bytes()).hexdigest() == digest
    # read-only: refused before anything is written
    read_only = tmpfs(64, read_only=True)
    logs = f"paths.log_dir={read_only}/logs"
    out = subprocess.run(
        [*TRAIN, "trainer=debug", logs], cwd=tmp_path, capture_output=True, text=True
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert out.stderr.startswith("error: hydra.run.dir=") and "read-only" in out.stderr
