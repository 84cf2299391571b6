"""A replay buffer (Lin 1992; Mnih et al. 2015): a ring of the last ``capacity`` transitions,
sampled uniformly. Tensors all the way, so it saves into a weights-only checkpoint and a resumed
agent continues with the experience it had."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


class ReplayBuffer:
    def __init__(
        self,
        capacity: int,
        obs_shape: Sequence[int],
        obs_dtype: torch.dtype = torch.float32,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"buffer capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        # uint8 for Atari frames: 4 x 84 x 84 bytes per observation instead of 4x that
        self.obs = torch.zeros(capacity, *obs_shape, dtype=obs_dtype)
        self.next_obs = torch.zeros(capacity, *obs_shape, dtype=obs_dtype)
        self.actions = torch.zeros(capacity, dtype=torch.long)  # DQN's discrete actions
        self.rewards = torch.zeros(capacity)
        self.terminated = torch.zeros(capacity)  # 1: no bootstrapping (truncation still bootstraps)
        self.pos, self.full = 0, False

    def __len__(self) -> int:
        return self.capacity if self.full else self.pos

    def add(
        self, obs: Tensor, action: Tensor, reward: Tensor, next_obs: Tensor, terminated: Tensor
    ) -> None:
        """Add a batch of transitions (one per environment)."""
        for i in range(len(obs)):
            self.obs[self.pos] = obs[i]
            self.actions[self.pos] = action[i]
            self.rewards[self.pos] = reward[i]
            self.next_obs[self.pos] = next_obs[i]
            self.terminated[self.pos] = terminated[i]
            self.pos = (self.pos + 1) % self.capacity
            self.full = self.full or self.pos == 0

    def sample(self, batch_size: int, device: torch.device | str = "cpu") -> tuple[Tensor, ...]:
        idx = torch.randint(0, len(self), (batch_size,))
        parts = (self.obs, self.actions, self.rewards, self.next_obs, self.terminated)
        return tuple(p[idx].to(device) for p in parts)

    def state_dict(self) -> dict:
        n = len(self)  # only the filled part: a checkpoint early in training stays small
        return {
            "obs": self.obs[:n].clone(),
            "next_obs": self.next_obs[:n].clone(),
            "actions": self.actions[:n].clone(),
            "rewards": self.rewards[:n].clone(),
            "terminated": self.terminated[:n].clone(),
            "pos": self.pos,
            "full": self.full,
        }

    def load_state_dict(self, state: dict) -> None:
        n = len(state["rewards"])
        if n > self.capacity:
            raise ValueError(f"replay buffer in checkpoint holds {n} > capacity {self.capacity}")
        for key in ("obs", "next_obs", "actions", "rewards", "terminated"):
            getattr(self, key)[:n] = state[key]
        self.pos, self.full = int(state["pos"]), bool(state["full"])
