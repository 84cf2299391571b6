"""An offline preference task with a programmatic ground truth: adding two-digit numbers.

A prompt is "ab+cd=" (operands zero-padded, so every prompt has 6 characters) and the ground
truth is the sum. The score of a response is -|response - sum| (0 for the right answer; -100 for
a response that is not a number), a stand-in for the reward model or human label that real
preference data comes from.

Supervised demonstrations are noisy on purpose, like the mediocre demonstrations RLHF starts
from: the right sum with probability ``p_correct``, else a slip, the sum off by k * ``error_step``
with k in 1..``max_error`` and a random sign (by default off by 10: a dropped or extra carry). A
model fine-tuned on them (SFT) answers right only about that often. Preference pairs are two
such responses to one prompt, the higher-scoring one "chosen" (ties are skipped), as in the DPO
paper's controlled-sentiment task where pairs were ranked by a ground-truth classifier.

Prompts are split into train/val/test by a fixed hash of the operands, so held-out prompts are
never seen in training, whatever the seed.

For a pretrained chat model the prompt is a question (``prompt_format``, e.g. "What is {a} +
{b}? Answer with the number only.") and the answer read from a response is its last number
(``answer="last_number"``), so that "17 + 25 = 42" counts as 42 and "To solve this, we need to"
as no answer.
"""

from __future__ import annotations

import random
import re
import zlib

ANSWERS = ("digits", "last_number")


class ArithmeticTask:
    ALPHABET = "0123456789+="  # every character of prompts and right answers

    def __init__(
        self,
        p_correct: float = 0.3,
        max_error: int = 1,
        error_step: int = 10,
        prompt_format: str = "{a:02d}+{b:02d}=",
        answer: str = "digits",
        low: int = 0,
    ) -> None:
        if not 0.0 <= p_correct <= 1.0 or max_error < 1 or error_step < 1:
            raise ValueError(
                "need 0 <= p_correct <= 1, max_error >= 1 and error_step >= 1: "
                f"{p_correct}, {max_error}, {error_step}"
            )
        if not 0 <= low <= 99:
            raise ValueError(f"low (the smallest operand) must be in 0..99, got {low}")
        if answer not in ANSWERS:
            raise ValueError(f"answer must be one of {ANSWERS}, got {answer!r}")
        try:
            sample = prompt_format.format(a=12, b=34)
        except (KeyError, IndexError, ValueError) as err:
            raise ValueError(f"prompt_format {prompt_format!r}: {err!r}") from None
        if re.findall(r"\d+", sample)[:2] != ["12", "34"]:
            raise ValueError(
                f"prompt_format {prompt_format!r} must show {{a}} then {{b}} as its first numbers"
            )
        self.p_correct, self.max_error, self.error_step = p_correct, max_error, error_step
        self.prompt_format, self.answer, self.low = prompt_format, answer, low

    @staticmethod
    def split_of(a: int, b: int) -> str:
        h = zlib.crc32(f"{a}+{b}".encode()) % 10
        return "test" if h == 0 else "val" if h == 1 else "train"

    def prompts(self, split: str) -> list[str]:
        return [
            self.prompt_format.format(a=a, b=b)
            for a in range(self.low, 100)
            for b in range(self.low, 100)
            if self.split_of(a, b) == split
        ]

    @staticmethod
    def truth(prompt: str) -> int:
        a, b = re.findall(r"\d+", prompt)[:2]  # the operands: the prompt's first two numbers
        return int(a) + int(b)

    def answer_of(self, response: str) -> int | None:
        """The number a response gives: all of it (``digits``) or its last number."""
        text = response.strip()
        if self.answer == "last_number":
            numbers = re.findall(r"\d+", text)
            text = numbers[-1] if numbers else ""
        return int(text) if text.isdigit() and len(text) <= 4 else None

    def score(self, prompt: str, response: str) -> float:
        """-|answer - a - b|; -100 when the response gives no number."""
        answer = self.answer_of(response)
        return -100.0 if answer is None else -float(abs(answer - self.truth(prompt)))

    def demonstration(self, prompt: str, rng: random.Random) -> str:
        """A noisy demonstration: right with probability p_correct, else off by a slip."""
        answer = self.truth(prompt)
        if rng.random() >= self.p_correct:
            error = rng.randint(1, self.max_error) * self.error_step * rng.choice((-1, 1))
            answer = answer + error if answer + error >= 0 else answer - error
        return str(answer)

    def sft_examples(self, split: str, n: int, seed: int) -> list[dict[str, str]]:
        rng, prompts = random.Random(seed), self.prompts(split)
        out = []
        for _ in range(n):
            p = rng.choice(prompts)
            out.append({"prompt": p, "response": self.demonstration(p, rng)})
        return out

    def preference_pairs(self, split: str, n: int, seed: int) -> list[dict[str, str]]:
        rng, prompts, out = random.Random(seed), self.prompts(split), []
        while len(out) < n:
            p = rng.choice(prompts)
            y1, y2 = self.demonstration(p, rng), self.demonstration(p, rng)
            s1, s2 = self.score(p, y1), self.score(p, y2)
            if s1 != s2:  # ties carry no preference
                chosen, rejected = (y1, y2) if s1 > s2 else (y2, y1)
                out.append({"prompt": p, "chosen": chosen, "rejected": rejected})
        return out
