"""LoRA (ours vs peft, folded into plain layers), transfer modes (from a run's checkpoint and from
plain modules), SimCLR's loss, few-label data."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from mlzoo.data.sklearn import DigitsDataModule
from mlzoo.models.simclr import SimCLRModule
from mlzoo.nets.lora import LoRALayer, add_lora, folded, lora_layers


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(6, 4, 3, stride=2, padding=1),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 16),
        nn.ReLU(),
        nn.Linear(16, 10),
    )


def randomize_lora(model: nn.Module) -> None:
    for layer in model.modules():
        if isinstance(layer, LoRALayer):
            nn.init.normal_(layer.lora_B.weight, std=0.1)  # B starts at 0: give it a value


def test_lora_starts_as_the_base_model_and_trains_only_its_factors() -> None:
    base = small_net()
    model = copy.deepcopy(base)
    names = add_lora(model, [".*"], r=2, alpha=4.0)
    assert names == ["0", "2", "4", "6"]
    x = torch.randn(5, 1, 8, 8)
    torch.testing.assert_close(model(x), base(x))  # B = 0
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)


def test_lora_folded_into_plain_layers_gives_the_same_outputs() -> None:
    model = small_net()
    add_lora(model, [".*"], r=3, alpha=6.0)
    randomize_lora(model)
    x = torch.randn(7, 1, 8, 8)
    weights = [p.clone() for p in model.parameters()]
    plain = folded(model)  # W + (alpha / r) B A in each base layer, no LoRA layer left
    assert not lora_layers(plain)
    assert [type(m) for m in plain] == [type(m) for m in small_net()]
    torch.testing.assert_close(plain(x), model(x), atol=1e-5, rtol=0)
    for p, w in zip(model.parameters(), weights, strict=True):  # the model itself unchanged
        torch.testing.assert_close(p, w, atol=0, rtol=0)


def test_lora_matches_peft_on_the_same_weights() -> None:
    peft = pytest.importorskip("peft")
    ours, theirs = small_net(), small_net()
    add_lora(ours, [".*"], r=2, alpha=5.0)
    randomize_lora(ours)
    config = peft.LoraConfig(r=2, lora_alpha=5.0, target_modules=["0", "2", "4", "6"])
    theirs = peft.get_peft_model(theirs, config)
    state = {}
    for name, layer in ours.named_modules():
        if isinstance(layer, LoRALayer):
            for ab in ("lora_A", "lora_B"):
                key = f"base_model.model.{name}.{ab}.default.weight"
                state[key] = getattr(layer, ab).weight.detach().clone()
    missing = set(state) - set(theirs.state_dict())
    assert not missing, missing
    theirs.load_state_dict(state, strict=False)
    x = torch.randn(6, 1, 8, 8)
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=0)


def test_lora_refuses_targets_that_match_nothing() -> None:
    with pytest.raises(ValueError, match="match no"):
        add_lora(small_net(), ["encoder.*"])


def test_nt_xent_matches_a_direct_computation() -> None:
    model = SimCLRModule(torch.optim.Adam, augmentation=lambda img: img, temperature=0.5)
    torch.manual_seed(0)
    z1, z2 = torch.randn(4, 3), torch.randn(4, 3)
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)
    losses = []
    for i in range(8):
        j = (i + 4) % 8
        sims = torch.stack([z[i] @ z[k] / 0.5 for k in range(8) if k != i])
        losses.append(-(z[i] @ z[j] / 0.5) + torch.logsumexp(sims, 0))
    torch.testing.assert_close(model.nt_xent(z1, z2), torch.stack(losses).mean())
    # views that agree with their partner score lower than views paired with the wrong image
    views = torch.eye(4)
    assert float(model.nt_xent(views, views)) < float(model.nt_xent(views, views.roll(1, 0)))


def test_labels_per_class_keeps_k_of_each_class() -> None:
    dm = DigitsDataModule(labels_per_class=3)
    dm.setup()
    assert dm.splits["train"].y.bincount().tolist() == [3] * 10
    assert len(dm.splits["test"]) == 270  # held-out sets stay whole


def from_run(ckpt: str, **kwargs) -> nn.Module:
    """A TransferModule on the encoder of a zoo run's checkpoint, built in Python."""
    import mlzoo
    from mlzoo.models.transfer import TransferModule
    from mlzoo.nets.pretrained import zoo_backbone

    return TransferModule(torch.optim.Adam, zoo_backbone(mlzoo.load(ckpt)), **kwargs)


