"""RLModule: what every agent shares, so that a concept file (DQN, PPO) holds only its algorithm.

An agent steps its environments itself; the data module (mlzoo.rl.envs.EnvDataModule) only builds
them. Here, once:

- the environments, attached in ``setup`` (``self.envs``: the training vector env,
  ``self.eval_env``: one evaluation env), and the observation each training env is at (``obs``);
- the greedy evaluation (``evaluate``: mean and std of ``eval_episodes`` deterministic episodes),
  logged as ``val/return`` by the validation step and as ``test/return`` by the test step;
- the checkpoint state: environment steps, the current observations (when the env state itself is
  in the checkpoint: classic control), and what the concept adds (``extra_state``: DQN's replay
  buffer, PPO's reward-scaling returns);
- the per-epoch LR schedule, for a concept that takes one;
- the optimizer a concept steps many times per training_step (``plain_optimizer``).

A concept writes ``act`` (observations -> actions), ``training_step`` (collect experience, then
its own update: zero_grad, backward, clip, step) and, if its actions need it, ``env_action``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from mlzoo.base.module import OptimizerFactory, SchedulerFactory, ZooModule
from mlzoo.base.tensorboard import log_scalars
from mlzoo.rl.episodes import run_episodes


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
        envs = self.trainer.datamodule
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

    @property
    def total_iterations(self) -> int:
        """Training iterations in the whole run (trainer.max_epochs x iterations per epoch): what
        schedules over the run (epsilon, a learning rate falling to 0) count towards."""
        return self.trainer.max_epochs * self.iterations_per_epoch

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
        if getattr(self, "envs_in_checkpoint", False) and self._obs is not None:
            state["obs"] = torch.as_tensor(self._obs)  # continue the very same episodes
        checkpoint["rl_state"] = state

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("rl_state")
        if state:
            self.env_steps = int(state["env_steps"])
            self._obs = state["obs"].numpy() if "obs" in state else None
            self.load_extra_state(state)
