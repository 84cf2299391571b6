"""The startup benchmark's baseline: a plain PyTorch script that trains the zoo's default MLP
shape (64 -> 256 -> 128 -> 10, ReLU, Adam) on scikit-learn's digits, written as a user would
write it without the zoo. It prints ``FIRST_STEP <unix time>`` when its first training step
starts, then trains one epoch."""

import time

import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def main() -> None:
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target)
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
    net = nn.Sequential(
        nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10)
    )
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    first = None
    for xb, yb in loader:
        if first is None:
            first = time.time()
            print(f"FIRST_STEP {first}", flush=True)
        loss = nn.functional.cross_entropy(net(xb), yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


if __name__ == "__main__":
    main()
