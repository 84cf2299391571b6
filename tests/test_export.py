"""scripts/export.py --format onnx|torchscript: every exportable network, run by onnxruntime and
by torch.jit.load, gives the PyTorch module's outputs within 1e-4 on a batch size it was not
traced with; an exported RL policy plays its environment as the checkpoint does; the exporter
writes what a model declares (exported_networks, exported_facts, exported_hf), for a concept it
has never heard of too."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mlzoo.base.errors import ZooError
from mlzoo.base.module import Exported, ZooModule
from mlzoo.run.export import export, exported
from mlzoo.run.load import load_checkpoint

from conftest import load_script, run_training

RUNS = {
    "mlp": ["model=mlp"],
    "cnn": ["model=cnn"],
    "rnn": ["model=rnn"],
    "transfer": ["experiment=transfer_imagenet", "model.mode=lora"],  # Lite0 with LoRA layers
    "autoencoder": ["model=autoencoder"],
    "vae": ["model=vae", "callbacks.sample_quality.num_samples=16"],
    "ddpm": ["model=ddpm", "data.image_size=16", "callbacks.sample_quality.num_samples=16"],
    "dqn": ["model=dqn"],
    "ppo": ["model=ppo"],
}


def outputs(result) -> list[np.ndarray]:
    items = result if isinstance(result, list | tuple) else [result]
    return [np.asarray(r.detach() if isinstance(r, torch.Tensor) else r) for r in items]


@pytest.mark.parametrize("concept", list(RUNS))
def test_exported_networks_match_pytorch(concept: str, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    export = load_script("export")
    summary = run_training([*RUNS[concept], "trainer=debug", "logger=none"], tmp_path / "logs")
    ckpt = summary["last_checkpoint"]
    model, _, _ = load_checkpoint(ckpt)
    for fmt in ("onnx", "torchscript"):
        out = tmp_path / fmt
        assert export.main([ckpt, "--format", fmt, "-o", str(out)]) == 0
        manifest = json.loads((out / "export.json").read_text())
        for name, (module, inputs, in_names, _) in model.exported_networks().items():
            big = tuple(torch.cat([x, x, x[:1]]) for x in inputs)  # batch 5: traced with 2
            with torch.no_grad():
                want = outputs(module.eval()(*big))
                if name == "net":  # the exported network is the model (LoRA folded in)
                    np.testing.assert_allclose(want[0], model(*big).numpy(), atol=1e-4)
            file = out / manifest["networks"][name]["file"]
            if fmt == "onnx":
                session = ort.InferenceSession(str(file), providers=["CPUExecutionProvider"])
                feed = {n: x.numpy() for n, x in zip(in_names, big, strict=True)}
                got = session.run(None, feed)
            else:
                got = outputs(torch.jit.load(str(file))(*big))
            assert len(got) == len(want), (concept, name, fmt)
            for g, w in zip(got, want, strict=True):
                np.testing.assert_allclose(g, w, atol=1e-4, rtol=1e-4, err_msg=f"{name} {fmt}")


def test_an_exported_policy_plays_as_the_checkpoint_does(tmp_path: Path) -> None:
    """PPO on CartPole, greedy: the ONNX policy's episode returns equal the checkpoint's."""
    ort = pytest.importorskip("onnxruntime")
    from mlzoo.rl.episodes import run_episodes

    export = load_script("export")
    overrides = ["model=ppo", "trainer=debug", "model.normalize_obs=true", "logger=none"]
    summary = run_training(overrides, tmp_path / "logs")
    ckpt = summary["last_checkpoint"]
    assert export.main([ckpt, "--format", "onnx", "-o", str(tmp_path / "onnx")]) == 0
    model, envs, _ = load_checkpoint(ckpt)
    session = ort.InferenceSession(str(tmp_path / "onnx" / "policy.onnx"))

    def onnx_act(obs: torch.Tensor):
        return int(session.run(None, {"obs": obs.numpy()})[0][0])

    states = torch.randn(256, 4, generator=torch.Generator().manual_seed(0)) * 2
    exported = session.run(None, {"obs": states.numpy()})[0]
    assert (exported == model.act(states).numpy()).all()  # normalised as the agent does
    mine = run_episodes(envs.make_env(0), onnx_act, 3, seed=0)
    theirs = run_episodes(envs.make_env(0), lambda o: int(model.act(o)[0]), 3, seed=0)
    assert mine == theirs


def test_export_refuses_what_it_cannot_write(tmp_path: Path, capsys) -> None:
    export = load_script("export")
    summary = run_training(["model=simclr", "trainer=debug", "logger=none"], tmp_path / "logs")
    mlp = run_training(["model=mlp", "trainer=debug", "logger=none"], tmp_path / "logs2")
    (tmp_path / "taken").mkdir()
    cases = [
        ([summary["last_checkpoint"], "--format", "onnx"], "no exportable network"),
        ([summary["last_checkpoint"], "--format", "hf"], "no Hugging Face policy"),
        ([mlp["last_checkpoint"], "--format", "onnx", "-o", str(tmp_path / "taken")], "exists"),
        ([str(tmp_path / "missing.ckpt"), "--format", "torchscript"], "no checkpoint file"),
    ]
    for args, message in cases:
        assert export.main(args) == 1
        err = capsys.readouterr().err
        assert err.startswith("error:") and message in err, (args, err)
    assert not (Path(summary["run_dir"]) / "export").exists()
    assert not list((tmp_path / "taken").iterdir())


class Scaler(ZooModule):
    """A concept the exporter has never heard of: one network and one fact."""

    def __init__(self) -> None:
        super().__init__(torch.optim.SGD)
        self.lin = torch.nn.Linear(3, 2)

    def exported_networks(self) -> dict[str, Exported]:
        return {"scaler": Exported(self.lin, (torch.rand(2, 3),), ["x"], ["y"])}

    def exported_facts(self) -> dict:
        return {"scale": 2.0}


class FakeHF:
    """Stands for a transformers model or tokenizer: records the dtype and the folder."""

    dtype = None

    def to(self, dtype):
        self.dtype = dtype
        return self

    def save_pretrained(self, out: Path) -> None:
        (out / f"{type(self).__name__}-{id(self)}").write_text(str(self.dtype))


class Chat(ZooModule):
    def __init__(self) -> None:
        super().__init__(torch.optim.SGD)
        self.hf, self.tok = FakeHF(), FakeHF()

    def exported_hf(self):
        return self.hf, self.tok


def test_the_exporter_writes_what_a_model_declares(tmp_path: Path) -> None:
    model = Scaler().eval()
    export(model, tmp_path, "torchscript")
    manifest = json.loads((tmp_path / "export.json").read_text())
    assert manifest == {
        "format": "torchscript",
        "networks": {
            "scaler": {
                "file": "scaler.pt",
                "inputs": {"x": [[3], "torch.float32"]},
                "outputs": ["y"],
            }
        },
        "scale": 2.0,
    }
    x = torch.rand(5, 3)
    torch.testing.assert_close(torch.jit.load(str(tmp_path / "scaler.pt"))(x), model.lin(x))

    chat = Chat()
    (tmp_path / "hf").mkdir()
    export(chat, tmp_path / "hf", "hf", "bfloat16")
    assert chat.hf.dtype == torch.bfloat16
    assert sorted(f.read_text() for f in (tmp_path / "hf").iterdir()) == ["None", "torch.bfloat16"]


def test_a_model_that_exports_nothing_in_a_format_says_what_it_does_export() -> None:
    cases = [
        (Scaler(), "hf", "Scaler has no Hugging Face policy or model to export; it exports "
         "--format onnx or torchscript (scaler)"),
        (Chat(), "onnx", "--format onnx: Chat has no exportable network; it exports --format hf"),
        (ZooModule(torch.optim.SGD), "torchscript", "ZooModule has no exportable network; it "
         "exports nothing"),
    ]  # fmt: skip
    for model, fmt, message in cases:
        with pytest.raises(ZooError) as caught:
            exported(model, fmt)
        assert message in str(caught.value) and "\n" not in str(caught.value)
