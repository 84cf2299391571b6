"""How good are generated images? Offline metrics in the feature space of a classifier we train.

The standard FID (Heusel et al. 2017) compares generated and real images in the 2048-d feature
space of an ImageNet Inception network. Its weights are a download, and ImageNet features say little
about 8x8 digits. So the zoo's default is a **classifier FID** (``fid_cls``): the same Frechet
distance between Gaussians fitted to features,

    FID = ||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2))

but the features are the penultimate layer (64 numbers) of a small CNN trained here on the same
data set's training split. It is NOT Inception FID: the numbers are comparable between runs of the
zoo on the same data set and image size, not with papers. Beside it, ``confident`` is the share of
samples that the classifier labels with probability > 0.9 (real test digits: 95%): a blurry
or ambiguous sample fails it.

The classifier is trained once per (data set, image size, split) and cached as a weights-only file
under ``cache_dir``; torchmetrics' ``FrechetInceptionDistance`` computes the distance with it as a
custom feature extractor. ``inception_fid`` gives the standard FID when the Inception weights are
present (torchmetrics + torch-fidelity).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mlzoo.base.errors import ZooError
from mlzoo.nets.cnn import ConvNet

log = logging.getLogger("mlzoo")

FEATURES = 64  # width of the classifier's penultimate layer: the FID feature space
CONFIDENCE = 0.9


class FeatureClassifier(nn.Module):
    """A small CNN classifier; ``features(x)`` is its penultimate layer (eval mode)."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        c, h, w = input_shape
        self.net = ConvNet(c, num_classes, (h, w), channels=(32, 64), hidden=FEATURES)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def features(self, x: Tensor) -> Tensor:
        return self.net.head[:-2](self.net.features(x))  # up to the last Linear: (B, FEATURES)


class _Features(nn.Module):
    """The classifier as torchmetrics' custom FID feature extractor."""

    num_features = FEATURES

    def __init__(self, classifier: FeatureClassifier) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier.features(x)


def _batches(x: Tensor, size: int = 500):
    return (x[i : i + size] for i in range(0, len(x), size))


@torch.no_grad()
def accuracy(classifier: nn.Module, x: Tensor, y: Tensor) -> float:
    classifier.eval()
    pred = torch.cat([classifier(b).argmax(1) for b in _batches(x)])
    return float((pred == y).float().mean())


def train_classifier(
    train: tuple[Tensor, Tensor], num_classes: int, epochs: int | None = None, seed: int = 0
) -> FeatureClassifier:
    """Adam on cross-entropy with small random shifts, seeded: the same data give the same net.

    Outlier exposure (Hendrycks et al. 2019): each batch also holds uniform-noise images with a
    uniform target, so the classifier is NOT confident on noise (without it, 70% of pure-noise
    images got p > 0.9 here, which would make ``confident`` meaningless).
    """
    with torch.inference_mode(False), torch.enable_grad():  # callable from Lightning's test loop
        return _train_classifier(train[0].clone(), train[1].clone(), num_classes, epochs, seed)


