"""RLModule: what every agent shares, so that a concept file (DQN, PPO) holds only its algorithm.

An agent steps its environments itself; the data module (mlzoo.rl.envs.EnvDataModule) only builds
them. Here, once:

- the environments, attached in ``setup`` (``self.envs``: the training vector env,
  ``self.eval_env``: one evaluation env), the observation each training env is at (``obs``), and
  ``step_envs``: one step of every training env, counted in ``env_steps`` and its finished
  episodes logged;
- the greedy evaluation (``evaluate``: ``eval_episodes`` deterministic episodes), logged as
  ``val/return`` by the validation step and as ``test/return`` by the test step;
- the checkpoint state: environment steps, the current observations (when the env state itself is
  in the checkpoint: classic control), and what the concept adds (``extra_state``: DQN's replay
  buffer, PPO's reward-scaling returns);
- the per-epoch LR schedule, for a concept that takes one;
- ``count_iteration``: how a training iteration reaches the trainer's step count.

A concept writes ``act`` (observations -> actions), ``training_step`` (collect experience, then
its own updates) and, if its actions need it, ``env_action``.

The updates. An agent takes thousands of small updates per run (DQN: 128 per 256 env steps), so
it steps the torch optimizer itself, as CleanRL writes it: ``opt = self.optimizers(
use_pl_optimizer=False)``, then ``opt.zero_grad(); loss.backward(); clip_grad_norm_(...);
opt.step()`` per update, clipped by the concept's own ``model.max_grad_norm`` (so
``trainer.gradient_clip_val`` is refused for it). Lightning's optimizer wrapper would run every
callback's hooks around each update. The trainer's step (``trainer.global_step``: checkpoints are
written when it has moved, ``trainer.max_steps`` stops on it) counts the training iterations that
updated the agent (``count_iteration``); the agent counts its updates itself (DQN's ``updates``)
and logs against environment steps. The torch optimizer does no fp16 loss scaling and no DDP
gradient sync, so an agent trains in one process, at 32-bit or bf16 precision; several
processes or fp16 mixed precision are refused in one line.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from mlzoo.base.errors import ZooError
from mlzoo.base.module import OptimizerFactory, SchedulerFactory, ZooModule
from mlzoo.base.tensorboard import log_scalars
from mlzoo.rl.episodes import run_episodes


class EnvStep(NamedTuple):
    """What one step of the training envs returns, per env (numpy arrays, first axis: envs)."""

    reward: np.ndarray
    terminated: np.ndarray  # the episode ended for good: no future to bootstrap
    truncated: np.ndarray  # cut by a time limit: the future still counts
    final_obs: np.ndarray  # s' of this transition: the next observation, or an episode's last


class RLModule(ZooModule):
    """Base class of the agents: environments, evaluation, checkpoint state (see module docs)."""

    def __init__(
        self, optimizer: OptimizerFactory, scheduler: SchedulerFactory | None = None
    ) -> None:
        super().__init__(optimizer, scheduler)
        self.env_steps = 0  # environment steps taken by all training envs together
        self._obs: np.ndarray | None = None  # None: start from the envs' reset observations
        self.envs: Any = None
        self.eval_env: Any = None
        self.envs_in_checkpoint = False

    # --- the environments -------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        """Attach the data module's environments (it has built them in its own setup)."""
        trainer = self.trainer
        if stage == "fit" and (
            trainer.world_size > 1 or str(trainer.precision) in ("16-mixed", "16")
        ):
            raise ZooError(
                f"{type(self).__name__} trains in one process without fp16 loss scaling (its "
                "updates step the torch optimizer: no DDP gradient sync, no loss scaler), not on "
                f"{trainer.world_size} processes at precision {trainer.precision}: use "
                "trainer.devices=1 and trainer.precision=32-true or bf16-mixed"
            )
        envs = trainer.datamodule
        self.envs, self.eval_env = envs.envs, envs.eval_env
        self.eval_episodes = envs.eval_episodes
        self.iterations_per_epoch = envs.iterations_per_epoch
        self.envs_in_checkpoint = envs.exact_resume  # the env state travels with the checkpoint
        self._reset_obs = envs.reset_obs

    @property
    def obs(self) -> np.ndarray:
        """The observation each training env is at (after a resume without the env state: the
        first observations of fresh episodes)."""
        if self._obs is None:
            self._obs = self._reset_obs
        return self._obs

    @obs.setter
    def obs(self, value: np.ndarray) -> None:
        self._obs = value

    def step_envs(self, action: Tensor) -> EnvStep:
        """One step of every training env with ``action`` (one per env); ``obs`` moves on to the
        next observations (where an episode ended: the first of the next one, as gymnasium's
        SAME_STEP autoreset returns it). Counts ``env_steps`` and logs the episodes that ended
        (``rollout/episode_return``, ``rollout/episode_length``)."""
        next_obs, reward, terminated, truncated, info = self.envs.step(self.env_action(action))
        final_obs = next_obs
        ended = np.flatnonzero(terminated | truncated)
        if len(ended):
            final_obs = next_obs.copy()
            for i in ended:
                final_obs[i] = info["final_obs"][i]
        self.obs = next_obs
        self.env_steps += len(next_obs)
        if "episode" in info:  # gymnasium's RecordEpisodeStatistics
            for i in np.flatnonzero(info["_episode"]):
                episode = {
                    "rollout/episode_return": float(info["episode"]["r"][i]),
                    "rollout/episode_length": float(info["episode"]["l"][i]),
                }
                log_scalars(self, episode, self.env_steps)
        return EnvStep(reward, terminated, truncated, final_obs)

    @property
    def total_iterations(self) -> int:
        """Training iterations in the whole run (trainer.max_epochs x iterations per epoch): what
        schedules over the run (epsilon, a learning rate falling to 0) count towards."""
        return self.trainer.max_epochs * self.iterations_per_epoch

    # --- the trainer's step -----------------------------------------------------------------------
    def count_iteration(self) -> None:
        """Count a training iteration that updated the agent as one trainer step
        (``trainer.global_step``), after its updates, whose gradients are applied. The trainer
        counts the steps of its own optimizer wrapper only (the public way to advance it), so
        this takes one, with the gradients cleared: the callbacks' optimizer hooks run once, the
        optimizer skips every parameter (no gradient), no weight changes."""
        opt = self.optimizers()
        opt.zero_grad()
        opt.step()

    # --- acting and evaluating --------------------------------------------------------------------
    def act(self, obs: Tensor) -> Tensor:
        """Greedy (deterministic) actions for a batch of observations."""
        raise NotImplementedError

    def env_action(self, action: Tensor) -> np.ndarray:
        """Actions as the environment takes them (PPO clips continuous ones to the box)."""
        return action.cpu().numpy()

    @torch.no_grad()
    def evaluate(self, episodes: int, env: Any = None, seed: int | None = None) -> list[float]:
        """Returns of ``episodes`` greedy episodes in ``env`` (default: the evaluation env)."""
        env = self.eval_env if env is None else env
        return run_episodes(env, lambda obs: self.env_action(self.act(obs))[0], episodes, seed)

    def validation_step(self, batch: int, batch_idx: int) -> None:
        returns = self.evaluate(self.eval_episodes)
        mean, std = float(np.mean(returns)), float(np.std(returns))
        self.log("val/return", mean, logger=False, batch_size=1)  # checkpoint; TB by env step
        self.log("env_steps", float(self.env_steps), logger=False, batch_size=1)
        log_scalars(self, {"val/return": mean, "val/return_std": std}, self.env_steps)

    def test_step(self, batch: int, batch_idx: int) -> None:
        returns = self.evaluate(self.eval_episodes)
        self.log("test/return", float(np.mean(returns)), batch_size=1)
        self.log("test/return_std", float(np.std(returns)), batch_size=1)

    def on_train_epoch_end(self) -> None:
        scheduler = self.lr_schedulers()
        if scheduler is not None:  # manual optimization: the agent steps its schedule (per epoch)
            scheduler.step()

    # --- checkpoints ------------------------------------------------------------------------------
    def extra_state(self) -> dict[str, Any]:
        """What a concept adds to the checkpoint's ``rl_state`` (tensors and plain values)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what ``extra_state`` saved."""

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        state = {"env_steps": self.env_steps, **self.extra_state()}
        if self.envs_in_checkpoint and self._obs is not None:
            state["obs"] = torch.as_tensor(self._obs)  # continue the very same episodes
        checkpoint["rl_state"] = state

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("rl_state")
        if state:
            self.env_steps = int(state["env_steps"])
            self._obs = state["obs"].numpy() if "obs" in state else None
            self.load_extra_state(state)