def test_frozen_backbone_keeps_batch_norm_statistics(run, tmp_path: Path) -> None:
    pre = run(["model=simclr", "trainer=debug"], tmp_path / "logs")
    ckpt = pre["last_checkpoint"]
    for mode in ("linear", "lora"):
        model = from_run(ckpt, mode=mode)
        stats = [b.clone() for n, b in model.backbone.named_buffers() if "running_mean" in n]
        model.train()
        model(torch.rand(16, 1, 8, 8))
        after = [b for n, b in model.backbone.named_buffers() if "running_mean" in n]
        assert stats and all(torch.equal(a, b) for a, b in zip(stats, after, strict=True)), mode
    full = from_run(ckpt, mode="full")
    bn_stats = [b.clone() for n, b in full.backbone.named_buffers() if "running_mean" in n]
    full.train()
    full(torch.rand(16, 1, 8, 8)).sum().backward()
    after = [b for n, b in full.backbone.named_buffers() if "running_mean" in n]
    assert all(torch.equal(a, b) for a, b in zip(bn_stats, after, strict=True))  # kept
    assert any(p.grad is not None for p in full.backbone.parameters())  # but trained
    lora = from_run(ckpt, mode="lora", lora_dropout=0.5)
    lora.train()
    assert all(layer.dropout.training for layer in lora_layers(lora.backbone))
    assert lora.trainable_fraction <= 0.10 and math.isclose(full.trainable_fraction, 1.0)
    groups = full.configure_optimizers().param_groups
    assert [g["lr"] for g in groups] == pytest.approx([1e-3, 1e-4])  # backbone at 0.1 x


def test_transfer_and_dpo_are_built_in_python_from_modules_without_a_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Concepts take networks, not paths: a transfer model on a plain backbone and a DPO model
    on a plain GPT train a step each, with no run folder, checkpoint or config anywhere."""
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    from mlzoo.lm.arithmetic import ArithmeticTask
    from mlzoo.lm.tokenizer import CharTokenizer
    from mlzoo.models.dpo import DPOModule
    from mlzoo.models.transfer import TransferModule
    from mlzoo.nets.gpt import GPT

    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    trainer = dict(
        max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu", default_root_dir=tmp_path,
    )  # fmt: skip
    backbone = small_net()[:4]  # conv, relu, conv, flatten: 64 features
    transfer = TransferModule(torch.optim.Adam, backbone, mode="lora", input_shape=(1, 8, 8))
    assert transfer.head.in_features == 64 and transfer.backbone is backbone
    data = TensorDataset(torch.rand(8, 1, 8, 8), torch.randint(0, 10, (8,)))
    L.Trainer(**trainer).fit(transfer, DataLoader(data, batch_size=4))
    assert transfer.trainer.global_step == 1

    tok = CharTokenizer(ArithmeticTask.ALPHABET)
    gpt = GPT(tok.vocab_size, max_len=32, dim=32, layers=1, heads=2)
    dpo = DPOModule(torch.optim.AdamW, policy=gpt, tokenizer=tok, beta=0.1)
    assert dpo.reference is not gpt and not any(p.requires_grad for p in dpo.reference.parameters())
    pairs = ArithmeticTask().preference_pairs("train", 8, 0)

    def collate(rows):
        return {k: [r[k] for r in rows] for k in ("prompt", "chosen", "rejected")}

    L.Trainer(**trainer).fit(dpo, DataLoader(pairs, batch_size=4, collate_fn=collate))
    assert dpo.trainer.global_step == 1
    assert dpo.exported_hf() is None  # the zoo's GPT: nothing for transformers
    assert not list(tmp_path.rglob("*.ckpt")) and not list(tmp_path.rglob("config.yaml"))


def test_newest_run_is_resolved_by_the_entry_point_and_recorded(run, tmp_path: Path) -> None:
    """model.backbone.checkpoint=newest:simclr-digits (the default) reaches the concept as the file
    train.py found, and the run's config.yaml and checkpoint record that file."""
    from omegaconf import OmegaConf

    logs = tmp_path / "logs"
    pre = run(["model=simclr", "trainer=debug", "logger=none"], logs)
    found = sorted(Path(pre["run_dir"]).glob("checkpoints/best-*.ckpt"))[0].resolve()
    transfer = run(["model=transfer", "trainer=debug", "logger=none"], logs)
    recorded = OmegaConf.load(Path(transfer["run_dir"]) / "config.yaml")
    assert recorded.model.backbone.checkpoint == str(found)
    import mlzoo

    model = mlzoo.load(transfer["last_checkpoint"])  # its backbone from that file, then its own
    assert model(torch.rand(2, 1, 8, 8)).shape == (2, 10)


def test_transfer_errors_are_one_clear_line(tmp_path: Path, monkeypatch) -> None:
    from mlzoo.base.errors import ZooError

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty weights cache
    from omegaconf import OmegaConf

    from mlzoo.run.build import instantiate_model, resolve_checkpoint

    def build(backbone: dict, **settings):
        cfg = OmegaConf.create(
            {
                "_target_": "mlzoo.models.transfer.TransferModule",
                "optimizer": {"_target_": "torch.optim.Adam", "_partial_": True},
                "backbone": backbone,
                **settings,
            }
        )
        return instantiate_model(cfg, None)

    with pytest.raises(ZooError, match="train one first"):
        resolve_checkpoint("newest:simclr-digits", tmp_path, "model.backbone.checkpoint")
    with pytest.raises(ZooError, match=r"resolved by train\.py"):  # never a search of folders
        build({"checkpoint": "newest:simclr-digits"})
    with pytest.raises(ZooError, match="TORCH_HOME"):
        build({"torchvision": "resnet18", "weights": "DEFAULT"})
    model = build({"torchvision": "resnet18", "weights": None, "resize": 32}, mode="lora")
    assert model(torch.rand(2, 1, 8, 8)).shape == (2, 10)


