"""The policy language model: the zoo's small GPT, or any Hugging Face causal LM."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor, nn

from mlzoo.core.errors import ZooError
from mlzoo.lm.tokenizer import DEFAULT_ALPHABET, CharTokenizer, HFTokenizer
from mlzoo.nets.gpt import GPT


class HFCausalLM(nn.Module):
    """A transformers causal LM (AutoModelForCausalLM) as ids -> logits."""

    def __init__(self, name_or_path: str) -> None:
        super().__init__()
        try:
            from transformers import AutoModelForCausalLM
        except ImportError:
            raise ZooError(
                "model.policy: a Hugging Face model needs `pip install transformers`"
            ) from None
        try:
            self.hf = AutoModelForCausalLM.from_pretrained(name_or_path)
        except OSError as err:  # not on disk and no network
            first = str(err).strip().splitlines()[0]
            raise ZooError(f"model.policy: cannot load {name_or_path!r}: {first[:200]}") from None

    @property
    def vocab_size(self) -> int:
        return int(self.hf.config.vocab_size)

    @property
    def max_len(self) -> int | None:
        """The context length (positions the model was built for), when the config says."""
        return getattr(self.hf.config, "max_position_embeddings", None)

    def forward(self, ids: Tensor) -> Tensor:
        return self.hf(input_ids=ids).logits


def build_tokenizer(kind: str, policy: str, alphabet: str = DEFAULT_ALPHABET):
    if kind == "char":
        return CharTokenizer(alphabet)
    if kind == "hf":
        return HFTokenizer(policy)
    raise ZooError(f"model.tokenizer must be char or hf, got {kind!r}")


def build_lm(policy: str, tokenizer, gpt: dict[str, Any] | None = None) -> nn.Module:
    """``gpt``: the zoo's GPT sized by ``gpt``; anything else: a Hugging Face hub name or folder."""
    if policy == "gpt":
        return GPT(tokenizer.vocab_size, **(gpt or {}))
    lm = HFCausalLM(
        str(Path(policy).expanduser()) if Path(policy).expanduser().exists() else policy
    )
    if lm.vocab_size < tokenizer.vocab_size:
        raise ZooError(
            f"model.policy {policy}: vocabulary of {lm.vocab_size} < the tokenizer's "
            f"{tokenizer.vocab_size}"
        )
    return lm
