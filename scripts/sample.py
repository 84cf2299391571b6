"""Draw samples from any generative checkpoint (VAE, DCGAN, DDPM) and, optionally, score them.

    python scripts/sample.py logs/runs/ddpm-digits/<run>/checkpoints/last.ckpt
    python scripts/sample.py <ckpt> --num 1000 --evaluate          # + classifier FID, confident share
    python scripts/sample.py <ckpt> --steps 1000 --eta 1           # DDPM: 1000-step ancestral
    python scripts/sample.py <ckpt> --steps 50 --eta 0             # DDPM: deterministic 50-step DDIM
    python scripts/sample.py <ckpt> --labels 3 --guidance 4        # conditional DDPM: only 3s

Writes, into a new folder (never over an earlier one; default <run>/samples/<ckpt>-<time>/):
grid.png (the first --grid samples), samples.pt (all samples as a float tensor in [0, 1], with
labels when conditional) and, with --evaluate, metrics.json: ``fid_cls`` (a FID in the feature
space of a classifier trained on the same data set, NOT Inception FID), ``confident`` (share of
samples the classifier labels with p > 0.9), and the same two scores for real held-out images
(``real_*``) for scale. --inception adds torchmetrics' standard Inception FID when torch-fidelity
and its weights are present.
"""

from __future__ import annotations

import argparse
import inspect
import json
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path

from mlzoo.run.targets import add_allow_targets_argument

# torch, torchvision and the zoo are imported after the arguments are parsed: --help and a bad
# argument answer at once (importing them takes seconds).


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("checkpoint", type=Path, help="a .ckpt file in <run>/checkpoints/")
    p.add_argument("--num", type=int, default=64, help="number of samples (default 64)")
    p.add_argument("--grid", type=int, default=64, help="samples shown in grid.png (default 64)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    p.add_argument("-o", "--out", type=Path, default=None, help="output folder (must not exist)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--batch", type=int, default=500, help="samples per forward pass")
    p.add_argument("--evaluate", action="store_true", help="score the samples (metrics.json)")
    p.add_argument("--inception", action="store_true", help="also Inception FID (torch-fidelity)")
    ddpm = p.add_argument_group("DDPM sampling")
    ddpm.add_argument(
        "--steps", default=None, help="DDIM steps, or 'ddpm' for T-step ancestral sampling"
    )
    ddpm.add_argument("--eta", type=float, default=None, help="DDIM noise (0 deterministic)")
    ddpm.add_argument("--guidance", type=float, default=None, help="classifier-free guidance w")
    ddpm.add_argument(
        "--labels", type=labels, default=None, help="class labels, e.g. 3 or 0,1,2 (cycled)"
    )
    add_allow_targets_argument(p)
    return p.parse_args(argv)


def labels(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: class labels are integers, e.g. 3 or 0,1,2"
        ) from None
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: class labels are >= 0")
    return values


def sampler_options(model, args: argparse.Namespace, n: int) -> dict:
    """Keyword arguments for model.sample(): only those the user set, and only if it takes them."""
    import torch

    from mlzoo.base.errors import ZooError

    opts: dict = {}
    if args.steps is not None:
        opts["steps"] = None if str(args.steps).lower() in ("ddpm", "none") else int(args.steps)
    if args.eta is not None:
        opts["eta"] = args.eta
    if args.guidance is not None:
        opts["guidance"] = args.guidance
    if args.labels is not None:
        chosen = torch.tensor(args.labels)
        opts["labels"] = chosen.repeat(n // len(chosen) + 1)[:n]
    accepted = inspect.signature(model.sample).parameters
    unknown = sorted(k for k in opts if k not in accepted)
    if unknown:
        flags = ", ".join(f"--{k}" for k in unknown)
        raise ZooError(f"{type(model).__name__} does not take {flags} (DDPM options)")
    return opts


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.num < 1 or args.batch < 1 or args.grid < 0:
        print("error: --num and --batch must be >= 1, --grid >= 0", file=sys.stderr)
        return 1
    from mlzoo.base.errors import ZooError, describe, fault
    from mlzoo.run.files import check_output

    out = args.out or (
        args.checkpoint.resolve().parent.parent
        / "samples"
        / f"{args.checkpoint.stem}-{datetime.now():%Y-%m-%d_%H-%M-%S_%f}"
    )
    try:
        # before any work: a new folder, in a writable one (--out: that exists; the default
        # <run>/samples/: created)
        check_output(out, "--out", parents=args.out is None)
        import torch
        from torchvision.utils import save_image

        from mlzoo.run.load import load_checkpoint

        model, datamodule, cfg = load_checkpoint(args.checkpoint, allow_targets=args.allow_targets)
        if not callable(getattr(model, "sample", None)):
            raise ZooError(f"{type(model).__name__} is not a generative model (no sample())")
        model.to(args.device)
        opts = sampler_options(model, args, args.num)
        generator = torch.Generator(device=args.device).manual_seed(args.seed)
        start, parts = time.perf_counter(), []
        for i in range(0, args.num, args.batch):
            kw = dict(opts)
            if "labels" in kw:
                kw["labels"] = kw["labels"][i : i + args.batch].to(args.device)
            n = min(args.batch, args.num - i)
            parts.append(model.sample(n, generator=generator, **kw).cpu())
        samples, seconds = torch.cat(parts), time.perf_counter() - start
        try:
            out.mkdir(parents=True)
            save_image(samples[: args.grid], out / "grid.png", nrow=8, pad_value=1.0)
            torch.save(
                {"samples": samples, **({"labels": opts["labels"]} if "labels" in opts else {})},
                out / "samples.pt",
            )
        except OSError as err:
            if describe(err) is None:  # not a file-system fault (no space, read-only, ...)
                raise
            shutil.rmtree(out, ignore_errors=True)  # new (checked above): no half-written folder
            raise fault(err, out, "write") from None
        print(f"{len(samples)} samples in {seconds:.1f} s -> {out}")
        if args.evaluate or args.inception:
            from mlzoo.metrics.sample_quality import evaluate_samples, inception_fid

            cache = cfg.get("callbacks", {}).get("sample_quality", {}).get("cache_dir")
            metrics = evaluate_samples(samples, datamodule, cache or "data/fid_classifiers")
            if args.inception:
                datamodule.setup()
                real = datamodule.transform(datamodule.splits["train"].x)
                metrics["inception_fid"] = inception_fid(samples, real)
            metrics["sampling_seconds"] = seconds
            (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
            for k, v in metrics.items():
                print(f"  {k:22s} {v:.4g}")
        return 0
    except ZooError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
