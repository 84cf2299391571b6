"""gpu: the CNN on digits, MNIST and CIFAR-10 (random crops; flips too for CIFAR-10), its batches
built by a DataLoader on the CPU (with each of --num-workers' worker counts) or on the device
from the split held there (data.on_device), in fp32 and in bf16 mixed precision: training
samples/s. MNIST and CIFAR-10 are read from data/ when present, else replaced by random images
of the same shape and count (benchmarks/synthetic.py, marked 'synthetic'): no download, and
samples/s does not depend on the pixels.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from benchmarks.common import run_zoo_throughput, steady, write_report

NAME, HELP = "gpu", "data on the device vs a DataLoader; bf16 on and off"
SYNTHETIC = "data._target_=benchmarks.synthetic.{}"  # random images when the files are absent
GPU_SETS = {  # name: overrides (the CNN; MNIST and CIFAR-10 with their random crops and flips)
    "digits": ["model=cnn", "data=digits"],
    "mnist": ["model=cnn", "data=mnist", "data.augment=true", SYNTHETIC.format("MNISTDataModule")],
    "cifar10": [
        "model=cnn",
        "data=cifar10",
        "data.augment=true",
        SYNTHETIC.format("CIFAR10DataModule"),
    ],
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--sets", nargs="+", choices=list(GPU_SETS), default=list(GPU_SETS))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--limit-batches", type=int, default=None, help="batches per epoch")
    parser.add_argument(
        "--num-workers", type=int, nargs="+", default=[0], help="DataLoader rows: worker counts"
    )


def main(args: argparse.Namespace) -> int:
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit(
            "gpu: no CUDA device here. `--device cpu` runs the same comparison on the CPU "
            "(on_device then means batches indexed in memory instead of collated one by one)."
        )
    device = ["trainer=gpu"] if args.device == "cuda" else ["trainer=cpu"]
    limit = []
    if args.limit_batches:  # per epoch, training and validation alike
        limit = [f"+trainer.limit_{s}_batches={args.limit_batches}" for s in ("train", "val")]
    # one DataLoader per worker count, then the batches built on the device (which has no workers)
    loaders = [(False, w) for w in args.num_workers] + [(True, 0)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sets:
            base = None
            for on_device, workers in loaders:
                for precision in ("32-true", "bf16-mixed"):
                    overrides = [
                        *GPU_SETS[name],
                        *device,
                        *limit,
                        f"data.on_device={str(on_device).lower()}",
                        f"data.num_workers={workers}",
                        f"trainer.precision={precision}",
                    ]
                    r = run_zoo_throughput(overrides, args.epochs, Path(tmp))
                    rate = steady(r["epochs"])
                    base = base or rate
                    synthetic = "SYNTHETIC" in r["stdout"] + r["stderr"]  # synthetic.py's warning
                    rows.append(
                        {
                            "data": name + (" (synthetic)" if synthetic else ""),
                            "batches": "on the device"
                            if on_device
                            else f"DataLoader, {workers} workers",
                            "precision": precision,
                            "samples/s": round(rate),
                            "vs DataLoader fp32": f"{rate / base:.2f}",
                            "s to 1st step": f"{r['first_step_at'] - r['launched']:.1f}",
                        }
                    )
                    print(json.dumps(rows[-1]), flush=True)
    write_report(
        f"gpu: data on the device vs a DataLoader, bf16 on and off ({args.device})",
        rows,
        "The CNN's default configuration per data set (random crops for MNIST, crops and flips "
        "for CIFAR-10). 'DataLoader': examples indexed and augmented one by one on the CPU (in "
        "the training process with 0 workers), collated, then copied to the device; 'on the device': the split held there as uint8, "
        "each batch one indexing operation, augmentation batched on the device "
        "(data.on_device=true). samples/s: training batches only, median over epochs after the "
        "first. 'synthetic': the data files were absent, random images of the published shape "
        "and count stood in.",
    )
    return 0
