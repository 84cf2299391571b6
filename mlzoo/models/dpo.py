"""DPO: fine-tune a language model on preference pairs, without a reward model or an RL loop.

Rafailov, Sharma, Mitchell, Ermon, Manning & Finn (2023), "Direct Preference Optimization: Your
Language Model is Secretly a Reward Model"; IPO: Azar et al. (2023); conservative DPO (label
smoothing): Mitchell (2023); the NLL term: Pang et al. (2024), "Iterative Reasoning Preference
Optimization" (TRL's rpo_alpha).

RLHF maximises E[r(x, y)] - beta * KL(pi || pi_ref): a learned reward, kept close to a reference
policy pi_ref (the SFT model). Its optimum is pi*(y|x) proportional to pi_ref(y|x) exp(r(x, y) /
beta), so a policy defines its own implicit reward r(x, y) = beta * log pi(y|x) / pi_ref(y|x) (up
to a term that depends on x alone). Put into the Bradley-Terry model of preferences, p(y_w > y_l)
= sigmoid(r(x, y_w) - r(x, y_l)), the x-only term cancels and preference learning becomes a
classification loss on the policy itself:

    h    = (log pi(y_w|x) - log pi_ref(y_w|x)) - (log pi(y_l|x) - log pi_ref(y_l|x))
    L    = -log sigmoid(beta * h)                                              (DPO)
    L_ls = -(1 - eps) log sigmoid(beta * h) - eps * log sigmoid(-beta * h)     (conservative DPO)
    L    = (h - 1 / (2 * beta))^2                                              (IPO)

with log pi(y|x) summed over the response's tokens only. At the start pi = pi_ref, so h = 0 and
the DPO loss is log 2. The loss only asks for a bigger gap between chosen and rejected, and it is
happy to lower both: on the arithmetic task (chosen and rejected differ in one digit) plain DPO
learns to stop after the first digit. ``nll_weight`` alpha adds the chosen response's negative
log-likelihood per token, L + alpha * (-log pi(y_w|x) / |y_w|), which keeps the chosen likely. Logged: the loss; the implicit rewards of chosen and rejected responses,
beta * (log pi - log pi_ref); reward accuracy (chosen > rejected) and margin; and, on responses
the policy samples for held-out prompts, KL(pi || pi_ref) estimated as the mean of log pi(y|x) -
log pi_ref(y|x). With a ground truth (the arithmetic task), ``val/win_rate``: how often the
policy's sample scores better than the reference's for the same prompt (ties count half).
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from mlzoo.core.errors import ZooError
from mlzoo.core.module import OptimizerFactory, SchedulerFactory, ZooModule
from mlzoo.lm.sequences import check_context, pack, sample, sequence_logprob

LOSSES = ("sigmoid", "ipo")


def dpo_loss(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    ref_chosen: Tensor,
    ref_rejected: Tensor,
    beta: float,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-pair loss and the implicit rewards of the chosen and rejected responses, from summed
    sequence log-probabilities."""
    chosen_reward = beta * (policy_chosen - ref_chosen)  # r(x, y_w) = beta log pi / pi_ref
    rejected_reward = beta * (policy_rejected - ref_rejected)
    h = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    if loss_type == "sigmoid":  # -(1 - eps) log sigmoid(beta h) - eps log sigmoid(-beta h)
        loss = -(1 - label_smoothing) * F.logsigmoid(beta * h) - label_smoothing * F.logsigmoid(
            -beta * h
        )
    elif loss_type == "ipo":  # (h - 1 / (2 beta))^2
        loss = (h - 1 / (2 * beta)) ** 2
    else:
        raise ValueError(f"loss_type must be one of {LOSSES}, got {loss_type!r}")
    return loss, chosen_reward.detach(), rejected_reward.detach()


