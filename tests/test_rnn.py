"""Recurrent networks: the net's shapes, the generated sequence data, few-step runs, learning bars.

Fast tests check shapes, the row-by-row reading of images, the data modules (spec, determinism,
no leakage between splits) and a few optimizer steps of every cell on every offline data set.
The ``slow`` tests are the learning bars: the LSTM and GRU classify digits read row by row, both
solve the adding problem at length 50 where the vanilla RNN, on the same budget, does not, and the
LSTM forecasts the generated series.
"""

from __future__ import annotations

import json
import math
from functools import partial
from pathlib import Path

import pytest
import torch

from mlzoo.base.errors import ZooError
from mlzoo.data.sequences import AddingDataModule, SeriesDataModule
from mlzoo.models.rnn import RNNModule, features_per_step
from mlzoo.nets.rnn import RecurrentNet, as_sequence

from conftest import compose_config

CELLS = ["rnn", "lstm", "gru"]
ADDING_LENGTH = 50  # configs/data/adding.yaml and experiment/rnn_cells.yaml use the same


# --- the network --------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_recurrent_net_shapes(cell: str, bidirectional: bool, num_layers: int) -> None:
    net = RecurrentNet(
        input_size=3,
        out_features=5,
        cell=cell,
        hidden_size=16,
        num_layers=num_layers,
        bidirectional=bidirectional,
        dropout=0.1,
    )
    assert net(torch.randn(4, 7, 3)).shape == (4, 5)
    assert net(torch.randn(1, 1, 3)).shape == (1, 5)  # one example, one step
    assert net.head.in_features == 16 * (2 if bidirectional else 1)
    assert isinstance(
        net.rnn, {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    )


def test_vanilla_rnn_is_elman_with_tanh() -> None:
    net = RecurrentNet(2, 1, cell="rnn", hidden_size=8)
    assert net.rnn.nonlinearity == "tanh"


def test_lstm_forget_gate_starts_at_forget_bias() -> None:
    h = 8
    net = RecurrentNet(2, 1, cell="lstm", hidden_size=h, num_layers=2, forget_bias=1.0)
    for layer in range(2):
        ih, hh = getattr(net.rnn, f"bias_ih_l{layer}"), getattr(net.rnn, f"bias_hh_l{layer}")
        torch.testing.assert_close(ih[h : 2 * h] + hh[h : 2 * h], torch.ones(h))


@pytest.mark.parametrize("cell", CELLS)
def test_head_reads_the_final_state_of_each_direction(cell: str) -> None:
    torch.manual_seed(0)
    h = 6
    net = RecurrentNet(3, 2, cell=cell, hidden_size=h, num_layers=2, bidirectional=True).eval()
    x = torch.randn(4, 9, 3)
    outputs, _ = net.rnn(x)  # (B, T, 2H): forward states, then backward states
    forward_last, backward_first = outputs[:, -1, :h], outputs[:, 0, h:]
    expected = net.head(torch.cat([forward_last, backward_first], dim=-1))
    torch.testing.assert_close(net(x), expected)


def test_images_are_read_row_by_row() -> None:
    images = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)  # (B, C, H, W)
    seq = as_sequence(images)
    assert seq.shape == (2, 4, 3 * 5)  # T = H rows, C*W features per step
    for t in range(4):  # step t is row t of every channel, channel after channel
        torch.testing.assert_close(seq[:, t], images[:, :, t, :].reshape(2, 15))
    net = RecurrentNet(15, 3, cell="gru", hidden_size=8).eval()
    torch.testing.assert_close(net(images), net(seq))
    # a sequence of scalars (B, T) reads as T steps of one feature
    assert as_sequence(torch.zeros(2, 7)).shape == (2, 7, 1)
    with pytest.raises(ValueError, match="expected"):
        as_sequence(torch.zeros(1, 2, 3, 4, 5))