def test_an_unknown_torchvision_model_or_weights_names_the_setting() -> None:
    """torchvision's "Unknown model os.system" (a ValueError, the cause train.py showed) named
    no setting: the line names model.backbone.torchvision / .weights and some valid names."""
    from mlzoo.base.errors import ZooError
    from mlzoo.nets.pretrained import torchvision_backbone

    with pytest.raises(ZooError) as caught:
        torchvision_backbone("os.system", None, False)
    message = str(caught.value)
    assert message.startswith(
        "model.backbone.torchvision='os.system' is not a torchvision classification model; it "
        "has alexnet, "
    ), message
    assert "in all)" in message and len(message) < 300
    assert caught.value.__cause__ is None  # train.py would print the innermost cause instead
    with pytest.raises(ZooError, match=r"'resnet181' .*; did you mean resnet18, "):
        torchvision_backbone("resnet181", "DEFAULT", False)
    with pytest.raises(ZooError) as caught:
        torchvision_backbone("resnet18", "NOPE", False)
    assert str(caught.value).startswith(
        "model.backbone.weights='NOPE': torchvision's resnet18 has no such weights; it has "
        "DEFAULT, IMAGENET1K_V1"
    )
    assert caught.value.__cause__ is None


@torch.no_grad()
def features(encoder: nn.Module, x: Tensor, batch: int = 512) -> Tensor:
    """encoder(x) in eval mode, flattened to (N, D), on the CPU."""
    was_training = encoder.training
    encoder.eval()
    out = torch.cat([encoder(x[i : i + batch]).flatten(1).cpu() for i in range(0, len(x), batch)])
    encoder.train(was_training)
    return out


def linear_probe_accuracy(train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor]) -> float:
    """The linear-probe yardstick of representation learning: test accuracy of a logistic
    regression fitted on standardised training features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    (xtr, ytr), (xte, yte) = train, test
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    clf.fit(xtr.flatten(1).numpy(), ytr.numpy())
    return float(clf.score(xte.flatten(1).numpy(), yte.numpy()))


@pytest.mark.slow
def test_simclr_pretraining_pays_off_with_few_labels(run, tmp_path: Path) -> None:
    """SimCLR on the digits' training images (labels unused), then:
    - a linear probe on its features with 10 labels per class beats the same probe on raw pixels
      and on a randomly initialised encoder; with all labels it reaches >= 0.97;
    - on the transfer task (10 labels per class), full fine-tuning beats training the same network
      from scratch, and LoRA (<= 10% of the parameters trainable) comes within 3 points of full
      fine-tuning and within 1 point of the linear probe."""
    from mlzoo.run.load import load_checkpoint

    log_dir = tmp_path / "logs"
    pre = run(["model=simclr", "logger=none"], log_dir)
    simclr, dm, _ = load_checkpoint(pre["best_checkpoint"])
    few = DigitsDataModule(labels_per_class=10)
    few.setup()
    test = dm.splits["test"]
    torch.manual_seed(0)
    random_encoder = SimCLRModule(torch.optim.Adam, augmentation=lambda img: img).encoder

    def probe(encoder: nn.Module | None, train) -> float:
        f = (lambda x: x) if encoder is None else (lambda x: features(encoder, x))
        return linear_probe_accuracy((f(train.x), train.y), (f(test.x), test.y))

    probes = {
        "simclr": probe(simclr.encoder, few.splits["train"]),
        "pixels": probe(None, few.splits["train"]),
        "random": probe(random_encoder, few.splits["train"]),
        "simclr_all_labels": probe(simclr.encoder, dm.splits["train"]),
    }
    assert probes["simclr"] > max(probes["pixels"], probes["random"]), probes
    assert probes["simclr_all_labels"] >= 0.97, probes

    acc = {}  # mean test accuracy over 3 seeds: one test digit is 0.4 points
    for mode in ("scratch", "linear", "full", "lora"):
        runs = [
            run(["model=transfer", f"model.mode={mode}", f"seed={seed}", "logger=none"], log_dir)
            for seed in (0, 1, 2)
        ]
        acc[mode] = sum(r["metrics"]["test/acc"] for r in runs) / len(runs)
    report = {"probes": probes, "transfer": acc}
    assert acc["full"] > acc["scratch"], report
    # LoRA and the probe differ by a test digit or two either way: SimCLR's features vary from
    # run to run, so LoRA is asked to come within one point of the probe, not to beat it
    assert acc["lora"] >= acc["full"] - 0.03 and acc["lora"] >= acc["linear"] - 0.01, report


def test_simclr_logs_its_online_probe_and_projector_features(run) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    summary = run(["model=simclr", "trainer=debug"])
    run_dir = Path(summary["run_dir"])
    events = EventAccumulator(str(run_dir))
    events.Reload()
    assert {"train/loss", "val/loss", "val/probe_acc", "test/probe_acc"} <= set(
        events.Tags()["scalars"]
    )
    assert (run_dir / "projector_config.pbtxt").is_file()
    assert summary["monitor"]["metric"] == "val/probe_acc"
