"""The Nature DQN network's convolutional torso (Mnih et al. 2015), for Atari frames.

Input: a stack of 4 grey 84x84 frames (uint8, 0-255; scaled to [0, 1] here). Three convolutions,
32 8x8 filters with stride 4, 64 4x4 with stride 2, 64 3x3 with stride 1 (84 -> 20 -> 9 -> 7),
then a 512-unit fully connected layer. DQN and PPO put their own heads on top.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class NatureCNN(nn.Module):
    def __init__(self, observation_shape: Sequence[int], features: int = 512) -> None:
        super().__init__()
        c, h, w = (int(d) for d in observation_shape)
        self.conv = nn.Sequential(
            nn.Conv2d(c, 32, 8, stride=4),
            nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.conv(torch.zeros(1, c, h, w)).shape[1]
        self.fc = nn.Sequential(nn.Linear(flat, features), nn.ReLU())
        self.out_features = features

    def forward(self, obs: Tensor) -> Tensor:
        return self.fc(self.conv(obs.float() / 255.0))
