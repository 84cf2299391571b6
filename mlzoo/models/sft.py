"""Supervised fine-tuning (SFT): teach a language model to answer prompts by imitating
demonstrations, the first stage of RLHF and of DPO (Ouyang et al. 2022; Rafailov et al. 2023).

A demonstration is a prompt x and a response y. The model is trained to maximise the likelihood
of the response given the prompt, token by token,

    L_SFT = -(1 / |y|) * sum_t log pi_theta(y_t | x, y_<t)

with the loss masked to the response: the prompt's tokens are context, not targets. The concept is
built from a network ``lm`` (token ids -> next-token logits) and its tokenizer. A run's config names
them (mlzoo/run/parts.py builds them): the zoo's small GPT (mlzoo/nets/gpt.py) or any Hugging Face
causal LM (``model.policy``: ``smollm2`` offline, a hub name or a local folder; ``model.lora``:
train a LoRA adapter through peft instead of every weight). In Python::

    tokenizer = CharTokenizer()
    model = SFTModule(torch.optim.AdamW, GPT(tokenizer.vocab_size, max_len=32), tokenizer)

On the offline arithmetic task (mlzoo/lm/arithmetic.py) the demonstrations are
right only 30% of the time, so the SFT model is a deliberately mediocre starting point: its
samples are scored by the ground truth (``val/correct``, ``val/score``; ``val/acc`` for
greedy answers) for DPO to improve on.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mlzoo.base.module import OptimizerFactory, SchedulerFactory, ZooModule
from mlzoo.base.tensorboard import log_table
from mlzoo.lm.policy import TrainedWeightsOnly, exported_policy
from mlzoo.lm.sequences import SHOWN, check_context, greedy_right, pack, sample, token_logprobs


class SFTModule(TrainedWeightsOnly, ZooModule):
    """Next-token cross-entropy on the response tokens of prompt + response."""

    def __init__(
        self,
        optimizer: OptimizerFactory,
        lm: nn.Module,
        tokenizer: Any,
        scheduler: SchedulerFactory | None = None,
        max_new_tokens: int = 8,
        temperature: float = 1.0,
    ) -> None:
        super().__init__(optimizer, scheduler)
        ignore = ["optimizer", "scheduler", "lm", "tokenizer"]
        self.save_hyperparameters(ignore=ignore, logger=False)
        self.lm, self.tokenizer = lm, tokenizer

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lm(ids)

    def exported_hf(self) -> tuple[Any, Any] | None:
        return exported_policy(self.lm, self.tokenizer)

    def setup(self, stage: str) -> None:
        splits = getattr(self.attached_datamodule, "splits", None)
        if splits:  # an example longer than the context fails here, by file:line, not mid-run
            check_context(splits, self.tokenizer, getattr(self.lm, "max_len", None), ["response"])

    def loss(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        ids, mask = (t.to(self.device) for t in pack(self.tokenizer, prompts, responses))
        logp = token_logprobs(self.lm, ids)  # log pi(t_{i+1} | t_<=i)
        target = mask[:, 1:].float()  # only the response's tokens (and eos) are targets
        return -(logp * target).sum() / target.sum()  # L_SFT, per response token

    def training_step(self, batch: dict[str, list[str]], batch_idx: int) -> torch.Tensor:
        loss = self.loss(batch["prompt"], batch["response"])
        n = len(batch["prompt"])
        self.log_stage("train", {"loss": loss}, batch_size=n)
        opt = self.optimizers()
        opt.zero_grad()
        self.manual_backward(loss)  # dL/dtheta: LoRA's factors, or every weight
        self.clip_manual(opt)  # to trainer.gradient_clip_val, when it is set
        opt.step()  # theta <- the optimizer's update from dL/dtheta
        self.step_lr_schedule()
        return loss.detach()

    def _evaluate(self, batch: dict[str, list[str]], stage: str) -> None:
        n = len(batch["prompt"])
        loss = self.loss(batch["prompt"], batch["response"])
        self.log_stage(stage, {"loss": loss, "ppl": loss.exp()}, batch_size=n)
        task = getattr(self.trainer.datamodule, "task", None)
        if task is not None:  # the ground truth scores the model's own samples
            hp = self.hparams
            responses = sample(
                self.lm, self.tokenizer, batch["prompt"], hp.max_new_tokens, hp.temperature
            )
            scores = torch.tensor(
                [task.score(p, r) for p, r in zip(batch["prompt"], responses, strict=True)]
            )
            correct = (scores == 0).float().mean()
            self.log_stage(stage, {"score": scores.mean(), "correct": correct}, batch_size=n)
            right = greedy_right(
                self.lm, self.tokenizer, batch["prompt"], task.score, hp.max_new_tokens
            )
            accuracy = right.mean()
            self.log_stage(stage, {"acc": accuracy}, ("acc",), batch_size=n)

    def validation_step(self, batch: dict[str, list[str]], batch_idx: int) -> None:
        self._evaluate(batch, "val")
        if batch_idx == 0:  # a few greedy answers per validation, in TensorBoard's Text tab
            prompts = batch["prompt"][:SHOWN]
            answers = sample(self.lm, self.tokenizer, prompts, self.hparams.max_new_tokens, 0.0)
            log_table(self, "val/samples", {"prompt": prompts, "answer": answers})

    def test_step(self, batch: dict[str, list[str]], batch_idx: int) -> None:
        self._evaluate(batch, "test")