def _train_classifier(
    x: Tensor, y: Tensor, num_classes: int, epochs: int | None, seed: int
) -> FeatureClassifier:
    epochs = epochs or max(2, min(40, 50_000 // len(x)))
    lo, hi = float(x.min()), float(x.max())
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():  # leave the caller's RNG stream (e.g. a training run) untouched
        torch.manual_seed(seed)
        model = FeatureClassifier(tuple(x.shape[1:]), num_classes)
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        for _ in range(epochs):
            model.train()
            for idx in torch.randperm(len(x), generator=gen).split(64):
                pad = max(1, x.shape[-1] // 8)  # shift by up to 1/8 of the width
                dx, dy = torch.randint(-pad, pad + 1, (2,), generator=gen).tolist()
                xb = torch.roll(x[idx], shifts=(dy, dx), dims=(-2, -1))
                noise = lo + (hi - lo) * torch.rand(len(idx) // 4, *x.shape[1:], generator=gen)
                target = torch.cat(
                    [
                        F.one_hot(y[idx], num_classes).float(),
                        torch.full((len(noise), num_classes), 1.0 / num_classes),
                    ]
                )
                loss = F.cross_entropy(model(torch.cat([xb, noise])), target)
                opt.zero_grad()
                loss.backward()
                opt.step()
    return model.eval()


def _real_split(datamodule: Any, split: str) -> tuple[Tensor, Tensor]:
    """A split's inputs as the model sees them (after the data module's per-batch transform)."""
    datamodule.setup()
    s = datamodule.splits[split]
    return torch.cat([datamodule.transform(b) for b in _batches(s.x)]), s.y


def load_classifier(
    datamodule: Any, cache_dir: str | os.PathLike, epochs: int | None = None
) -> FeatureClassifier:
    """The data set's feature classifier: from the cache, or trained now (once per data set and
    image size, announced in one line) and cached. ``epochs`` (default: enough for ~50k images
    seen, 2 to 40) is part of the cached file's name when set."""
    x, y = _real_split(datamodule, "train")
    num_classes = int(datamodule.spec["num_classes"])
    if num_classes < 2:
        raise ZooError("sample quality needs a labelled image data set (digits, mnist, ...)")
    shape = "x".join(str(d) for d in x.shape[1:])
    name = f"{type(datamodule).__name__}-{shape}-split{datamodule.split_seed}-n{len(x)}"
    path = Path(cache_dir) / (f"{name}-{epochs}epochs.pt" if epochs else f"{name}.pt")
    model = FeatureClassifier(tuple(x.shape[1:]), num_classes)
    if path.is_file():
        try:
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            return model.eval()
        except Exception:  # a corrupt or stale cache file: train again and replace it
            pass
    log.info(f"Training the sample-quality classifier once for this data set; cached as {path}")
    model = train_classifier((x, y), num_classes, epochs)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(model.state_dict(), tmp)
    tmp.replace(path)  # atomic: a reader never sees half a file
    return model


class SampleScorer:
    """Scores batches of samples against one data set's training split.

    The classifier and the real images' feature statistics are computed once (torchmetrics'
    ``reset_real_features=False``), so scoring every epoch costs only the samples' features.
    """

    def __init__(
        self,
        datamodule: Any,
        cache_dir: str | os.PathLike,
        confidence: float = CONFIDENCE,
        classifier_epochs: int | None = None,
    ) -> None:
        from torchmetrics.image.fid import FrechetInceptionDistance

        self.datamodule, self.confidence = datamodule, confidence
        self.classifier = load_classifier(datamodule, cache_dir, classifier_epochs)
        self.fid = FrechetInceptionDistance(
            feature=_Features(self.classifier),
            normalize=True,
            reset_real_features=False,
            sync_on_compute=False,  # every DDP rank scores the same samples: nothing to gather
        )
        with torch.no_grad():
            for b in _batches(_real_split(datamodule, "train")[0]):
                self.fid.update(b, real=True)

    @torch.no_grad()
    def __call__(self, samples: Tensor) -> dict[str, float]:
        """``fid_cls`` of the samples, and the share classified with p > confidence."""
        if len(samples) < 2:
            raise ValueError("sample quality needs at least 2 samples")
        samples = samples.detach().float().cpu()
        self.fid.reset()  # forgets the previous samples, keeps the real statistics
        for b in _batches(samples):
            self.fid.update(b, real=False)
        probs = torch.cat([self.classifier(b).softmax(1) for b in _batches(samples)])
        return {
            "fid_cls": float(self.fid.compute()),
            "confident": float((probs.max(1).values > self.confidence).float().mean()),
        }

    def reference(self) -> dict[str, float]:
        """The floor on this data set: held-out real test images scored the same way."""
        test_x, test_y = _real_split(self.datamodule, "test")
        real = self(test_x)
        return {
            "real_fid_cls": real["fid_cls"],
            "real_confident": real["confident"],
            "classifier_test_acc": accuracy(self.classifier, test_x, test_y),
        }


def evaluate_samples(
    samples: Tensor, datamodule: Any, cache_dir: str | os.PathLike
) -> dict[str, float]:
    """The one evaluation path for every generative model (VAE, DCGAN, DDPM): the samples' scores,
    their number, and the real test split's scores for scale."""
    scorer = SampleScorer(datamodule, cache_dir)
    return {**scorer(samples), "num_samples": float(len(samples)), **scorer.reference()}


def inception_fid(samples: Tensor, real: Tensor) -> float:
    """Standard Inception FID (torchmetrics). Needs torch-fidelity and the Inception weights in
    TORCH_HOME's cache: offline and without them, one clear error instead of a traceback."""
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance

        fid = FrechetInceptionDistance(feature=2048, normalize=True)
    except Exception as err:  # ModuleNotFoundError (torch-fidelity) or a failed weights download
        home = os.environ.get("TORCH_HOME", "~/.cache/torch")
        raise ZooError(
            "Inception FID needs `pip install torch-fidelity` and the FID Inception weights "
            f"(weights-inception-2015-12-05-6726825d.pth) under {home}/hub/checkpoints: "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        ) from err

    def rgb(x: Tensor) -> Tensor:  # grey -> 3 channels, and at least 75 pixels for Inception
        x = x.float().clamp(0, 1).expand(-1, 3, -1, -1) if x.shape[1] == 1 else x.float()
        return F.interpolate(x, size=(299, 299), mode="bilinear") if x.shape[-1] < 75 else x

    for b in _batches(real, 100):
        fid.update(rgb(b), real=True)
    for b in _batches(samples, 100):
        fid.update(rgb(b), real=False)
    return float(fid.compute())
