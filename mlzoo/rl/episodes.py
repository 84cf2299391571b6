"""Episode plumbing every agent shares: greedy evaluation episodes and logging finished ones."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from mlzoo.base.tensorboard import log_scalars


def run_episodes(
    env: gym.Env, act: Callable[[Tensor], Any], episodes: int, seed: int | None = None
) -> list[float]:
    """Returns of ``episodes`` full episodes; ``act`` maps a (1, obs) tensor to an env action."""
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=None if seed is None else seed + i)
        done, total = False, 0.0
        while not done:
            action = act(torch.as_tensor(obs, dtype=torch.float32)[None])
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return returns


def log_finished_episodes(module: Any, info: dict, env_steps: int) -> None:
    """rollout/episode_return and rollout/episode_length of episodes that ended this step
    (gymnasium's vector RecordEpisodeStatistics), at the current environment step."""
    if "episode" not in info:
        return
    for i in np.flatnonzero(info["_episode"]):
        log_scalars(
            module,
            {
                "rollout/episode_return": float(info["episode"]["r"][i]),
                "rollout/episode_length": float(info["episode"]["l"][i]),
            },
            env_steps,
        )
