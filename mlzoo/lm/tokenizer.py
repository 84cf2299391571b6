"""Tokenizers: characters for the offline tasks, or a Hugging Face tokenizer for HF models.

Both give the same small interface: ``encode(text) -> ids``, ``decode(ids) -> text`` and the ids
of the padding, beginning- and end-of-sequence tokens. A training sequence is
``[bos] prompt response [eos]``, right-padded with ``pad`` in a batch.
"""

from __future__ import annotations

from mlzoo.base.errors import ZooError

SPECIALS = ("<pad>", "<bos>", "<eos>")
DEFAULT_ALPHABET = "0123456789+-*=?,.:;!'() abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


class CharTokenizer:
    """One token per character of ``alphabet``, after <pad>, <bos> and <eos> (ids 0, 1, 2)."""

    def __init__(self, alphabet: str = DEFAULT_ALPHABET) -> None:
        if len(set(alphabet)) != len(alphabet):
            raise ValueError("tokenizer alphabet has repeated characters")
        self.itos = [*SPECIALS, *alphabet]
        self.stoi = {c: i for i, c in enumerate(self.itos) if i >= len(SPECIALS)}
        self.pad_id, self.bos_id, self.eos_id = 0, 1, 2

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        try:
            return [self.stoi[c] for c in text]
        except KeyError as err:
            raise ZooError(
                f"character {err.args[0]!r} in {text[:40]!r} is not in the tokenizer's alphabet "
                "(model.alphabet)"
            ) from None

    def decode(self, ids: list[int]) -> str:
        return "".join(self.itos[i] for i in ids if i >= len(SPECIALS))

    def prompt_ids(self, prompt: str) -> list[int]:
        return [self.bos_id, *self.encode(prompt)]


class HFTokenizer:
    """A Hugging Face tokenizer (AutoTokenizer) behind the same interface.

    ``chat``: ``auto`` applies the tokenizer's chat template when it has one; ``true`` requires
    one; ``false`` never applies it. With the template, eos is the end of the assistant's turn
    (the template's own end-of-turn token), so a response ends where the model would stop."""

    def __init__(self, policy: str, download: bool = False, chat: str | bool = "auto") -> None:
        from mlzoo.lm.hf import load_tokenizer

        if chat not in ("auto", True, False):
            raise ZooError(f"model.chat must be auto, true or false, got {chat!r}")
        self.tok = load_tokenizer(policy, download)
        has_template = bool(getattr(self.tok, "chat_template", None))
        if chat is True and not has_template:
            raise ZooError(
                f"model.chat=true: the tokenizer of {policy!r} has no chat template "
                "(model.chat=auto or false prompts it with plain text)"
            )
        self.chat = has_template and chat is not False
        eos = self.tok.eos_token_id
        self.eos_id = eos
        self.bos_id = self.tok.bos_token_id if self.tok.bos_token_id is not None else eos
        self.pad_id = self.tok.pad_token_id if self.tok.pad_token_id is not None else eos

    @property
    def vocab_size(self) -> int:
        return len(self.tok)

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False)

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=True)

    def prompt_ids(self, prompt: str) -> list[int]:
        if not self.chat:
            return [self.bos_id, *self.encode(prompt)]
        text = self.tok.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        return self.tok.encode(text, add_special_tokens=False)
