"""Text data for language-model fine-tuning: prompt/response examples (SFT) and preference pairs
(DPO), from JSONL files or the offline arithmetic task.

JSONL, one object per line, in the shapes that TRL and public preference sets use:

    SFT:         {"prompt": "...", "completion": "..."}     ("response" is accepted too)
    preferences: {"prompt": "...", "chosen": "...", "rejected": "..."}

Batches are lists of strings (``{"prompt": [...], "response": [...]}`` or ``{"prompt", "chosen",
"rejected"}``): the model tokenizes them with its own tokenizer. For the arithmetic task the data
module also offers ``task`` (the ground-truth scorer), which SFT and DPO use to score samples.

On-policy preference pairs (``pairs="on_policy"``, the arithmetic task): the training split holds
prompts only, and the pairs are made by the model being trained, which samples its own responses
before training starts (DPO's pre-stage, mlzoo/models/dpo.py) and hands them back with
:meth:`TextPairsDataModule.set_train_pairs`.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from mlzoo.base.errors import ZooError, fault, one_line
from mlzoo.data.base import EpochSampler
from mlzoo.lm.arithmetic import ArithmeticTask
from mlzoo.lm.tokenizer import DEFAULT_ALPHABET

KINDS = {"sft": ("prompt", "response"), "preference": ("prompt", "chosen", "rejected")}


def read_jsonl(path: Path, kind: str, option: str = "data.source") -> list[dict[str, str]]:
    """The examples of a JSONL file, each with its ``_where`` (file:line). Lines end at "\\n"
    only (JSON strings may hold U+2028 and other characters str.splitlines would split on);
    every bad line is reported as file:line with its reason, up to five in one message."""
    if not path.is_file():
        raise ZooError(f"{option}: no file {path}")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise fault(err, path, "read") from None
    need = KINDS[kind]
    fields = ", ".join(need) if kind == "preference" else "prompt, completion (or response)"
    rows, bad = [], []
    for n, raw in enumerate(data.split(b"\n"), 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            bad.append(f"{n}: not UTF-8 (byte {err.start + 1} of the line)")
            continue
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            bad.append(f"{n}: not JSON ({err.msg}, column {err.colno})")
            continue
        except RecursionError:  # thousands of nested [ or {: deeper than Python's stack
            bad.append(f"{n}: JSON nested too deeply to read")
            continue
        except ValueError as err:  # an integer of more digits than Python converts (4,300)
            bad.append(f"{n}: unreadable JSON ({one_line(str(err).split(';')[0], 120)})")
            continue
        if not isinstance(row, dict):
            bad.append(f"{n}: not a JSON object but {type(row).__name__}")
            continue
        if kind == "sft" and "response" not in row and "completion" in row:
            row["response"] = row["completion"]
        missing = [k for k in need if not isinstance(row.get(k), str)]
        if missing:
            name = "completion" if missing[0] == "response" else missing[0]
            bad.append(f"{n}: a {kind} line needs string fields {fields} ({name} is missing)")
            continue
        rows.append({**{k: row[k] for k in need}, "_where": f"{path}:{n}"})
    if bad:
        more = f" (and {len(bad) - 5} more bad lines)" if len(bad) > 5 else ""
        raise ZooError(f"{option}: " + "; ".join(f"{path}:{b}" for b in bad[:5]) + more)
    if not rows:
        raise ZooError(f"{option}: {path} holds no examples")
    return rows


def collate(rows: list[dict[str, Any]]) -> dict[str, list]:
    """A batch of strings per field (``_where``, a row's file:line, stays out of batches)."""
    return {key: [r[key] for r in rows] for key in rows[0] if not key.startswith("_")}


class TextPairsDataModule(L.LightningDataModule):
    """SFT examples or preference pairs; the model config sets ``kind``.

    Args:
        kind: ``sft`` (prompt, response) or ``preference`` (prompt, chosen, rejected).
        source: ``arithmetic`` (generated offline) or a .jsonl file.
        val_path, test_path: held-out JSONL files (else val_fraction/test_fraction of source).
        num_train, num_val, num_test: examples generated per split (arithmetic).
        p_correct, max_error, error_step: the arithmetic task's demonstrator
            (mlzoo/lm/arithmetic.py).
        data_seed: seed of generation and of the JSONL split (not the run's seed).
        pairs: ``offline`` (generated or read) or ``on_policy`` (sampled by the policy: see the
            module's docstring).
        prompt_format, answer, low: the arithmetic task's question, how an answer is read from
            a response, and the smallest operand (mlzoo/lm/arithmetic.py).
    """

    def __init__(
        self,
        kind: str = "sft",
        source: str = "arithmetic",
        val_path: str | None = None,
        test_path: str | None = None,
        batch_size: int = 64,
        num_train: int = 20_000,
        num_val: int = 500,
        num_test: int = 500,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        p_correct: float = 0.3,
        max_error: int = 1,
        error_step: int = 10,
        data_seed: int = 0,
        pairs: str = "offline",
        prompt_format: str = "{a:02d}+{b:02d}=",
        answer: str = "digits",
        low: int = 0,
    ) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ZooError(f"data.kind must be one of {sorted(KINDS)}, got {kind!r}")
        counts = {"batch_size": batch_size, "num_train": num_train, "num_val": num_val}
        for name, value in {**counts, "num_test": num_test}.items():
            if value < 1:
                raise ZooError(f"data.{name} must be >= 1, got {value}")
        for name, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0.0 <= frac < 1.0:
                raise ZooError(f"data.{name} must be in [0, 1), got {frac}")
        if pairs not in ("offline", "on_policy"):
            raise ZooError(f"data.pairs must be offline or on_policy, got {pairs!r}")
        if pairs == "on_policy" and (kind != "preference" or source != "arithmetic"):
            raise ZooError(
                "data.pairs=on_policy needs preference pairs on a task with a ground truth "
                "(model=dpo, data.source=arithmetic)"
            )
        self.kind, self.batch_size, self.pairs = kind, batch_size, pairs
        self.task: ArithmeticTask | None = None
        if source == "arithmetic":
            try:
                self.task = ArithmeticTask(
                    p_correct, max_error, error_step, prompt_format, answer, low
                )
            except ValueError as err:
                raise ZooError(f"data: {err}") from None
            make = self.task.sft_examples if kind == "sft" else self.task.preference_pairs
            if pairs == "on_policy":
                make = self._prompts
            self.splits = {
                split: make(split, n, data_seed + i)
                for i, (split, n) in enumerate(
                    (("train", num_train), ("val", num_val), ("test", num_test))
                )
            }
        else:
            rows = read_jsonl(Path(source).expanduser(), kind)
            val = read_jsonl(Path(val_path), kind, "data.val_path") if val_path else None
            test = read_jsonl(Path(test_path), kind, "data.test_path") if test_path else None
            random.Random(data_seed).shuffle(rows)
            n_test = 0 if test else max(1, int(len(rows) * test_fraction))
            n_val = 0 if val else max(1, int(len(rows) * val_fraction))
            if len(rows) - n_test - n_val < 1:
                raise ZooError(f"{source}: too few examples ({len(rows)}) to split")
            self.splits = {
                "test": test or rows[:n_test],
                "val": val or rows[n_test : n_test + n_val],
                "train": rows[n_test + n_val :],
            }

    def _prompts(self, split: str, n: int, seed: int) -> list[dict[str, str]]:
        """Training prompts without responses (n of them, distinct when the split has n)."""
        prompts = self.task.prompts(split)
        rng = random.Random(seed)
        chosen = rng.sample(prompts, n) if n <= len(prompts) else rng.choices(prompts, k=n)
        return [{"prompt": p} for p in chosen]

    def train_prompts(self) -> list[str]:
        return [row["prompt"] for row in self.splits["train"]]

    def set_train_pairs(self, pairs: list[dict[str, str]]) -> None:
        """The training pairs a policy sampled for :meth:`train_prompts` (on-policy pairs)."""
        if not pairs:
            raise ZooError(
                "data.pairs=on_policy: no prompt had both a right and a wrong sample; sample "
                "more responses a prompt (model.samples_per_prompt) or more prompts "
                "(data.num_train)"
            )
        self.splits["train"] = pairs

    @property
    def spec(self) -> dict[str, Any]:
        """The character tokenizer's alphabet: the task's own 12 characters (then a model cannot
        even spell an answer outside the task), or the default one plus any other character in
        the JSONL files."""
        if self.task is not None:
            return {"alphabet": ArithmeticTask.ALPHABET}
        texts = [
            v for rows in self.splits.values() for r in rows for k, v in r.items() if k[0] != "_"
        ]
        seen = {c for text in texts for c in text}
        extra = "".join(sorted(seen - set(DEFAULT_ALPHABET)))
        return {"alphabet": DEFAULT_ALPHABET + extra}

    def _loader(self, split: str, train: bool) -> DataLoader:
        rows = self.splits[split]
        sampler = EpochSampler(len(rows), seed=torch.initial_seed()) if train else None
        return DataLoader(rows, batch_size=self.batch_size, sampler=sampler, collate_fn=collate)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)
