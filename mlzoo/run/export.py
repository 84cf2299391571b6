"""Exporting a trained zoo model: its networks as ONNX or TorchScript files, or an SFT/DPO
policy as a Hugging Face folder with its LoRA adapter merged (scripts/export.py is the command
line; its docstring lists what each model exports)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn


def hf_policy(model):
    """(the HFCausalLM, its HFTokenizer) of an SFT or DPO module on a Hugging Face policy."""
    from mlzoo.base.errors import ZooError
    from mlzoo.lm.hf import HFCausalLM

    lm = getattr(model, "policy", None) or getattr(model, "lm", None)
    if not isinstance(lm, HFCausalLM):
        raise ZooError(
            f"--format hf: the checkpoint's {type(model).__name__} has no Hugging Face policy "
            "(only SFT and DPO runs with model.policy=smollm2, a folder or a hub name)"
        )
    return lm, model.tokenizer


def export_hf(model, out: Path, dtype: str) -> None:
    import torch

    lm, tokenizer = hf_policy(model)
    hf = lm.hf.merge_and_unload() if lm.has_adapter else lm.hf  # W <- W + (alpha / r) B A
    hf.to(getattr(torch, dtype)).save_pretrained(out)
    tokenizer.tok.save_pretrained(out)  # with its chat template


def graphs(model) -> dict[str, tuple[Any, tuple, list[str], list[str]]]:
    """The exportable networks of a zoo model: name -> (module, example inputs, input names,
    output names)."""
    import torch

    from mlzoo.base.errors import ZooError
    from mlzoo.base.supervised import SupervisedModule
    from mlzoo.models.autoencoder import AutoencoderModule
    from mlzoo.models.ddpm import DDPMModule
    from mlzoo.models.dqn import DQNModule
    from mlzoo.models.ppo import PPOModule
    from mlzoo.models.vae import VAEModule
    from mlzoo.nets.lora import folded

    hp = model.hparams
    gen = torch.Generator().manual_seed(0)

    def batch(shape, n: int = 2):
        return torch.rand(n, *[int(d) for d in shape], generator=gen)

    if isinstance(model, SupervisedModule):  # LoRA layers (transfer) folded into W
        return {"net": (folded(model.net), (batch(hp.input_shape),), ["x"], ["out"])}
    if isinstance(model, VAEModule):
        z = torch.randn(2, model.latent_dim, generator=gen)
        return {
            "encoder": (Halves(model.encoder), (batch(hp.input_shape),), ["x"], ["mu", "logvar"]),
            "decoder": (Sigmoid(model.decoder), (z,), ["z"], ["probs"]),
        }
    if isinstance(model, AutoencoderModule):
        x = batch(hp.input_shape)
        with torch.no_grad():
            z = model.encoder(x)
        return {
            "encoder": (model.encoder, (x,), ["x"], ["z"]),
            "decoder": (Sigmoid(model.decoder), (z,), ["z"], ["x_hat"]),
        }
    if isinstance(model, DDPMModule):
        x = batch(model.shape) * 2 - 1
        t = torch.randint(0, model.T, (2,), generator=gen)
        if model.conditional:
            y = torch.randint(0, model.num_classes, (2,), generator=gen)
            return {"denoiser": (model.ema.module, (x, t, y), ["x_t", "t", "y"], ["eps"])}
        return {"denoiser": (model.ema.module, (x, t), ["x_t", "t"], ["eps"])}
    if isinstance(model, DQNModule | PPOModule):
        obs = batch(hp.observation_shape)
        if isinstance(model, DQNModule) and model.obs_dtype == torch.uint8:  # Atari frames
            obs = (obs * 255).to(torch.uint8)
        second = "q" if isinstance(model, DQNModule) else "logits_or_mean"
        return {"policy": (Policy(model), (obs,), ["obs"], ["action", second])}
    raise ZooError(
        f"--format onnx/torchscript: {type(model).__name__} has no exportable network here "
        "(supervised models, autoencoder, VAE, DDPM, DQN and PPO do; SFT/DPO on a Hugging Face "
        "policy: --format hf)"
    )


class Halves(nn.Module):
    """The VAE's encoder as x -> (mu, logvar): its output split in two along the features."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, x):
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar


class Sigmoid(nn.Module):
    """A decoder of pixel logits as z -> pixel probabilities in [0, 1]."""

    def __init__(self, decoder: nn.Module) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, z):
        return self.decoder(z).sigmoid()


class Policy(nn.Module):
    """DQN / PPO as raw observation -> (greedy action, Q-values or logits / mean). Holds the
    agent's networks and statistics, not the agent (a LightningModule does not trace)."""

    def __init__(self, agent) -> None:
        super().__init__()
        from mlzoo.models.dqn import DQNModule

        self.dqn = isinstance(agent, DQNModule)
        if self.dqn:
            self.q = agent.q
            return
        self.encoder, self.actor, self.obs_rms = agent.encoder, agent.actor, agent.obs_rms
        self.discrete, self.clip_obs = agent.discrete, float(agent.hparams.clip_obs)
        if not self.discrete:
            self.register_buffer("low", agent.low.clone())
            self.register_buffer("high", agent.high.clone())

    def forward(self, obs):
        import torch

        if self.dqn:
            q = self.q(obs)
            return q.argmax(dim=1), q
        x = obs.float()
        if self.obs_rms is not None:  # the running statistics of training, frozen
            x = self.obs_rms.normalize(x, self.clip_obs)
        out = self.actor(self.encoder(x))
        if self.discrete:
            return out.argmax(dim=-1), out
        return torch.max(torch.min(out, self.high), self.low), out


def export_graphs(model, out: Path, fmt: str) -> None:
    """Each network to out/<name>.onnx or .pt (traced: the batch size is free), and export.json."""
    import torch

    from mlzoo.base.errors import ZooError

    manifest = {"format": fmt, "networks": {}}
    for name, (module, inputs, in_names, out_names) in graphs(model).items():
        module.eval()
        file = out / f"{name}.{'onnx' if fmt == 'onnx' else 'pt'}"
        try:
            with torch.no_grad():
                if fmt == "onnx":
                    batch = torch.export.Dim("batch", min=1)
                    torch.onnx.export(
                        module,
                        inputs,
                        file,
                        input_names=in_names,
                        output_names=out_names,
                        dynamic_shapes=[{0: batch} for _ in inputs],
                        dynamo=True,
                        verbose=False,
                    )
                else:
                    torch.jit.save(torch.jit.trace(module, inputs, check_trace=False), file)
        except ImportError as err:
            raise ZooError(f"--format {fmt} needs {err.name or err}: {ONNX_EXTRA}") from None
        manifest["networks"][name] = {
            "file": file.name,
            "inputs": {
                n: [list(x.shape[1:]), str(x.dtype)] for n, x in zip(in_names, inputs, strict=True)
            },
            "outputs": out_names,
        }
    if hasattr(model, "target_std") and getattr(model, "task", "") == "regression":
        manifest["target_mean"], manifest["target_std"] = model.target_mean, model.target_std
    (out / "export.json").write_text(json.dumps(manifest, indent=2) + "\n")


EXPORTERS = {  # format -> writer(model, folder, dtype)
    "hf": export_hf,
    "onnx": lambda model, out, dtype: export_graphs(model, out, "onnx"),
    "torchscript": lambda model, out, dtype: export_graphs(model, out, "torchscript"),
}
ONNX_EXTRA = "pip install 'mlzoo[export]' (onnx, onnxscript; onnxruntime to run the file)"
