"""One side of `python benchmarks/run.py dpo`: DPO training steps on a Hugging Face model with
LoRA, by the zoo (DPOModule under Lightning's Trainer, as train.py runs it) or by TRL's
DPOTrainer, timed step by step. Prints one JSON line.

    python benchmarks/dpo_worker.py zoo --model DIR --pairs pairs.jsonl --steps 10 --batch 8
    python benchmarks/dpo_worker.py trl --model DIR --pairs pairs.jsonl --steps 10 --batch 8

Both: the same folder's weights in float32 (TRL's defaults bf16=True and
gradient_checkpointing=True are turned off: the zoo does neither on a CPU), the same LoRA (peft) on the same modules, the
reference as the same network with the adapter off, recomputed every step (TRL's default:
precompute_ref_log_probs=False; the zoo's precompute_reference=false), sigmoid loss with beta
0.1, AdamW at a constant learning rate without weight decay, no gradient clipping, the same pairs
with the same chat-formatted prompts. A step's time runs from the moment its batch is in hand to
the end of its optimizer step (the zoo tokenizes inside its step, so that is counted; TRL
tokenizes the data set before training, which is not).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

LORA = {
    "r": 16,
    "alpha": 32,
    "dropout": 0.0,
    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}
BETA, LR = 0.1, 5e-4


def read_pairs(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_zoo(args: argparse.Namespace, pairs: list[dict[str, str]]) -> tuple[list[float], float]:
    import lightning as L
    import torch
    from torch.utils.data import DataLoader

    from mlzoo.lm.models import build_lm, build_tokenizer
    from mlzoo.models.dpo import DPOModule

    times: list[float] = []

    class StepTimes(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            self.start = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            times.append(time.perf_counter() - self.start)

    tokenizer = build_tokenizer("hf", str(args.model))  # its chat template, as train.py's
    model = DPOModule(  # pi_ref: the same network with the adapter off
        functools.partial(torch.optim.AdamW, lr=LR, weight_decay=0.0),
        policy=build_lm(str(args.model), tokenizer, lora=LORA),
        tokenizer=tokenizer,
        beta=BETA,
    )

    def collate(rows):
        return {k: [r[k] for r in rows] for k in ("prompt", "chosen", "rejected")}

    loader = DataLoader(pairs, batch_size=args.batch, shuffle=True, collate_fn=collate)
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=args.steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[StepTimes()],
    )
    trainer.fit(model, train_dataloaders=loader)
    tok = model.tokenizer  # tokens a pair: the prompt twice, each response and its eos
    tokens = [
        2 * len(tok.prompt_ids(r["prompt"])) + len(tok.encode(r["chosen"] + r["rejected"])) + 2
        for r in pairs
    ]
    return times, sum(tokens) / len(tokens)


def run_trl(args: argparse.Namespace, pairs: list[dict[str, str]]) -> tuple[list[float], float]:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    chat = [  # the prompt as the zoo sends it: through the chat template
        {
            **r,
            "prompt": tokenizer.apply_chat_template(
                [{"role": "user", "content": r["prompt"]}],
                tokenize=False,
                add_generation_prompt=True,
            ),
        }
        for r in pairs
    ]
    times: list[float] = []

    class StepTimes(TrainerCallback):
        def on_step_begin(self, targs, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, targs, state, control, **kwargs):
            times.append(time.perf_counter() - self.start)

    config = DPOConfig(
        output_dir=str(args.work / "trl"),
        per_device_train_batch_size=args.batch,
        max_steps=args.steps,
        learning_rate=LR,
        lr_scheduler_type="constant",
        weight_decay=0.0,
        max_grad_norm=0.0,
        beta=BETA,
        loss_type=["sigmoid"],
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        use_cpu=True,
        bf16=False,  # TRL's defaults (bf16, gradient checkpointing), off: the zoo's float32
        gradient_checkpointing=False,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    peft = LoraConfig(
        r=LORA["r"],
        lora_alpha=LORA["alpha"],
        lora_dropout=LORA["dropout"],
        target_modules=LORA["target_modules"],
        bias="none",
        task_type="CAUSAL_LM",
    )
    trainer = DPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(args.model),
        args=config,
        train_dataset=Dataset.from_list(chat),
        processing_class=tokenizer,
        peft_config=peft,
        callbacks=[StepTimes()],
    )
    trainer.train()
    data = trainer.train_dataset  # as TRL tokenized it (eos after each response)
    tokens = [
        2 * len(row["prompt_ids"]) + len(row["chosen_ids"]) + len(row["rejected_ids"])
        for row in data
    ]
    return times, sum(tokens) / len(tokens)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("library", choices=["zoo", "trl"])
    p.add_argument("--model", type=Path, required=True, help="a Hugging Face model folder")
    p.add_argument("--pairs", type=Path, required=True, help="JSONL of prompt/chosen/rejected")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--work", type=Path, default=Path("/tmp"), help="scratch folder (TRL's)")
    args = p.parse_args(argv)
    import resource

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    pairs = read_pairs(args.pairs)
    times, tokens = (run_zoo if args.library == "zoo" else run_trl)(args, pairs)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    out = {"library": args.library, "step_seconds": times, "tokens_per_pair": tokens}
    print(json.dumps({**out, "peak_gib": peak}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