def test_mnist_sized_images_are_28_steps_of_28_pixels() -> None:
    net = RecurrentNet(features_per_step((1, 28, 28)), 10, cell="lstm", hidden_size=8)
    assert net.rnn.input_size == 28
    assert net(torch.rand(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"cell": "transformer"}, "unknown cell"),
        ({"hidden_size": 0}, "hidden_size"),
        ({"num_layers": 0}, "num_layers"),
        ({"dropout": 1.0}, "dropout"),
    ],
)
def test_recurrent_net_rejects_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RecurrentNet(2, 1, **kwargs)


# --- the model ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape, features", [((1, 8, 8), 8), ((3, 32, 32), 96), ((50, 2), 2), ((64, 1), 1), ((10,), 1)]
)
def test_features_per_step(shape: tuple[int, ...], features: int) -> None:
    assert features_per_step(shape) == features


def test_rnn_module_sizes_its_net_from_the_data_spec() -> None:
    module = RNNModule(
        net=partial(RecurrentNet, cell="gru", hidden_size=8),
        optimizer=partial(torch.optim.AdamW, lr=1e-3),
        input_shape=[64, 1],
        task="regression",
        num_classes=0,
        num_targets=8,
    )
    assert module.net.rnn.input_size == 1 and module.net.head.out_features == 8
    assert module(torch.randn(3, 64, 1)).shape == (3, 8)
    assert not {"net", "optimizer", "scheduler"} & set(module.hparams)
    with pytest.raises(ValueError, match="reads"):
        features_per_step((1, 2, 3, 4))


def test_model_config_clips_gradients_in_the_trainer(tmp_path: Path) -> None:
    cfg = compose_config(["model=rnn"], tmp_path)
    assert cfg.trainer.gradient_clip_val == 1.0
    assert cfg.model.net.cell == "lstm" and cfg.data._target_.endswith("DigitsDataModule")
    cells = compose_config(["experiment=rnn_cells"], tmp_path)
    assert cells.data._target_.endswith("AddingDataModule")
    assert cells.data.length == ADDING_LENGTH


# --- the adding problem -------------------------------------------------------------------------
def test_adding_data_shapes_markers_and_targets() -> None:
    dm = AddingDataModule(length=20, num_examples=500)
    dm.setup()
    assert dm.spec == {
        "input_shape": [20, 2],
        "task": "regression",
        "num_classes": 0,
        "num_targets": 1,
        "target_mean": dm.info["target_mean"],
        "target_std": dm.info["target_std"],
    }
    assert sum(len(s) for s in dm.splits.values()) == 500
    for split in dm.splits.values():
        values, markers = split.x[..., 0], split.x[..., 1]
        assert split.x.shape[1:] == (20, 2) and split.x.dtype == torch.float32
        assert values.min() >= 0.0 and values.max() <= 1.0
        assert torch.all(markers.sum(1) == 2)  # exactly two marked steps...
        assert torch.all(markers[:, :10].sum(1) == 1)  # ...one in each half
        assert torch.all(markers[:, 10:].sum(1) == 1)
        raw = split.y * dm.info["target_std"] + dm.info["target_mean"]
        torch.testing.assert_close(raw, (values * markers).sum(1))


def test_adding_data_mean_predictor_scores_one_sixth() -> None:
    dm = AddingDataModule(length=ADDING_LENGTH)
    dm.setup()
    train = dm.splits["train"]
    assert abs(dm.info["target_mean"] - 1.0) < 0.02
    assert abs(dm.info["target_std"] - math.sqrt(1 / 6)) < 0.01
    assert abs(train.y.mean()) < 1e-5 and abs(train.y.std() - 1) < 1e-5  # standardized
    test_raw = dm.splits["test"].y * dm.info["target_std"] + dm.info["target_mean"]
    mse_of_mean = ((test_raw - dm.info["target_mean"]) ** 2).mean()
    assert abs(mse_of_mean - 1 / 6) < 0.015  # Var(u1 + u2) = 2/12: R^2 = 0 for a blind model


