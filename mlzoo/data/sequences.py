"""Generated sequence data sets for recurrent networks: offline, and the same on every machine.

Both are drawn from a ``torch.Generator`` seeded by ``data_seed`` (fixed by default), never by the
run's ``seed``, so runs with different seeds train and score on the same examples.

- ``series``: forecasting. One long noisy signal, a sum of sines with seeded frequencies, phases
  and amplitudes plus Gaussian noise; each example is a window of ``window`` past values and its
  target the next ``horizon`` values. Split by contiguous blocks of time (train, then val, then
  test): no value of the signal appears in two splits, and the model is scored on the future.
- ``adding``: the adding problem (Hochreiter & Schmidhuber 1997). Each step carries a value drawn
  from U[0, 1] and a marker; exactly two steps are marked, one in each half of the sequence, and
  the target is the sum of the two marked values. The first marker is at least ``length / 2``
  steps before the end, so a network must carry it that far: a long-range memory test. Predicting
  the mean (1.0) scores MSE = Var(u1 + u2) = 2/12 ~ 0.167, R^2 = 0.
"""

from __future__ import annotations

import math

import torch

from mlzoo.base.errors import ZooError
from mlzoo.data.base import Loaded, Split, TensorDataModule


def sine_mixture(
    length: int,
    num_sines: int,
    min_period: float,
    max_period: float,
    noise_std: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, dict[str, list[float]]]:
    """x(t) = sum_k a_k sin(2 pi t / P_k + phi_k) + noise, periods log-uniform in [min, max]."""
    u = torch.rand(num_sines, generator=generator, dtype=torch.float64)
    periods = torch.exp(math.log(min_period) + u * (math.log(max_period) - math.log(min_period)))
    phases = 2 * math.pi * torch.rand(num_sines, generator=generator, dtype=torch.float64)
    amplitudes = 0.5 + torch.rand(num_sines, generator=generator, dtype=torch.float64)
    t = torch.arange(length, dtype=torch.float64).unsqueeze(1)
    clean = (amplitudes * torch.sin(2 * math.pi * t / periods + phases)).sum(dim=1)
    noise = noise_std * torch.randn(length, generator=generator, dtype=torch.float64)
    params = {
        "periods": periods.tolist(),
        "phases": phases.tolist(),
        "amplitudes": amplitudes.tolist(),
    }
    return (clean + noise).float(), params


def windows(values: torch.Tensor, window: int, horizon: int, name: str = "block") -> Split:
    """Every (window past values -> next horizon values) pair inside ``values``, stride 1."""
    n = len(values) - window - horizon + 1
    if n < 1:
        raise ZooError(
            f"series: the {name} block has {len(values)} steps, fewer than window + horizon = "
            f"{window + horizon}; lower data.window or data.horizon, or raise data.length"
        )
    frames = values.unfold(0, window + horizon, 1)  # (n, window + horizon), views
    return Split(frames[:, :window].unsqueeze(-1).clone(), frames[:, window:].clone())


