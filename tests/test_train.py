"""End-to-end runs through mlzoo.run.train: smoke runs, summary.json, seeding, resume, checkpoints."""

from __future__ import annotations

import json
import math
import os
import re
import sys
from pathlib import Path

import pytest
import torch

from mlzoo.run.train import CONFIG_DIR

from conftest import ROOT, run_training
from fakedata import skip_cifar_md5, write_cifar10, write_mnist

MODELS = sorted(p.stem for p in (Path(CONFIG_DIR) / "model").glob("*.yaml"))
OFFLINE_DATA = ["digits", "diabetes"]
TORCHVISION_DATA = ["mnist", "fashion_mnist", "cifar10"]
SUMMARY_KEYS = {"model", "data", "seed", "metrics", "best_checkpoint", "duration_s", "run_dir"}


def fake_torchvision(name: str, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if name == "cifar10":
        write_cifar10(root)
        skip_cifar_md5(monkeypatch)
    else:
        write_mnist(root, folder="FashionMNIST" if name == "fashion_mnist" else "MNIST")


# The data sets each model runs on; a model not listed here is smoke-tested on its default data.
DATA_FOR_MODEL = {
    "mlp": OFFLINE_DATA + TORCHVISION_DATA,
    "cnn": ["digits", *TORCHVISION_DATA],
    "rnn": ["digits", "series", "adding", "mnist"],
    "autoencoder": ["digits", "mnist", "cifar10"],
    "vae": ["digits", "mnist", "cifar10"],
    "dcgan": ["digits", "mnist", "cifar10"],
    "ddpm": ["digits", "mnist", "cifar10"],
    "simclr": ["digits", "mnist", "cifar10"],
    "transfer": ["digits"],
}
GENERATIVE = {"vae", "dcgan", "ddpm"}
# The README's metric names (section "Metric names"): a namespace, then lower-case words; no
# Lightning _step/_epoch suffix (each tag has one cadence); RL evaluates under val/, not eval/.
TAG = re.compile(r"(hp/)?(train|val|test|rollout|params|pairs)/[a-z0-9_]+|epoch")
METRIC_NAMES = (ROOT / "README.md").read_text().split("### Metric names")[1].split("\n### ")[0]
COMBOS = [(m, d) for m in MODELS for d in DATA_FOR_MODEL.get(m, [None])]


@pytest.mark.parametrize(("model", "data"), COMBOS, ids=[f"{m}-{d}" for m, d in COMBOS])
def test_few_steps_of_every_model_and_data(
    model: str, data: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run
) -> None:
    overrides = [f"model={model}", "trainer=debug"] + ([f"data={data}"] if data else [])
    if model in GENERATIVE:  # test/fid_cls over a few samples: this checks the path, not quality
        overrides.append("callbacks.sample_quality.num_samples=16")
        overrides.append("++trainer.check_val_every_n_epoch=1")  # the DDPM validates every 25
    if model == "transfer":  # its default backbone: the newest SimCLR run under the log folder
        run(["model=simclr", "trainer=debug"])
    if model == "dpo":  # it starts from the newest SFT run's checkpoint
        run(["model=sft", "trainer=debug"])
    if model == "ddpm":  # few sampling steps: 50 U-Net passes per grid are slow at 32x32
        overrides += ["model.sample_steps=3", "model.num_images=8"]
    if data in TORCHVISION_DATA:
        fake_torchvision(data, tmp_path / "data", monkeypatch)
        overrides.append(f"data.root={tmp_path / 'data'}")
        overrides.append("data.batch_size=32")  # the fake sets hold 140-160 images
    summary = run(overrides)
    assert summary.keys() >= SUMMARY_KEYS
    assert summary["model"] == model and (data is None or summary["data"] == data)
    # an optimizer step each; for the agents, each training iteration that updated
    assert summary["global_step"] == 6
    assert summary["metrics"] and all(math.isfinite(v) for v in summary["metrics"].values())
    assert any(k.startswith("test/") for k in summary["metrics"])
    run_dir = Path(summary["run_dir"])
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert Path(summary["best_checkpoint"]).is_file()
    assert (run_dir / "config.yaml").is_file()
    assert list(run_dir.glob("events.out.tfevents.*")), "no TensorBoard events in the run folder"
    if data == DATA_FOR_MODEL.get(model, [None])[0]:  # once per concept: names and loader
        check_metric_names(run_dir)
        import mlzoo

        ckpt = run_dir / "checkpoints" / "last.ckpt"
        loaded = mlzoo.load(ckpt)
        again = type(loaded).load_from_checkpoint(ckpt)
        assert not again.training and again.state_dict().keys() == loaded.state_dict().keys()
        for key, value in loaded.state_dict().items():
            assert torch.equal(value, again.state_dict()[key]), key


def check_metric_names(run_dir: Path) -> None:
    """The run's TensorBoard scalars follow the README's metric names, each named there."""
    from omegaconf import OmegaConf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 1})
    events.Reload()
    tags = set(events.Tags()["scalars"])
    monitor = OmegaConf.load(run_dir / "config.yaml").monitor.metric
    # HPARAMS' metric: the monitored one by its own name (hp/val/acc, hp/val/return), never a
    # column shared by different metrics; accuracy is `acc` in every concept
    assert {"train/loss", f"hp/{monitor}"} <= tags, tags
    assert not {t for t in tags if t.startswith("hp/")} - {f"hp/{monitor}"}, tags
    assert not {"val/accuracy", "test/accuracy"} & tags, tags
    assert any(t.startswith("val/") for t in tags) and any(t.startswith("test/") for t in tags)
    odd = {t for t in tags if not TAG.fullmatch(t) or t.endswith(("_step", "_epoch"))}
    assert not odd, f"tags outside the README's metric names: {sorted(odd)}"
    unnamed = {t for t in tags if f"{t.split('/')[-1]}`" not in METRIC_NAMES}
    assert not unnamed, f"tags the README's metric names do not name: {sorted(unnamed)}"