def test_adding_data_depends_on_data_seed_only_and_splits_are_disjoint() -> None:
    torch.manual_seed(1)
    a = AddingDataModule(length=10, num_examples=300)
    a.setup()
    torch.manual_seed(2)  # the run's seed does not move the data
    b = AddingDataModule(length=10, num_examples=300)
    b.setup()
    for name in ("train", "val", "test"):
        assert torch.equal(a.splits[name].x, b.splits[name].x)
        assert torch.equal(a.splits[name].y, b.splits[name].y)
    c = AddingDataModule(length=10, num_examples=300, data_seed=1)
    c.setup()
    assert not torch.equal(a.splits["test"].x, c.splits["test"].x)
    # independent draws, randomly split: no example is in two splits
    rows = {k: {r.numpy().tobytes() for r in s.x.reshape(len(s), -1)} for k, s in a.splits.items()}
    assert sum(len(r) for r in rows.values()) == 300
    assert not rows["train"] & rows["val"] and not rows["train"] & rows["test"]
    assert not rows["val"] & rows["test"]


# --- the series ---------------------------------------------------------------------------------
def test_series_windows_and_targets_continue_the_signal() -> None:
    dm = SeriesDataModule(length=1000, window=16, horizon=4)
    dm.setup()
    assert dm.spec["input_shape"] == [16, 1] and dm.spec["num_targets"] == 4
    assert dm.spec["task"] == "regression"
    mean, std = dm.info["target_mean"], dm.info["target_std"]
    scaled = (dm.signal() - mean) / std
    for name, (start, end) in dm.block_bounds().items():
        split = dm.splits[name]
        assert len(split) == (end - start) - 16 - 4 + 1
        assert split.x.shape[1:] == (16, 1) and split.y.shape[1:] == (4,)
        for i in (0, len(split) // 2, len(split) - 1):  # window i: steps start+i .. start+i+19
            t = start + i
            torch.testing.assert_close(split.x[i, :, 0], scaled[t : t + 16])
            torch.testing.assert_close(split.y[i], scaled[t + 16 : t + 20])


def test_series_blocks_are_disjoint_in_time_and_standardized_on_train() -> None:
    dm = SeriesDataModule(length=2000, window=32, horizon=8)
    dm.setup()
    blocks = dm.block_bounds()
    assert blocks["train"][0] == 0 and blocks["test"][1] == 2000
    assert blocks["train"][1] == blocks["val"][0] and blocks["val"][1] == blocks["test"][0]
    assert (
        blocks["train"][1] < blocks["val"][1]
    )  # train | val | test: the model forecasts the future
    # Every window lies inside its block (previous test), so no input or target value of one split
    # is seen in another: with stride-1 windows a random split would put copies of most test
    # values in the training inputs.
    signal = dm.signal()
    start, end = blocks["train"]
    assert dm.info["target_mean"] == pytest.approx(float(signal[start:end].mean()))
    assert dm.info["target_std"] == pytest.approx(float(signal[start:end].std()))
    assert abs(float(dm.splits["train"].x.mean())) < 0.05


def test_series_depends_on_data_seed_only() -> None:
    torch.manual_seed(3)
    a = SeriesDataModule(length=500, window=8, horizon=2)
    a.setup()
    torch.manual_seed(4)
    b = SeriesDataModule(length=500, window=8, horizon=2)
    b.setup()
    assert torch.equal(a.splits["test"].x, b.splits["test"].x)
    assert torch.equal(a.splits["test"].y, b.splits["test"].y)
    c = SeriesDataModule(length=500, window=8, horizon=2, data_seed=1)
    assert not torch.equal(a.signal(), c.signal())


def test_series_rejects_a_window_longer_than_a_block() -> None:
    with pytest.raises(ZooError, match=r"lower data\.window or data\.horizon"):
        SeriesDataModule(length=100, window=20, horizon=5).setup()  # 15-step test block
    with pytest.raises(ZooError, match=r"^data\.window and data\.horizon must be >= 1"):
        SeriesDataModule(horizon=0)
    with pytest.raises(ZooError, match=r"^data\.noise_std must be >= 0"):
        SeriesDataModule(noise_std=-1.0)


# --- a few steps end to end ---------------------------------------------------------------------
@pytest.mark.parametrize("data", ["digits", "series", "adding"])
@pytest.mark.parametrize("cell", CELLS)
def test_few_steps_of_each_cell_on_each_offline_data_set(cell: str, data: str, run) -> None:
    summary = run(["model=rnn", f"data={data}", f"model.net.cell={cell}", "trainer=debug"])
    assert summary["model"] == "rnn" and summary["data"] == data
    assert summary["global_step"] == 6
    metrics = summary["metrics"]
    assert metrics and all(math.isfinite(v) for v in metrics.values())
    assert ("test/acc" if data == "digits" else "test/r2") in metrics
    ckpt = torch.load(summary["best_checkpoint"], map_location="cpu", weights_only=True)
    assert not {"net", "optimizer", "scheduler"} & set(ckpt["hyper_parameters"])


def test_few_steps_of_a_deep_bidirectional_net(run) -> None:
    net = ["model.net.num_layers=2", "model.net.bidirectional=true", "model.net.dropout=0.2"]
    summary = run(["model=rnn", "data=series", "trainer=debug", "logger=none", *net])
    assert all(math.isfinite(v) for v in summary["metrics"].values())


# --- learning bars (slow) -----------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_rnn_learns_digits_read_row_by_row(cell: str, run) -> None:
    """`python train.py model=rnn` (LSTM) and `model.net.cell=gru`: test/acc >= 0.95."""
    summary = run(["model=rnn", f"model.net.cell={cell}", "logger=none"])
    assert summary["data"] == "digits"
    assert summary["metrics"]["test/acc"] >= 0.95, summary["metrics"]


@pytest.mark.slow
def test_lstm_and_gru_solve_the_adding_problem_where_the_vanilla_rnn_fails(run) -> None:
    """The adding problem at length 50, the same budget (8 epochs, ~2,000 steps) for each cell:
    the gated cells reach R^2 >= 0.9 (MSE < 0.017); the vanilla RNN stays near R^2 = 0, where a
    model that ignores its input is (MSE 0.167)."""
    r2 = {}
    for cell in CELLS:
        overrides = ["model=rnn", "data=adding", f"data.length={ADDING_LENGTH}", "logger=none"]
        summary = run([*overrides, f"model.net.cell={cell}"])
        r2[cell] = summary["metrics"]["test/r2"]
    print(json.dumps({"adding_length": ADDING_LENGTH, "test_r2": r2}))
    assert r2["lstm"] >= 0.9, r2
    assert r2["gru"] >= 0.9, r2
    assert r2["rnn"] < 0.2, r2


@pytest.mark.slow
def test_lstm_forecasts_the_series(run) -> None:
    """`python train.py model=rnn data=series`: far better than repeating the last value, and on
    par with a linear autoregression fit by least squares (a sum of sines is linearly predictable:
    that is the strong baseline here)."""
    dm = SeriesDataModule()
    dm.setup()
    train, test = dm.splits["train"], dm.splits["test"]

    def r2(pred: torch.Tensor, y: torch.Tensor) -> float:
        return float(1 - ((pred - y) ** 2).sum() / ((y - y.mean()) ** 2).sum())

    persistence = r2(test.x[:, -1, :].expand_as(test.y), test.y)
    design = torch.cat([train.x[..., 0], torch.ones(len(train), 1)], 1).double()
    weights = torch.linalg.lstsq(design, train.y.double()).solution
    linear = r2(
        (torch.cat([test.x[..., 0], torch.ones(len(test), 1)], 1).double() @ weights).float(),
        test.y,
    )
    summary = run(["model=rnn", "data=series", "logger=none"])
    model_r2 = summary["metrics"]["test/r2"]
    print(json.dumps({"persistence": persistence, "linear_ar": linear, "lstm": model_r2}))
    assert model_r2 >= 0.94, (model_r2, linear)
    assert model_r2 >= persistence + 0.2, (model_r2, persistence)
    assert model_r2 >= linear - 0.02, (model_r2, linear)
