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
"""

from __future__ import annotations

import random
import zlib


class ArithmeticTask:
    ALPHABET = "0123456789+="  # every character of prompts and right answers

    def __init__(self, p_correct: float = 0.3, max_error: int = 1, error_step: int = 10) -> None:
        if not 0.0 <= p_correct <= 1.0 or max_error < 1 or error_step < 1:
            raise ValueError(
                "need 0 <= p_correct <= 1, max_error >= 1 and error_step >= 1: "
                f"{p_correct}, {max_error}, {error_step}"
            )
        self.p_correct, self.max_error, self.error_step = p_correct, max_error, error_step

    @staticmethod
    def split_of(a: int, b: int) -> str:
        h = zlib.crc32(f"{a}+{b}".encode()) % 10
        return "test" if h == 0 else "val" if h == 1 else "train"

    def prompts(self, split: str) -> list[str]:
        return [
            f"{a:02d}+{b:02d}="
            for a in range(100)
            for b in range(100)
            if self.split_of(a, b) == split
        ]

    @staticmethod
    def truth(prompt: str) -> int:
        a, b = prompt.rstrip("=").split("+")
        return int(a) + int(b)

    def score(self, prompt: str, response: str) -> float:
        """-|response - a - b|; -100 when the response is not a number."""
        text = response.strip()
        if not text.isdigit() or len(text) > 4:
            return -100.0
        return -float(abs(int(text) - self.truth(prompt)))

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