def test_supervised_concepts_predict_with_lightning(run) -> None:
    """MLPModule.load_from_checkpoint + trainer.predict: class probabilities whose argmax scores
    the test accuracy summary.json reports; another concept's loader refuses the file."""
    import lightning as L

    from mlzoo.data.sklearn import DigitsDataModule
    from mlzoo.models.cnn import CNNModule
    from mlzoo.models.mlp import MLPModule

    summary = run(["trainer.max_epochs=2", "logger=none"])  # tests the whole test split
    model = MLPModule.load_from_checkpoint(summary["best_checkpoint"])
    dm = DigitsDataModule()
    dm.setup()
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    probs = torch.cat(trainer.predict(model, dataloaders=dm.test_dataloader()))
    assert torch.allclose(probs.sum(dim=1), torch.ones(len(probs)), atol=1e-5)
    acc = float((probs.argmax(dim=1) == dm.splits["test"].y).float().mean())
    assert acc == pytest.approx(summary["metrics"]["test/acc"], abs=1e-4)
    with pytest.raises(TypeError, match="holds a MLPModule, not a CNNModule"):
        CNNModule.load_from_checkpoint(summary["best_checkpoint"])


def test_checkpoints_load_with_weights_only(run) -> None:
    summary = run(["trainer=debug"])
    for path in (summary["best_checkpoint"], summary["last_checkpoint"]):
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        assert "state_dict" in ckpt and ckpt["global_step"] > 0


def test_tensorboard_gets_scalars_and_hparams(run) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    summary = run(["trainer=debug"])
    events = EventAccumulator(summary["run_dir"])
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "val/loss", "val/acc", "test/acc", "train/lr"} <= scalars
    assert "test/confusion_matrix" in events.Tags()["images"]
    assert "hp/val/loss" in scalars  # the monitored metric's best value
    plugins = events.PluginTagToContent("hparams")
    # a session only: an experiment summary would hide every other run's hparams (issue 24)
    assert "_hparams_/session_start_info" in plugins and "_hparams_/experiment" not in plugins
    assert "model.net.hidden_sizes" in session_hparams(summary["run_dir"])
    config_text = events.PluginTagToContent("text")
    assert any("config" in tag for tag in config_text), config_text.keys()