class SeriesDataModule(TensorDataModule):
    """Forecast the next ``horizon`` values of a noisy sum of sines from the last ``window``.

    The signal (``length`` steps) is cut in time into train | val | test blocks (the last
    ``test_fraction`` is test, the last ``val_fraction`` of the rest is val); windows are taken
    inside each block only, so no input or target value is shared between splits. Values are
    standardized with the training block's mean and std (inputs and targets alike); models report
    RMSE and R^2 in the signal's original units (``info`` carries the mean and std).

    Args:
        length: time steps of the whole signal.
        window: past values an example sees (its sequence length).
        horizon: future values to predict (``num_targets``).
        num_sines: sine components; periods log-uniform in [min_period, max_period] steps.
        noise_std: std of the Gaussian noise added to each step (the clean signal's std is about
            1.3 with the defaults).
        data_seed: seed of the signal (frequencies, phases, amplitudes, noise).
    """

    task = "regression"

    def __init__(
        self,
        length: int = 12_000,
        window: int = 64,
        horizon: int = 8,
        num_sines: int = 4,
        min_period: float = 8.0,
        max_period: float = 200.0,
        noise_std: float = 0.2,
        data_seed: int = 0,
        batch_size: int = 64,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        train_subset: int | None = None,
        num_workers: int = 0,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            train_subset=train_subset,
            num_workers=num_workers,
        )
        if window < 1 or horizon < 1:
            raise ZooError(f"data.window and data.horizon must be >= 1, got {window} and {horizon}")
        if num_sines < 1:
            raise ZooError(f"data.num_sines must be >= 1, got {num_sines}")
        if not 0 < min_period <= max_period:
            raise ZooError(
                f"need 0 < data.min_period <= data.max_period, got {min_period} and {max_period}"
            )
        if noise_std < 0:
            raise ZooError(f"data.noise_std must be >= 0, got {noise_std}")
        self.length = length
        self.window = window
        self.horizon = horizon
        self.num_sines = num_sines
        self.min_period = min_period
        self.max_period = max_period
        self.noise_std = noise_std
        self.data_seed = data_seed
        self.input_shape = (window, 1)

    def signal(self) -> torch.Tensor:
        """The whole generated signal, in original units (a function of the data arguments only)."""
        g = torch.Generator().manual_seed(self.data_seed)
        values, _ = sine_mixture(
            self.length, self.num_sines, self.min_period, self.max_period, self.noise_std, g
        )
        return values

    def block_bounds(self) -> dict[str, tuple[int, int]]:
        """[start, end) time steps of each split's block: train, then val, then test."""
        test_start = self.length - math.ceil(self.test_fraction * self.length)
        val_start = test_start - math.ceil(self.val_fraction * test_start)
        return {
            "train": (0, val_start),
            "val": (val_start, test_start),
            "test": (test_start, self.length),
        }

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        values = self.signal()
        bounds = self.block_bounds()
        start, end = bounds["train"]
        mean, std = values[start:end].mean(), values[start:end].std()
        scaled = (values - mean) / std
        self.splits = {
            name: windows(scaled[start:end], self.window, self.horizon, name)
            for name, (start, end) in bounds.items()
        }
        if self.train_subset is not None:
            train = self.splits["train"]
            self.splits["train"] = Split(train.x[: self.train_subset], train.y[: self.train_subset])
        self.info = {
            "num_targets": self.horizon,
            "target_mean": float(mean),
            "target_std": float(std),
            "blocks": bounds,
        }


class AddingDataModule(TensorDataModule):
    """The adding problem: (length, 2) sequences of [value, marker] -> sum of the marked values.

    Examples are independent draws, so a random split leaks nothing; the target is standardized
    for the loss (mean 1, std sqrt(1/6) in theory; measured on the training split), and models
    report RMSE and R^2 on the raw sum.

    Args:
        length: time steps per sequence (the memory span is at least length / 2).
        num_examples: examples drawn in all (split into train/val/test).
        data_seed: seed of the draws (values and marker positions).
    """

    task = "regression"
    standardize_target = True

    def __init__(
        self,
        length: int = 50,
        num_examples: int = 20_000,
        data_seed: int = 0,
        batch_size: int = 64,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        split_seed: int = 0,
        train_subset: int | None = None,
        num_workers: int = 0,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            split_seed=split_seed,
            train_subset=train_subset,
            num_workers=num_workers,
        )
        if length < 2:
            raise ZooError(f"data.length must be >= 2 (one marker in each half), got {length}")
        if num_examples < 10:
            raise ZooError(f"data.num_examples must be >= 10, got {num_examples}")
        self.length = length
        self.num_examples = num_examples
        self.data_seed = data_seed
        self.input_shape = (length, 2)

    def load(self) -> Loaded:
        g = torch.Generator().manual_seed(self.data_seed)
        n, length, half = self.num_examples, self.length, self.length // 2
        values = torch.rand(n, length, generator=g)
        first = torch.randint(0, half, (n,), generator=g)  # one marker in [0, half)
        second = torch.randint(half, length, (n,), generator=g)  # the other in [half, length)
        markers = torch.zeros(n, length)
        rows = torch.arange(n)
        markers[rows, first] = 1.0
        markers[rows, second] = 1.0
        x = torch.stack([values, markers], dim=-1)  # (n, length, 2)
        y = values[rows, first] + values[rows, second]
        return Loaded(Split(x, y))
