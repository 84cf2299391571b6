"""The autoencoder concept: shapes, TensorBoard images and projector, anomaly score, learning bar."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mlzoo.data.sklearn import DigitsDataModule
from mlzoo.models.autoencoder import AutoencoderModule
from mlzoo.nets.autoencoder import conv_autoencoder, mlp_autoencoder


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize("builder", [mlp_autoencoder, conv_autoencoder])
def test_encoder_decoder_shapes(builder, shape: tuple[int, ...]) -> None:
    encoder, decoder = builder(shape, 5)
    z = encoder(torch.rand(3, *shape))
    assert z.shape == (3, 5)
    assert decoder(z).shape == (3, *shape)


def test_conv_autoencoder_refuses_indivisible_images() -> None:
    with pytest.raises(ValueError, match="not divisible"):
        conv_autoencoder((1, 10, 10), 4)


def test_bad_arguments() -> None:
    opt = torch.optim.Adam
    with pytest.raises(ValueError, match="arch must be one of"):
        AutoencoderModule(opt, arch="rbm")
    with pytest.raises(ValueError, match="latent_dim >= 1"):
        AutoencoderModule(opt, latent_dim=0)


def test_denoising_corrupts_inputs_only_while_training() -> None:
    model = AutoencoderModule(torch.optim.Adam, noise_std=0.5)
    x = torch.rand(4, 1, 8, 8)
    model.eval()
    a, b = model.anomaly_score(x), model.anomaly_score(x)
    assert torch.equal(a, b) and a.shape == (4,)


def test_tensorboard_gets_reconstructions_and_codes(run) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    summary = run(["model=autoencoder", "trainer=debug"])
    run_dir = Path(summary["run_dir"])
    events = EventAccumulator(str(run_dir))
    events.Reload()
    assert "val/reconstructions" in events.Tags()["images"]
    assert {"train/loss", "val/loss", "val/mse", "test/mse"} <= set(events.Tags()["scalars"])
    assert (run_dir / "projector_config.pbtxt").is_file(), "no embedding for the projector"
    [tensors] = run_dir.glob("*/test_codes/tensors.tsv")
    assert len(tensors.read_text().splitlines()) == 128  # trainer=debug: 2 test batches of 64


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_autoencoder_learns_digits_and_flags_anomalies(run, arch: str) -> None:
    """Reconstruction MSE well below the mean-image baseline; the anomaly score separates test
    digits from inverted ones (AUROC >= 0.95)."""
    from torchmetrics.functional.classification import binary_auroc

    summary = run(["model=autoencoder", f"model.arch={arch}", "logger=none"])
    dm = DigitsDataModule()
    dm.setup()
    train, test = dm.splits["train"].x, dm.splits["test"].x
    baseline = float(((test - train.mean(0)) ** 2).mean())
    assert summary["metrics"]["test/mse"] <= 0.4 * baseline, (summary["metrics"], baseline)

    ckpt = torch.load(summary["best_checkpoint"], weights_only=True)
    model = AutoencoderModule(torch.optim.Adam, **ckpt["hyper_parameters"])
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    scores = torch.cat([model.anomaly_score(test), model.anomaly_score(1.0 - test)])
    labels = torch.cat([torch.zeros(len(test)), torch.ones(len(test))]).long()
    assert float(binary_auroc(scores, labels)) >= 0.95
