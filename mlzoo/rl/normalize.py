"""Observation and reward normalisation for continuous control (as in Stable-Baselines3's
VecNormalize and "The 37 Implementation Details of PPO").

Observations are standardised with running statistics, o' = clip((o - mean) / sqrt(var + eps)),
and rewards are divided by the running standard deviation of the discounted return
R_t = gamma * R_{t-1} + r_t (not of the reward itself: what matters to the critic is the scale of
returns), r' = clip(r / sqrt(var(R) + eps)).

Why not gymnasium's NormalizeObservation / NormalizeReward vector wrappers: in gymnasium 1.x they
accept only NEXT_STEP autoreset, and the zoo's vector envs use SAME_STEP (see mlzoo/rl/envs.py).
Kept in the agent instead, the statistics are buffers of the model: they are saved in every
checkpoint, restored on resume, frozen during evaluation and used by scripts/evaluate.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class RunningMeanStd(nn.Module):
    """Mean and variance of everything seen so far, updated batch by batch (Chan et al.'s parallel
    formula), in float64 buffers."""

    def __init__(self, shape: Sequence[int] = (), epsilon: float = 1e-4) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(tuple(shape), dtype=torch.float64))
        self.register_buffer("var", torch.ones(tuple(shape), dtype=torch.float64))
        self.register_buffer("count", torch.tensor(epsilon, dtype=torch.float64))

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        x = x.detach().to(self.mean.device, torch.float64).reshape(-1, *self.mean.shape)
        n, batch_mean, batch_var = len(x), x.mean(0), x.var(0, unbiased=False)
        total = self.count + n
        delta = batch_mean - self.mean
        m2 = self.var * self.count + batch_var * n + delta**2 * self.count * n / total
        self.mean += delta * n / total
        self.var.copy_(m2 / total)
        self.count.copy_(total)

    def normalize(self, x: Tensor, clip: float, eps: float = 1e-8) -> Tensor:
        """(x - mean) / sqrt(var + eps), clipped to [-clip, clip]."""
        z = (x.to(torch.float64) - self.mean) / torch.sqrt(self.var + eps)
        return z.clamp(-clip, clip).to(x.dtype)


class RewardScaler(nn.Module):
    """r' = clip(r / std(R)), with R the running discounted return of each environment."""

    def __init__(self, gamma: float, clip: float = 10.0) -> None:
        super().__init__()
        self.gamma, self.clip = gamma, clip
        self.rms = RunningMeanStd(())
        self.returns: Tensor | None = None  # per env; restarts at 0 with new episodes

    @torch.no_grad()
    def forward(self, reward: Tensor, done: Tensor) -> Tensor:
        if self.returns is None or self.returns.shape != reward.shape:
            self.returns = torch.zeros_like(reward, dtype=torch.float64)
        self.returns = self.returns * self.gamma + reward  # R_t = gamma R_{t-1} + r_t
        self.rms.update(self.returns)
        scaled = (reward / torch.sqrt(self.rms.var + 1e-8)).clamp(-self.clip, self.clip)
        self.returns = self.returns * (1.0 - done.to(torch.float64))  # a new episode starts at 0
        return scaled.to(reward.dtype)
