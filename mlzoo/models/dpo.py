"""DPO: fine-tune a language model on preference pairs, without a reward model or an RL loop.

Rafailov, Sharma, Mitchell, Ermon, Manning & Finn (2023), "Direct Preference Optimization: Your
Language Model is Secretly a Reward Model"; IPO: Azar et al. (2023); conservative DPO (label
smoothing): Mitchell (2023); robust DPO: Chowdhury, Kini & Natarajan (2024); the NLL term: Pang
et al. (2024), "Iterative Reasoning Preference Optimization" (TRL's rpo_alpha).

RLHF maximises E[r(x, y)] - beta * KL(pi || pi_ref): a learned reward, kept close to a reference
policy pi_ref (the SFT model). Its optimum is pi*(y|x) proportional to pi_ref(y|x) exp(r(x, y) /
beta), so a policy defines its own implicit reward r(x, y) = beta * log pi(y|x) / pi_ref(y|x) (up
to a term that depends on x alone). Put into the Bradley-Terry model of preferences, p(y_w > y_l)
= sigmoid(r(x, y_w) - r(x, y_l)), the x-only term cancels and preference learning becomes a
classification loss on the policy itself:

    h    = (log pi(y_w|x) - log pi_ref(y_w|x)) - (log pi(y_l|x) - log pi_ref(y_l|x))
    L    = -log sigmoid(beta * h)                                              (DPO)
    L_ls = -(1 - eps) log sigmoid(beta * h) - eps * log sigmoid(-beta * h)     (conservative DPO)
    L_r  = (-(1 - eps) log sigmoid(beta h) + eps log sigmoid(-beta h)) / (1 - 2 eps)  (robust)
    L    = (h_tok - 1 / (2 * beta))^2                                          (IPO)

with log pi(y|x) summed over the response's tokens only; h_tok is h with each response's
log-ratio divided by its number of tokens (the IPO authors' form, as TRL computes it);
``ipo_sum`` uses h itself. At the start pi = pi_ref, so h = 0 and the DPO loss is log 2.

The loss only asks for a bigger gap between chosen and rejected, and it is happy to lower both:
on the arithmetic task (chosen and rejected differ in one digit) plain DPO learns to stop after
the first digit. ``nll_weight`` alpha adds the chosen response's negative log-likelihood per
token, L + alpha * (-log pi(y_w|x) / |y_w|), which keeps the chosen likely.

Logged: the loss; the implicit rewards of chosen and rejected responses, beta * (log pi - log
pi_ref); reward accuracy (chosen > rejected) and margin; and, on responses the policy samples for
held-out prompts, KL(pi || pi_ref) estimated as the mean of log pi(y|x) - log pi_ref(y|x). With a
ground truth (the arithmetic task), ``val/win_rate``: how often the policy's sample scores better
than the reference's for the same prompt (ties count half), and ``acc``: how often its
greedy answer is right (``reference_acc``: the reference's).

The concept is built from a policy network pi_theta (token ids -> next-token logits), its
tokenizer, and optionally the reference pi_ref; without one, pi_ref is the policy as it starts,
frozen: a LoRA policy's base (the same network with its adapter switched off, no second copy in
memory), else a frozen copy. A run's config names where the policy comes from (mlzoo/run/parts.py
loads it): an SFT run's checkpoint (``model.sft_checkpoint``; pi_ref: that SFT model, frozen) or a
pretrained Hugging Face model (``model.policy``: ``smollm2``, a folder or a hub name) with a LoRA
adapter (``model.lora``, through peft). In Python::

    sft = mlzoo.load("logs/runs/sft-arithmetic/<run>/checkpoints/last.ckpt")
    model = DPOModule(torch.optim.AdamW, policy=sft.lm, tokenizer=sft.tokenizer)

On-policy pairs (the online / iterative DPO recipe: Xiong et al. 2024, Guo et al. 2024), with
``data.pairs=on_policy``: before training, for each training prompt x, sample k responses
y_1..y_k ~ pi_ref(.|x), score them with the task's ground truth, and pair each right response
(chosen) with a wrong one (rejected). A prompt whose k samples are all right or all wrong
gives no pair. The pairs are what the model itself says, so DPO moves probability between
responses the model actually produces.
"""

from __future__ import annotations