def test_csv_logger_and_no_logger(run) -> None:
    summary = run(["trainer=debug", "logger=csv"])
    assert list(Path(summary["run_dir"]).glob("csv/*/metrics.csv"))
    summary = run(["trainer=debug", "logger=none"])
    assert summary["metrics"]["test/acc"] >= 0.0
    assert not list(Path(summary["run_dir"]).glob("events.out.tfevents.*"))


@pytest.mark.slow
def test_same_seed_same_metrics_other_seed_other_metrics(run) -> None:
    short = ["trainer.max_epochs=3", "logger=none"]
    first = run([*short, "seed=0"])["metrics"]
    again = run([*short, "seed=0"])["metrics"]
    other = run([*short, "seed=1"])["metrics"]
    assert first == again  # bit-identical on CPU
    assert first["test/loss"] != other["test/loss"]


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_data_on_device_trains_exactly_like_the_dataloader(model: str, run) -> None:
    """data.on_device=true (the GPU data path; here the device is the CPU) feeds the same batches
    in the same order: two epochs end with the same weights and the same test metrics."""
    from mlzoo.run.checkpoint import read_checkpoint

    short = [f"model={model}", "trainer.max_epochs=2", "logger=none"]
    plain, resident = run(short), run([*short, "data.on_device=true"])
    assert plain["metrics"] == resident["metrics"]
    a, b = (read_checkpoint(s["last_checkpoint"])["state_dict"] for s in (plain, resident))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_cnn_trains_on_device_with_augmentation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run
) -> None:
    fake_torchvision("cifar10", tmp_path / "data", monkeypatch)
    data = [f"data.root={tmp_path / 'data'}", "data.batch_size=32", "data.augment=true"]
    overrides = ["model=cnn", "data=cifar10", "trainer=debug", "data.on_device=true", *data]
    summary = run(overrides)
    assert summary["global_step"] == 6 and math.isfinite(summary["metrics"]["test/loss"])


def test_seed_zero_really_seeds(run) -> None:
    # `if cfg.seed:` would skip seed=0: then two runs would differ.
    a = run(["trainer=debug", "logger=none", "seed=0"])["metrics"]
    b = run(["trainer=debug", "logger=none", "seed=0"])["metrics"]
    assert a == b