class DPOModule(ZooModule):
    """DPO on a policy initialised from an SFT checkpoint, against a frozen copy of it."""

    def __init__(
        self,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        sft_checkpoint: str = "newest:sft-arithmetic",
        log_dir: str = "logs",
        beta: float = 0.1,
        loss_type: str = "sigmoid",
        label_smoothing: float = 0.0,
        nll_weight: float = 0.0,
        precompute_reference: bool = False,
        max_new_tokens: int = 8,
        temperature: float = 1.0,
    ) -> None:
        super().__init__(optimizer, scheduler)
        self.save_hyperparameters(ignore=["optimizer", "scheduler"], logger=False)
        if beta <= 0 or loss_type not in LOSSES or not 0 <= label_smoothing < 0.5:
            raise ZooError(
                f"model: need beta > 0, loss_type in {LOSSES}, 0 <= label_smoothing < 0.5; got "
                f"{beta}, {loss_type!r}, {label_smoothing}"
            )
        from mlzoo.core.checkpoint import load_checkpoint, resolve_checkpoint
        from mlzoo.models.sft import SFTModule

        path = resolve_checkpoint(sft_checkpoint, log_dir, "model.sft_checkpoint")
        sft, _, _ = load_checkpoint(path)
        if not isinstance(sft, SFTModule):
            raise ZooError(
                f"model.sft_checkpoint: {path} is a {type(sft).__name__}, not an SFT run"
            )
        self.hparams["sft_checkpoint"] = str(Path(path).resolve())  # reloads use this file
        self.tokenizer = sft.tokenizer
        self.policy = sft.lm.train()  # pi_theta starts as the SFT model ...
        self.reference = copy.deepcopy(sft.lm).requires_grad_(False).eval()  # ... pi_ref stays
        self._ref_cache: dict[tuple[str, str, str], tuple[float, float]] = {}

    def train(self, mode: bool = True) -> DPOModule:
        super().train(mode)
        self.reference.eval()  # always: no dropout in the reference
        return self

    def param_groups(self) -> list[dict]:
        return [{"params": [p for p in self.policy.parameters() if p.requires_grad]}]

    def logprobs(self, lm, prompts: list[str], responses: list[str]) -> Tensor:
        ids, mask = (t.to(self.device) for t in pack(self.tokenizer, prompts, responses))
        return sequence_logprob(lm, ids, mask)

    def _pair_logprobs(self, lm, batch: dict[str, list[str]]) -> tuple[Tensor, Tensor]:
        """log pi(y_w|x), log pi(y_l|x) in one forward pass over chosen and rejected."""
        n = len(batch["prompt"])
        both = self.logprobs(lm, batch["prompt"] * 2, batch["chosen"] + batch["rejected"])
        return both[:n], both[n:]

    @torch.no_grad()
    def _reference_logprobs(self, batch: dict[str, list[str]]) -> tuple[Tensor, Tensor]:
        if not self.hparams.precompute_reference or not self.training:
            return self._pair_logprobs(self.reference, batch)
        keys = list(zip(batch["prompt"], batch["chosen"], batch["rejected"], strict=True))
        values = torch.tensor([self._ref_cache[k] for k in keys], device=self.device)
        return values[:, 0], values[:, 1]

    def setup(self, stage: str) -> None:
        splits = getattr(self.trainer.datamodule, "splits", None) if self._trainer else None
        if splits:  # an example longer than the context fails here, by file:line, not mid-run
            max_len = getattr(self.policy, "max_len", None)
            check_context(splits, self.tokenizer, max_len, ["chosen", "rejected"])

    def on_fit_start(self) -> None:
        """precompute_reference: log pi_ref of every training pair once, before training (saves
        two reference passes per step; the reference still samples for val/kl)."""
        if not self.hparams.precompute_reference or self._ref_cache:
            return
        for batch in self.trainer.datamodule.train_dataloader():
            with torch.no_grad():
                chosen, rejected = self._pair_logprobs(self.reference, batch)
            keys = zip(batch["prompt"], batch["chosen"], batch["rejected"], strict=True)
            for key, c, r in zip(keys, chosen.tolist(), rejected.tolist(), strict=True):
                self._ref_cache[key] = (c, r)

    def _step(self, batch: dict[str, list[str]], stage: str) -> Tensor:
        hp, n = self.hparams, len(batch["prompt"])
        pi_w, pi_l = self._pair_logprobs(self.policy, batch)
        ref_w, ref_l = self._reference_logprobs(batch)
        losses, r_w, r_l = dpo_loss(
            pi_w, pi_l, ref_w, ref_l, hp.beta, hp.loss_type, hp.label_smoothing
        )
        loss = losses.mean()
        if hp.nll_weight:  # + alpha * NLL of the chosen response, per token
            tokens = torch.tensor(
                [len(self.tokenizer.encode(y)) + 1 for y in batch["chosen"]], device=self.device
            )
            loss = loss + hp.nll_weight * (-pi_w / tokens).mean()
        on_step = stage == "train"
        metrics = {
            "loss": loss,
            "chosen_reward": r_w.mean(),
            "rejected_reward": r_l.mean(),
            "reward_accuracy": (r_w > r_l).float().mean(),
            "reward_margin": (r_w - r_l).mean(),
        }
        for key, value in metrics.items():
            self.log(
                f"{stage}/{key}",
                value,
                on_step=on_step,
                on_epoch=True,
                batch_size=n,
                prog_bar=key == "loss",
                sync_dist=not on_step,
            )
        return loss

    def training_step(self, batch: dict[str, list[str]], batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    @torch.no_grad()
    def compare_samples(self, prompts: list[str]) -> dict[str, Tensor]:
        """Sample y ~ pi and y' ~ pi_ref for each prompt: the KL estimate mean(log pi(y|x) -
        log pi_ref(y|x)) and, with a ground truth, the policy's win rate against the reference."""
        hp = self.hparams
        mine = sample(self.policy, self.tokenizer, prompts, hp.max_new_tokens, hp.temperature)
        kl = self.logprobs(self.policy, prompts, mine) - self.logprobs(
            self.reference, prompts, mine
        )
        out = {"kl": kl.mean()}
        task = getattr(self.trainer.datamodule, "task", None) if self._trainer else None
        if task is not None:
            theirs = sample(
                self.reference, self.tokenizer, prompts, hp.max_new_tokens, hp.temperature
            )
            s = torch.tensor([task.score(p, y) for p, y in zip(prompts, mine, strict=True)])
            s_ref = torch.tensor([task.score(p, y) for p, y in zip(prompts, theirs, strict=True)])
            out["win_rate"] = ((s > s_ref).float() + 0.5 * (s == s_ref).float()).mean()
            out["score"], out["correct"] = s.mean(), (s == 0).float().mean()
            out["reference_correct"] = (s_ref == 0).float().mean()
        return out

    def _evaluate(self, batch: dict[str, list[str]], stage: str) -> None:
        self._step(batch, stage)
        n = len(batch["prompt"])
        for key, value in self.compare_samples(batch["prompt"]).items():
            self.log(
                f"{stage}/{key}", value, batch_size=n, sync_dist=True, prog_bar=key == "win_rate"
            )

    def validation_step(self, batch: dict[str, list[str]], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, list[str]], batch_idx: int) -> None:
        self._evaluate(batch, "test")