import contextlib
import copy
import time
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mlzoo.base.errors import ZooError
from mlzoo.base.module import OptimizerFactory, SchedulerFactory, ZooModule
from mlzoo.base.tensorboard import log_table
from mlzoo.lm.policy import TrainedWeightsOnly, exported_policy
from mlzoo.lm.sequences import (
    SHOWN,
    check_context,
    greedy_right,
    pack,
    sample,
    sequence_logprob,
)

LOSSES = ("sigmoid", "robust", "ipo", "ipo_sum")
# Lightning's warning, as fit starts, about modules in eval mode (pi_ref's are, by design)
EVAL_MODE_WARNING = r"Found \d+ module\(s\) in eval mode at the start of training"


def dpo_loss(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    ref_chosen: Tensor,
    ref_rejected: Tensor,
    beta: float,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
    chosen_tokens: Tensor | None = None,
    rejected_tokens: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-pair loss and the implicit rewards of the chosen and rejected responses, from summed
    sequence log-probabilities (``*_tokens``: the responses' lengths, for ``ipo``)."""
    chosen_reward = beta * (policy_chosen - ref_chosen)  # r(x, y_w) = beta log pi / pi_ref
    rejected_reward = beta * (policy_rejected - ref_rejected)
    h = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    eps = label_smoothing
    if loss_type == "sigmoid":  # -(1 - eps) log sigmoid(beta h) - eps log sigmoid(-beta h)
        loss = -(1 - eps) * F.logsigmoid(beta * h) - eps * F.logsigmoid(-beta * h)
    elif loss_type == "robust":  # the flipped-label term enters with + and the sum is rescaled
        loss = (-(1 - eps) * F.logsigmoid(beta * h) + eps * F.logsigmoid(-beta * h)) / (1 - 2 * eps)
    elif loss_type == "ipo":  # (h_tok - 1 / (2 beta))^2, log-ratios per response token
        if chosen_tokens is None or rejected_tokens is None:
            raise ValueError("loss_type ipo needs chosen_tokens and rejected_tokens")
        h_tok = (policy_chosen - ref_chosen) / chosen_tokens - (
            policy_rejected - ref_rejected
        ) / rejected_tokens
        loss = (h_tok - 1 / (2 * beta)) ** 2
    elif loss_type == "ipo_sum":  # (h - 1 / (2 beta))^2
        loss = (h - 1 / (2 * beta)) ** 2
    else:
        raise ValueError(f"loss_type must be one of {LOSSES}, got {loss_type!r}")
    return loss, chosen_reward.detach(), rejected_reward.detach()


def on_policy_pairs(
    prompts: list[str], responses: list[list[str]], score
) -> tuple[list[dict[str, str]], int]:
    """Pairs of (right, wrong) responses to the same prompt, each response used once, and how
    many prompts gave at least one pair. ``score(prompt, response) == 0``: right."""
    pairs, prompts_paired = [], 0
    for prompt, ys in zip(prompts, responses, strict=True):
        right = [y for y in ys if score(prompt, y) == 0]
        wrong = [y for y in ys if score(prompt, y) != 0]
        prompts_paired += bool(right and wrong)
        for chosen, rejected in zip(right, wrong, strict=False):  # as many as the smaller side
            pairs.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    return pairs, prompts_paired


class AdapterOff:
    """pi_ref as a view of a LoRA policy with its adapter switched off: the base weights W alone,
    with no second copy in memory. Not an nn.Module, so that its weights are neither saved twice
    nor trained."""

    def __init__(self, lm: nn.Module) -> None:
        self.lm = lm

    def parameters(self):
        return self.lm.parameters()

    def eval(self) -> AdapterOff:
        return self

    def __call__(self, ids: Tensor) -> Tensor:
        with self.lm.hf.disable_adapter():  # peft: h = W x, without + (alpha / r) B A x
            return self.lm(ids)

    def generate_ids(self, *args, **kwargs) -> Tensor:
        with self.lm.hf.disable_adapter():
            return self.lm.generate_ids(*args, **kwargs)

    @property
    def max_len(self) -> int | None:
        return self.lm.max_len


def frozen_reference(policy: nn.Module, reference: nn.Module | None = None) -> Any:
    """pi_ref, which never trains: ``reference`` frozen; without one, the policy as it starts: its
    base with the LoRA adapter off when it has one (HFCausalLM with peft), else a frozen copy."""
    if reference is None and getattr(policy, "has_adapter", False):
        return AdapterOff(policy)
    reference = copy.deepcopy(policy) if reference is None else reference
    return reference.requires_grad_(False).eval()


class DPOModule(TrainedWeightsOnly, ZooModule):
    """DPO on ``policy`` against ``reference`` (default: the policy as it starts, frozen)."""

    def __init__(
        self,
        optimizer: OptimizerFactory,
        policy: nn.Module,
        tokenizer: Any,
        reference: nn.Module | None = None,
        scheduler: SchedulerFactory | None = None,
        beta: float = 0.1,
        loss_type: str = "sigmoid",
        label_smoothing: float = 0.0,
        nll_weight: float = 0.0,
        precompute_reference: bool = False,
        samples_per_prompt: int = 4,
        max_new_tokens: int = 8,
        temperature: float = 1.0,
        sample_batch_size: int = 64,
        long_budget: int = 0,
    ) -> None:
        super().__init__(optimizer, scheduler)
        ignore = ["optimizer", "scheduler", "policy", "tokenizer", "reference"]
        self.save_hyperparameters(ignore=ignore, logger=False)
        if beta <= 0 or loss_type not in LOSSES or not 0 <= label_smoothing < 0.5:
            raise ZooError(
                f"model: need beta > 0, loss_type in {LOSSES}, 0 <= label_smoothing < 0.5; got "
                f"{beta}, {loss_type!r}, {label_smoothing}"
            )
        if samples_per_prompt < 2:
            raise ZooError(f"model.samples_per_prompt must be >= 2, got {samples_per_prompt}")
        self.tokenizer = tokenizer
        self.policy = policy.train()  # pi_theta, the only network that trains
        self.reference = frozen_reference(policy, reference)  # pi_ref
        self._ref_cache: dict[tuple[str, str, str], tuple[float, float]] = {}
        self._ref_greedy: dict[str, float] = {}  # pi_ref's greedy answer right (1.0) or not
        self.pairs_sampled: list[dict[str, str]] | None = None
        self._long_prompts: list[str] = []  # test prompts for the long-budget reference pass

    def train(self, mode: bool = True) -> DPOModule:
        super().train(mode)
        self.reference.eval()  # always: no dropout in the reference
        return self

    def param_groups(self) -> list[dict]:
        return [{"params": [p for p in self.policy.parameters() if p.requires_grad]}]

    def exported_hf(self) -> tuple[Any, Any] | None:
        return exported_policy(self.policy, self.tokenizer)

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
        splits = getattr(self.attached_datamodule, "splits", None)
        if splits:  # an example longer than the context fails here, by file:line, not mid-run
            max_len = getattr(self.policy, "max_len", None)
            check_context(splits, self.tokenizer, max_len, ["chosen", "rejected"])

    def on_fit_start(self) -> None:
        # pi_ref stays in eval mode (no dropout in the reference), so Lightning warns as training
        # starts; a warnings filter is its documented way to mark a PossibleUserWarning intended.
        # Scoped: this fit's start only, and only while every module outside pi_ref trains.
        if all(m.training for n, m in self.named_modules() if n.split(".")[0] != "reference"):
            from lightning.pytorch.utilities.warnings import PossibleUserWarning

            warnings.filterwarnings("ignore", EVAL_MODE_WARNING, PossibleUserWarning)
            self._eval_mode_filter = warnings.filters[0]
        datamodule = self.trainer.datamodule
        if getattr(datamodule, "pairs", "offline") == "on_policy":
            if self.pairs_sampled is None:  # a resumed run keeps the pairs it trained on
                self.pairs_sampled = self.sample_pairs(datamodule.train_prompts(), datamodule.task)
            datamodule.set_train_pairs(self.pairs_sampled)
        if self.hparams.precompute_reference and not self._ref_cache:
            self._precompute_reference(datamodule.train_dataloader())

    def on_train_start(self) -> None:  # Lightning has checked the modules' modes by now
        self._drop_eval_mode_filter()
        super().on_train_start()

    def teardown(self, stage: str) -> None:  # (a fit that failed before training started)
        self._drop_eval_mode_filter()
        super().teardown(stage)

    def _drop_eval_mode_filter(self) -> None:
        entry, self._eval_mode_filter = getattr(self, "_eval_mode_filter", None), None
        with contextlib.suppress(ValueError):
            warnings.filters.remove(entry)

    @torch.no_grad()
    def sample_pairs(self, prompts: list[str], task) -> list[dict[str, str]]:
        """The on-policy pre-stage: k samples y ~ pi_ref(.|x) a prompt, paired right against
        wrong by the ground truth. Its cost and yield go to the logger (pairs/...)."""
        hp, k, start = self.hparams, self.hparams.samples_per_prompt, time.perf_counter()
        flat = sample(
            self.reference,
            self.tokenizer,
            [p for p in prompts for _ in range(k)],
            hp.max_new_tokens,
            hp.temperature,
            batch_size=hp.sample_batch_size,
        )
        responses = [flat[i * k : (i + 1) * k] for i in range(len(prompts))]
        pairs, paired = on_policy_pairs(prompts, responses, task.score)
        right = sum(
            task.score(p, y) == 0 for p, ys in zip(prompts, responses, strict=True) for y in ys
        )
        stats = {
            "pairs/seconds": time.perf_counter() - start,
            "pairs/samples": float(len(flat)),
            "pairs/pairs": float(len(pairs)),
            "pairs/prompts_paired": paired / len(prompts),
            "pairs/sample_accuracy": right / len(flat),
        }
        if self.logger is not None:
            self.logger.log_metrics(stats, step=0)
        print(  # the pre-stage takes minutes: say what it did
            f"on-policy pairs: {len(pairs)} pairs from {len(flat)} samples of {len(prompts)} "
            f"prompts in {stats['pairs/seconds']:.0f} s ({stats['pairs/sample_accuracy']:.1%} "
            "of the samples right)",
            flush=True,
        )
        return pairs

    def _precompute_reference(self, loader) -> None:
        """log pi_ref of every training pair once, before training (saves the two reference
        passes of each step; the reference still samples for val/kl)."""
        for batch in loader:
            with torch.no_grad():
                chosen, rejected = self._pair_logprobs(self.reference, batch)
            keys = zip(batch["prompt"], batch["chosen"], batch["rejected"], strict=True)
            for key, c, r in zip(keys, chosen.tolist(), rejected.tolist(), strict=True):
                self._ref_cache[key] = (c, r)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        if self.pairs_sampled is not None:
            checkpoint["on_policy_pairs"] = self.pairs_sampled

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        pairs = checkpoint.get("on_policy_pairs")
        if isinstance(pairs, list):
            self.pairs_sampled = pairs

    def _step(self, batch: dict[str, list[str]], stage: str) -> Tensor:
        hp, n = self.hparams, len(batch["prompt"])
        pi_w, pi_l = self._pair_logprobs(self.policy, batch)
        ref_w, ref_l = self._reference_logprobs(batch)
        tokens_w, tokens_l = (  # response tokens, eos included
            torch.tensor([len(self.tokenizer.encode(y)) + 1 for y in batch[k]], device=self.device)
            for k in ("chosen", "rejected")
        )
        losses, r_w, r_l = dpo_loss(
            pi_w, pi_l, ref_w, ref_l, hp.beta, hp.loss_type, hp.label_smoothing, tokens_w, tokens_l
        )
        loss = losses.mean()
        if hp.nll_weight:  # + alpha * NLL of the chosen response, per token
            loss = loss + hp.nll_weight * (-pi_w / tokens_w).mean()
        metrics = {
            "loss": loss,
            "chosen_reward": r_w.mean(),
            "rejected_reward": r_l.mean(),
            "reward_accuracy": (r_w > r_l).float().mean(),
            "reward_margin": (r_w - r_l).mean(),
        }
        self.log_stage(stage, metrics, batch_size=n)
        return loss

    def training_step(self, batch: dict[str, list[str]], batch_idx: int) -> Tensor:
        loss = self._step(batch, "train")
        opt = self.optimizers()
        opt.zero_grad()
        self.manual_backward(loss)  # dL/dtheta: the policy's only; the reference stays frozen
        self.clip_manual(opt)  # to trainer.gradient_clip_val, when it is set
        opt.step()  # theta <- the optimizer's update from dL/dtheta
        self.step_lr_schedule()
        return loss.detach()

    @torch.no_grad()
    def compare_samples(self, prompts: list[str]) -> dict[str, Tensor]:
        """Sample y ~ pi and y' ~ pi_ref for each prompt: the KL estimate mean(log pi(y|x) -
        log pi_ref(y|x)) and, with a ground truth, the policy's win rate against the reference
        and both models' greedy accuracy."""
        hp = self.hparams
        mine = sample(self.policy, self.tokenizer, prompts, hp.max_new_tokens, hp.temperature)
        kl = self.logprobs(self.policy, prompts, mine) - self.logprobs(
            self.reference, prompts, mine
        )
        out = {"kl": kl.mean()}
        task = getattr(self.attached_datamodule, "task", None)
        if task is not None:
            theirs = sample(
                self.reference, self.tokenizer, prompts, hp.max_new_tokens, hp.temperature
            )
            s = torch.tensor([task.score(p, y) for p, y in zip(prompts, mine, strict=True)])
            s_ref = torch.tensor([task.score(p, y) for p, y in zip(prompts, theirs, strict=True)])
            out["win_rate"] = ((s > s_ref).float() + 0.5 * (s == s_ref).float()).mean()
            out["score"], out["correct"] = s.mean(), (s == 0).float().mean()
            out["reference_correct"] = (s_ref == 0).float().mean()
            out["acc"], out["reference_acc"] = self.greedy_accuracy(prompts, task)
        return out

    def greedy_accuracy(self, prompts: list[str], task) -> tuple[Tensor, Tensor]:
        """The share of prompts whose greedy answer (temperature 0) is right: policy, reference
        (whose greedy answers never change: each prompt's is computed once)."""
        budget = self.hparams.max_new_tokens
        mine = greedy_right(self.policy, self.tokenizer, prompts, task.score, budget)
        todo = [p for p in prompts if p not in self._ref_greedy]
        if todo:
            theirs = greedy_right(self.reference, self.tokenizer, todo, task.score, budget)
            self._ref_greedy.update(zip(todo, theirs.tolist(), strict=True))
        return mine.mean(), torch.tensor([self._ref_greedy[p] for p in prompts]).mean()

    def _evaluate(self, batch: dict[str, list[str]], stage: str) -> None:
        if "chosen" in batch:  # held-out pairs (on-policy runs hold out prompts only)
            self._step(batch, stage)
        n, task = len(batch["prompt"]), getattr(self.trainer.datamodule, "task", None)
        if stage == "test" and self.hparams.long_budget and task is not None:
            self._long_prompts.extend(batch["prompt"])  # answered at the epoch's end, batched
        for key, value in self.compare_samples(batch["prompt"]).items():
            prog = key in ("win_rate", "acc")
            self.log(f"{stage}/{key}", value, batch_size=n, sync_dist=True, prog_bar=prog)

    def on_test_epoch_end(self) -> None:
        """The reference with room to work the sum out in words (``long_budget`` new tokens):
        learning to answer in the asked format, told apart from learning to add. All test
        prompts at once, so that generation runs in batches of ``sample_batch_size``."""
        prompts, self._long_prompts = self._long_prompts, []
        task = getattr(self.trainer.datamodule, "task", None)
        if not prompts or task is None:
            return
        hp = self.hparams
        right = greedy_right(
            self.reference, self.tokenizer, prompts, task.score, hp.long_budget,
            hp.sample_batch_size,
        )  # fmt: skip
        self.log(f"test/reference_acc_{hp.long_budget}_tokens", right.mean(), sync_dist=True)

    def validation_step(self, batch: dict[str, list[str]], batch_idx: int) -> None:
        self._evaluate(batch, "val")
        if batch_idx == 0:  # a few greedy answers, policy beside reference, in the Text tab
            prompts, budget = batch["prompt"][:SHOWN], self.hparams.max_new_tokens
            mine = sample(self.policy, self.tokenizer, prompts, budget, 0.0)
            theirs = sample(self.reference, self.tokenizer, prompts, budget, 0.0)
            log_table(self, "val/samples", {"prompt": prompts, "policy": mine, "reference": theirs})

    def test_step(self, batch: dict[str, list[str]], batch_idx: int) -> None:
        self._evaluate(batch, "test")