@pytest.mark.slow
def test_resume_from_last_checkpoint_matches_uninterrupted_run(tmp_path: Path) -> None:
    common = ["trainer.max_epochs=4", "scheduler=step", "model.scheduler.step_size=1", "seed=3"]
    straight = run_training(common, tmp_path / "a")
    # The "interrupted" run: the same config stopped after 2 epochs, then resumed with ckpt_path=last.
    run_training(
        [*common, "+trainer.max_steps=" + str(straight["global_step"] // 2)], tmp_path / "b"
    )
    resumed = run_training([*common, "ckpt_path=last"], tmp_path / "b")
    assert resumed["resumed_from"].endswith("last.ckpt")
    assert resumed["global_step"] == straight["global_step"]
    assert len(list((tmp_path / "b" / "runs").glob("*/*"))) == 1, "resume made a second run folder"
    for key, value in straight["metrics"].items():
        assert resumed["metrics"][key] == pytest.approx(value, abs=1e-6), key
    a = torch.load(straight["last_checkpoint"], weights_only=True)["state_dict"]
    b = torch.load(resumed["last_checkpoint"], weights_only=True)["state_dict"]
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=0, msg=name)


@pytest.mark.slow
def test_mlp_learns_digits(run) -> None:
    """The default run (README's first command): test accuracy >= 0.97 on held-out digits."""
    summary = run([])
    assert summary["model"] == "mlp" and summary["data"] == "digits"
    assert summary["metrics"]["test/acc"] >= 0.97, summary["metrics"]
    summary = run(["seed=0"])
    assert summary["metrics"]["test/acc"] >= 0.95, summary["metrics"]


@pytest.mark.slow
def test_mlp_regression_matches_least_squares_on_diabetes(run) -> None:
    """`python train.py model=mlp data=diabetes`: test R^2 >= OLS's on the same split, 3 seeds."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.ols_baseline import ols_scores

    ols = ols_scores(split_seed=0)
    best_ols = max(ols["ols[train]/test_r2"], ols["ols[train+val]/test_r2"])
    r2 = [
        run(["data=diabetes", f"seed={s}", "logger=none"])["metrics"]["test/r2"] for s in (0, 1, 2)
    ]
    print(json.dumps({"ols": ols, "mlp_test_r2": r2}))
    assert min(r2) >= best_ols, (r2, ols)


@pytest.mark.slow
def test_compile_option_trains_and_writes_ordinary_checkpoints(run) -> None:
    from mlzoo.run.load import load_checkpoint

    summary = run(["model=cnn", "trainer=debug", "compile=true", "logger=none"])
    assert summary["global_step"] == 6 and math.isfinite(summary["metrics"]["test/loss"])
    model, _, _ = load_checkpoint(summary["last_checkpoint"])  # an uncompiled model loads it
    state = torch.load(summary["last_checkpoint"], weights_only=True)["state_dict"]
    assert not any("_orig_mod" in k for k in state) and set(state) == set(model.state_dict())


@pytest.mark.parametrize("driver", [True, False])
def test_nvml_cuda_check_dropped_only_where_torch_cannot_load_nvml(
    driver: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lightning's PYTORCH_NVML_BASED_CUDA_CHECK=1 costs ~50 us per CUDA check without a driver
    (torch.optim checks every step); it stays wherever NVML loads (fork-safe checks there)."""
    import ctypes

    from mlzoo.run.train import _drop_nvml_check_without_a_driver

    def cdll(name, *args, **kwargs):
        if not driver:
            raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(ctypes, "CDLL", cdll)
    monkeypatch.setenv("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    _drop_nvml_check_without_a_driver()
    assert ("PYTORCH_NVML_BASED_CUDA_CHECK" in os.environ) == driver


def test_removing_the_progress_bar_callback_leaves_no_bar(tmp_path: Path) -> None:
    """~callbacks.progress_bar: no bar at all, not Lightning's default one (which redraws every
    batch); without the override the run has the zoo's bar."""
    from mlzoo.callbacks.progress import ProgressBar
    from mlzoo.run.build import build_run
    from mlzoo.run.load import load_checkpoint

    from conftest import compose_config

    for overrides, bar in ((["~callbacks.progress_bar"], None), ([], ProgressBar)):
        cfg = compose_config(["trainer=debug", *overrides], tmp_path / "logs")
        trainer = build_run(cfg, load_checkpoint)[-1]
        assert type(trainer.progress_bar_callback) is (bar or type(None))


def test_progress_bar_updates_at_most_refresh_rate_times_a_second_and_at_the_epochs_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from types import SimpleNamespace

    from lightning.pytorch.callbacks import RichProgressBar

    from mlzoo.callbacks import progress

    updates: list[int] = []
    monkeypatch.setattr(
        RichProgressBar, "on_train_batch_end", lambda self, t, m, o, b, i: updates.append(i)
    )
    clock = iter(0.05 * i for i in range(100))  # a batch every 50 ms
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    bar = progress.ProgressBar(refresh_rate=1)
    trainer = SimpleNamespace(num_training_batches=50)
    for i in range(50):
        bar.on_train_batch_end(trainer, None, None, None, i)
    assert updates == [0, 20, 40, 49]  # once a second, and the epoch's last batch


def _tiny_manual(clip: float | None = 1e-3):
    """A ZooModule with one linear layer taking 3 manual updates per batch through Lightning's
    optimizer, manual_backward and clip_manual, recording each update's gradients."""
    from mlzoo.base.module import ZooModule

    class Tiny(ZooModule):
        def __init__(self):
            super().__init__(torch.optim.SGD)
            self.net = torch.nn.Linear(4, 1)
            self.grad_norms: list[float] = []
            self.grad_max: list[float] = []  # the largest |gradient| entry, per update

        def training_step(self, batch, batch_idx):
            opt = self.optimizers()
            for _ in range(3):
                loss = (self.net(torch.ones(8, 4)) - 100.0).square().mean()
                opt.zero_grad()
                self.manual_backward(loss)
                self.clip_manual(opt, clip)
                grads = [p.grad for p in self.net.parameters()]
                self.grad_norms.append(float(torch.stack([g.norm() for g in grads]).norm()))
                self.grad_max.append(max(float(g.abs().max()) for g in grads))
                opt.step()

        def train_dataloader(self):
            return range(2)

    return Tiny()


def test_manual_updates_go_through_lightning_and_clip_manual_clips() -> None:
    """Concepts other than the agents update through Lightning's optimizer and manual_backward
    (every callback's hooks run); clip_manual clips by norm or by value."""
    import lightning as L

    trainer_args = dict(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu",
    )  # fmt: skip

    class AfterBackward(L.Callback):
        seen = 0

        def on_after_backward(self, trainer, pl_module):
            AfterBackward.seen += 1

    model = _tiny_manual()
    trainer = L.Trainer(**trainer_args, callbacks=[AfterBackward()])
    trainer.fit(model)
    assert AfterBackward.seen == 6 and trainer.global_step == 6  # 2 batches x 3 updates
    assert max(model.grad_norms) <= 1e-3 * (1 + 1e-4)  # clipped (unclipped: ~200)

    model = _tiny_manual(clip=None)
    L.Trainer(**trainer_args).fit(model)
    assert max(model.grad_norms) > 100  # the loss really has large gradients to clip

    model = _tiny_manual()
    model.manual_clip_algorithm = "value"  # trainer.gradient_clip_algorithm=value
    L.Trainer(**trainer_args).fit(model)
    assert max(model.grad_max) <= 1e-3 * (1 + 1e-6)  # each entry
    assert max(model.grad_norms) > 1e-3 * (1 + 1e-4)  # (5 entries at 1e-3: norm 2.2e-3)


def test_a_run_written_before_the_house_split_still_loads_and_resumes(tmp_path: Path) -> None:
    """Runs saved while mlzoo.core existed name mlzoo.core.checkpoint.AtomicCheckpointIO in their
    config.yaml: they load (mlzoo.load) and resume in place as before."""
    import mlzoo

    common = ["trainer.max_epochs=2", "logger=none"]
    first = run_training([*common, "+trainer.max_steps=5"], tmp_path / "logs")
    config = Path(first["run_dir"]) / "config.yaml"
    text = config.read_text()
    assert "mlzoo.run.checkpoint.AtomicCheckpointIO" in text
    config.write_text(text.replace("mlzoo.run.checkpoint.", "mlzoo.core.checkpoint."))
    model = mlzoo.load(first["last_checkpoint"])
    assert type(model).__name__ == "MLPModule"
    again = run_training(
        ["trainer.max_epochs=2", "logger=none", "ckpt_path=last"], tmp_path / "logs"
    )
    assert again["run_dir"] == first["run_dir"] and again["resumed_from"].endswith("last.ckpt")
    assert again["global_step"] > first["global_step"]


# --------------------------------------------------------------------------------------------
# run names: the folder and TensorBoard run say what a run changed (issue 39)
# --------------------------------------------------------------------------------------------
def run_folder(overrides: list[str]) -> Path:
    """hydra.run.dir as `python train.py <overrides>` resolves it (relative to logs/)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        return Path(OmegaConf.select(cfg, "hydra.run.dir")).relative_to("logs/runs")


TIME = re.compile(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_\d{6}")


def test_a_run_folder_carries_the_settings_it_changed() -> None:
    from mlzoo.run.sweep import MAX_LABEL

    def label(overrides: list[str]) -> tuple[str, str]:
        folder = run_folder(overrides)
        assert TIME.match(folder.name), folder  # the time first: folders sort by it
        return folder.parent.name, folder.name[26:].lstrip("_")

    assert label([]) == ("mlp-digits", "")
    assert label(["model.optimizer.lr=0.1", "optimizer=sgd"]) == (
        "mlp-digits",
        "lr=0.1,optimizer=sgd",
    )
    # the defaults' own values, and what is no setting (paths, threads, logger, resume), add nothing
    quiet = ["seed=42", "optimizer=adamw", "trainer.max_epochs=30", "model.optimizer.lr=0.001"]
    quiet += ["paths.log_dir=logs", "torch_threads=1", "logger=csv", "ckpt_path=null"]
    assert label(quiet) == ("mlp-digits", "")
    # the name says model and data (RL: the env), so they are not repeated
    assert label(["model=dqn", "env=acrobot", "model.gamma=0.9"]) == ("dqn-acrobot", "gamma=0.9")
    assert label(["model=cnn", "data=mnist", "trainer=debug"]) == ("cnn-mnist", "trainer=debug")
    # a preset is named by itself; what the command line changed in it follows the time
    assert label(["experiment=transfer_imagenet", "model.mode=lora", "data=mnist"]) == (
        "transfer_imagenet",
        "mode=lora,data=mnist",
    )
    assert label(["experiment=dqn_acrobot"]) == ("dqn_acrobot", "")
    # keys by their last part unless two would read the same
    assert label(["model.net.dropout=0.3", "+model.dropout=0.2"]) == (
        "mlp-digits",
        "net.dropout=0.3,model.dropout=0.2",
    )
    # any value: one folder, no ':' or quotes, a path by its last part, capped with a hash
    _, odd = label(["+model.note='a b:c\"d'", "+model.file=/x/y/data.csv"])
    assert odd == "note=ab_cd,file=data.csv"
    _, long = label([f"model.net.hidden_sizes=[{','.join(['1024'] * 30)}]"])
    assert len(long) == MAX_LABEL and long.startswith("hidden_sizes=1024+1024+") and "~" in long
    assert not re.search(r"[^\w.=,+~@%-]", long + odd)


def test_runs_with_the_same_settings_get_their_own_folders(tmp_path: Path) -> None:
    """Two runs of one command line, then the folder name in TensorBoard's run list."""
    from test_cli import cli

    for _ in range(2):
        out = cli("trainer=debug", "model.optimizer.lr=0.01", cwd=tmp_path)
        assert out.returncode == 0, out.stderr[-2000:]
    runs = sorted((tmp_path / "logs" / "runs" / "mlp-digits").iterdir())
    assert len(runs) == 2 and all(r.name.endswith("_trainer=debug,lr=0.01") for r in runs)
    for run_dir in runs:
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["run_dir"] == str(run_dir.resolve())
        assert list(run_dir.glob("events.out.tfevents.*"))


def session_hparams(run_dir: str | Path) -> dict[str, object]:
    """The hparams session a run wrote, as TensorBoard's plugin reads it."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata

    events = EventAccumulator(str(run_dir))
    events.Reload()
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    info = metadata.parse_session_start_info_plugin_data(content)
    return {
        k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind"))
        for k, v in info.hparams.items()
    }


def test_hparams_hold_the_curated_keys_and_the_command_lines_settings(run) -> None:
    summary = run(["trainer=debug", "model.net.dropout=0.25", "data.val_fraction=0.3"])
    hparams = session_hparams(summary["run_dir"])
    expected = {
        "experiment": "none",
        "model": "mlp",
        "data": "digits",
        "optimizer": "adamw",
        "model.optimizer.lr": 0.001,
        "data.batch_size": 64,
        "trainer.max_epochs": 30,
        "seed": 42,
        "model.net.hidden_sizes": "[256, 256]",
        "model.net.activation": "relu",
        "model.net.norm": "batch",
        "model.net.dropout": 0.25,  # the concept's key settings ...
        "trainer": "debug",  # ... and what the command line chose
        "data.val_fraction": 0.3,
    }
    assert hparams == pytest.approx(expected), hparams  # not every flattened key


def test_hparams_metric_is_named_by_the_monitored_metric(run) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    summary = run(["trainer=debug", "monitor.metric=val/acc", "monitor.mode=max"])
    events = EventAccumulator(summary["run_dir"])
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert not any(t.startswith("hp/") and t != "hp/val/acc" for t in scalars), scalars
    [best] = events.Scalars("hp/val/acc")
    assert best.value == pytest.approx(summary["monitor"]["best"])
    assert session_hparams(summary["run_dir"])["monitor.metric"] == "val/acc"


def test_the_summary_says_why_a_run_has_no_best_checkpoint(run, capsys) -> None:
    summary = run(["trainer=debug", "++trainer.check_val_every_n_epoch=5"])
    assert summary["best_checkpoint"] is None and summary["tested"] == "final weights"
    because = summary["no_best_because"]
    assert "val/loss was never logged" in because and "check_val_every_n_epoch" in because
    out = capsys.readouterr().out.replace("\n", "")
    assert f"best checkpoint: none: {because}" in out
    assert f"last checkpoint: {summary['last_checkpoint']}" in out
    assert "tested:          the final weights" in out
