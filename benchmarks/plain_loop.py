"""The overhead benchmark's baseline: a plain, hand-written PyTorch training loop.

It trains what ``benchmarks/overhead_runs.py`` saved from the zoo (the same network object with its
initial weights, the same training tensors, batch size and optimizer, and the same way of
batching) and imports nothing but torch. Used two ways:

    python benchmarks/plain_loop.py SPEC_JSON          a process of its own (alternating runs)
    PlainLoop(...).step()                              one step at a time, inside the zoo's run
                                                       (benchmarks/interleaved.py)
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, TensorDataset


class PlainLoop:
    def __init__(self, spec: dict) -> None:
        saved = torch.load(spec["file"], weights_only=False)  # our own file: the net, pickled
        self.net, self.x, self.y = saved["net"], saved["x"], saved["y"]
        self.net.train()  # once: nothing here ever evaluates
        make = getattr(torch.optim, spec["optimizer"])
        self.optimizer = make(self.net.parameters(), **spec["optimizer_kwargs"])
        self.batch_size, self.indexed = spec["batch_size"], spec["indexed"]
        self.generator = torch.Generator().manual_seed(0)  # its own: the zoo's RNG is left alone
        self.loss_fn = torch.nn.CrossEntropyLoss()
        self._batches: Iterator | None = None

    def epoch(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch's batches, shuffled."""
        if self.indexed:  # by indexing the whole tensors (the zoo's data.on_device=true)
            order = torch.randperm(len(self.x), generator=self.generator)
            for k in range(0, len(self.x), self.batch_size):
                idx = order[k : k + self.batch_size]
                yield self.x[idx], self.y[idx]
        else:  # a DataLoader collating examples one by one (the zoo's default)
            dataset = TensorDataset(self.x, self.y)
            yield from DataLoader(
                dataset, batch_size=self.batch_size, shuffle=True, generator=self.generator
            )

    def train_step(self, xb: torch.Tensor, yb: torch.Tensor) -> None:
        loss = self.loss_fn(self.net(xb), yb)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()

    def step(self) -> int:
        """The next batch (a new epoch when one ends) and one training step on it: its size."""
        batch = next(self._batches, None) if self._batches is not None else None
        if batch is None:
            self._batches = self.epoch()
            batch = next(self._batches)
        self.train_step(*batch)
        return len(batch[0])


def main(spec: dict) -> None:
    """Train spec["epochs"] epochs; print each as ``EPOCH {json}``, then ``RESULT {json}``."""
    loop = PlainLoop(spec)
    first, epochs = None, []
    for _ in range(spec["epochs"]):
        start, samples = time.perf_counter(), 0
        for xb, yb in loop.epoch():
            if first is None:
                first = time.time()
            loop.train_step(xb, yb)
            samples += len(xb)
        epochs.append(
            {"samples": samples, "seconds": time.perf_counter() - start, "ended_at": time.time()}
        )
        print("EPOCH " + json.dumps(epochs[-1]), flush=True)
    print("RESULT " + json.dumps({"first_step_at": first, "epochs": epochs}))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(json.loads(sys.argv[1]))
