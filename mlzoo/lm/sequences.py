"""Token sequences for causal LMs: packing prompt + response, log-probabilities, sampling.

``lm`` below is any module mapping token ids (B, T) to next-token logits (B, T, vocab): the zoo's
GPT or a Hugging Face causal LM behind mlzoo.lm.hf.HFCausalLM.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mlzoo.base.errors import ZooError

# Prompts whose greedy answers SFT and DPO show after each validation (TensorBoard's Text tab).
SHOWN = 4


def pack(tokenizer, prompts: Sequence[str], responses: Sequence[str]) -> tuple[Tensor, Tensor]:
    """Right-padded ids of "[bos] prompt response [eos]" (tokenizer.prompt_ids: a chat model's
    template around the prompt) and a mask of the response tokens (eos included): the tokens
    whose likelihood SFT trains and DPO compares."""
    seqs, masks = [], []
    for p, r in zip(prompts, responses, strict=True):
        prompt, response = tokenizer.prompt_ids(p), tokenizer.encode(r)
        seqs.append([*prompt, *response, tokenizer.eos_id])
        masks.append([False] * len(prompt) + [True] * (len(response) + 1))
    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), tokenizer.pad_id, dtype=torch.long)
    mask = torch.zeros(len(seqs), width, dtype=torch.bool)
    for i, (s, m) in enumerate(zip(seqs, masks, strict=True)):
        ids[i, : len(s)], mask[i, : len(m)] = torch.tensor(s), torch.tensor(m)
    return ids, mask


def check_context(splits: dict[str, list[dict]], tokenizer, max_len: int | None, fields) -> None:
    """Refuse, naming its file:line, an example longer than the model's context: "[bos] prompt
    response [eos]" feeds all but its last token to the model. Training and held-out alike."""
    if not max_len:
        return
    for split, rows in splits.items():
        for i, row in enumerate(rows):
            prompt = len(tokenizer.prompt_ids(row["prompt"]))
            longest = max((len(tokenizer.encode(row[f])) for f in fields if f in row), default=0)
            needed = prompt + longest  # the inputs: every token but the final eos
            if needed > max_len:
                where = row.get("_where") or f"the {split} split's example {i}"
                raise ZooError(
                    f"{where}: prompt and response take {needed} positions, longer than the "
                    f"model's context of {max_len}; shorten the example or use a larger context "
                    "(model.gpt.max_len for the zoo's GPT)"
                )


def token_logprobs(lm: nn.Module, ids: Tensor) -> Tensor:
    """log p(t_{i+1} | t_1..t_i) for i = 1..T-1: (B, T-1)."""
    logits = lm(ids[:, :-1]).float()
    return F.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)


def sequence_logprob(lm: nn.Module, ids: Tensor, response_mask: Tensor) -> Tensor:
    """log pi(y | x) = sum over the response's tokens of log p(y_t | x, y_<t): (B,)."""
    return (token_logprobs(lm, ids) * response_mask[:, 1:]).sum(-1)


def _token_by_token(
    lm: nn.Module, ids: Tensor, tokenizer, max_new_tokens: int, temperature: float, generator
) -> Tensor:
    """The prompts ``ids`` (B, T) extended token by token until every row has its eos."""
    done = torch.zeros(len(ids), dtype=torch.bool, device=ids.device)
    for _ in range(max_new_tokens):
        logits = lm(ids)[:, -1].float()
        logits[:, tokenizer.vocab_size :] = float("-inf")  # a model's vocab may be padded
        if temperature == 0:
            nxt = logits.argmax(-1)
        else:  # y_t ~ softmax(logits / T)
            probs = F.softmax(logits / temperature, dim=-1)
            nxt = torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1)
            nxt = nxt.to(ids.device)
        nxt = torch.where(done, torch.full_like(nxt, tokenizer.eos_id), nxt)
        ids = torch.cat([ids, nxt[:, None]], dim=1)
        done |= nxt == tokenizer.eos_id
        if bool(done.all()):
            break
    return ids


@torch.no_grad()
def sample(
    lm: nn.Module,
    tokenizer,
    prompts: Sequence[str],
    max_new_tokens: int = 8,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    batch_size: int = 64,
) -> list[str]:
    """One response per prompt, until eos: temperature 0 is greedy decoding. Prompts are
    batched by token length (at most ``batch_size`` a batch), so no padding is ever fed to the
    model. A Hugging Face model
    samples with transformers' generate (``lm.generate_ids``: a key/value cache instead of the
    whole sequence again at each token; ``generator`` is then not used)."""
    device = next(lm.parameters()).device
    by_length: dict[int, list[int]] = defaultdict(list)
    encoded = [tokenizer.prompt_ids(p) for p in prompts]
    for i, e in enumerate(encoded):
        by_length[len(e)].append(i)
    out: list[str] = [""] * len(prompts)
    batches = [
        rows[i : i + batch_size]
        for rows in by_length.values()
        for i in range(0, len(rows), batch_size)
    ]
    for indices in batches:
        ids = torch.tensor([encoded[i] for i in indices], device=device)
        start = ids.shape[1]
        if hasattr(lm, "generate_ids"):
            ids = lm.generate_ids(
                ids,
                max_new_tokens,
                temperature,
                tokenizer.eos_id,
                tokenizer.pad_id,
                tokenizer.vocab_size,
            )
        else:
            ids = _token_by_token(lm, ids, tokenizer, max_new_tokens, temperature, generator)
        for row, i in enumerate(indices):
            tokens = ids[row, start:].tolist()
            if tokenizer.eos_id in tokens:
                tokens = tokens[: tokens.index(tokenizer.eos_id)]
            out[i] = tokenizer.decode(tokens)
    return out


def greedy_right(
    lm: nn.Module, tokenizer, prompts: Sequence[str], score, budget: int, batch_size: int = 64
) -> Tensor:
    """1.0 where the greedy answer (temperature 0, ``budget`` new tokens) to a prompt is right,
    ``score(prompt, answer) == 0``, else 0.0: (len(prompts),)."""
    answers = sample(lm, tokenizer, prompts, budget, 0.0, batch_size=batch_size)
    return torch.tensor([score(p, y) == 0 for p, y in zip(prompts, answers, strict=True)]).float()
