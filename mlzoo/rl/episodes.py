"""Greedy evaluation episodes, for every agent (RLModule.evaluate) and for scripts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import torch
from torch import Tensor


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
