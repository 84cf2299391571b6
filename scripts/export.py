"""Export a trained model for use outside the zoo.

    python scripts/export.py <ckpt> --format onnx               # ONNX Runtime, any language
    python scripts/export.py <ckpt> --format torchscript        # torch.jit.load, no zoo needed
    python scripts/export.py <ckpt> --format hf                 # SFT/DPO on a Hugging Face policy
    python scripts/export.py <ckpt> --format hf -o merged/ --dtype bfloat16

``onnx`` / ``torchscript``: a folder with one file per network (``<name>.onnx`` or
``<name>.pt``, the batch dimension free) and ``export.json`` naming each one's inputs and
outputs, and ``preprocessing`` (every data set of the zoo: digits, diabetes, the torchvision
sets, tables, image folders): how a raw row, array or image file becomes the input ``x`` and the
output an answer (feature order, scaling,
one-hot categories, class names; image size, channels, resize, normalisation), in plain numbers
(``"format": 1``; the fields are in the README, "Using a trained model: predict and export"), so
that the folder is usable alone (numpy, PIL, onnxruntime):

- supervised models (mlp, cnn, rnn, transfer): ``net``, x -> logits (or the standardised
  regression value: multiply by ``target_std`` and add ``target_mean``, both in export.json);
- autoencoder: ``encoder`` x -> z and ``decoder`` z -> x_hat in [0, 1]; VAE: ``encoder``
  x -> (mu, logvar) and ``decoder`` z -> pixel probabilities;
- DDPM: ``denoiser`` (x_t, t[, y]) -> the predicted noise eps, with the EMA weights it samples with;
- DQN and PPO: ``policy``, raw observations -> (greedy action, Q-values / logits or mean); PPO's
  observation normalisation (running mean and std) is inside it, so an environment's
  observations go in as they are.

(Each model says what it exports: ZooModule.exported_networks, exported_facts, exported_hf.)

Inputs are what the network takes in the zoo: images as the data module's transform gives them
(floats in [0, 1] for the offline and torchvision sets; DDPM's x_t in [-1, 1]).

TorchScript is deprecated by PyTorch: ``torchscript`` still writes files torch.jit.load reads
(without showing torch.jit's FutureWarnings), but ONNX is the supported path.

``hf``: the policy of an SFT or DPO run on a Hugging Face model (``model.policy=smollm2``, a
folder or a hub name) as a plain Hugging Face folder, with a LoRA adapter merged into the base
weights (peft's merge_and_unload: W + (alpha / r) B A, so no peft is needed to use it) and the
tokenizer with its chat template beside it. ``AutoModelForCausalLM.from_pretrained(folder)``
loads it, and so does the zoo (``model.policy=<folder>``).

Writes into a new folder (never over an earlier one; default <run>/export/<ckpt>-hf/), built
under a temporary name and renamed when complete, so an interrupted export leaves nothing half
written under the final name.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from mlzoo.run.export import FORMATS
from mlzoo.run.targets import add_allow_targets_argument

DTYPES = ("float32", "bfloat16", "float16")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("checkpoint", type=Path, help="a .ckpt file in <run>/checkpoints/")
    p.add_argument("--format", required=True, choices=FORMATS, help="what to write")
    p.add_argument("-o", "--out", type=Path, default=None, help="output (must not exist)")
    p.add_argument("--dtype", default="float32", choices=DTYPES, help="hf: weight dtype")
    add_allow_targets_argument(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from mlzoo.base.errors import ZooError, describe, fault
    from mlzoo.run.files import check_output

    out = args.out or (
        args.checkpoint.resolve().parent.parent / "export" / f"{args.checkpoint.stem}-{args.format}"
    )
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        # before any work: a new folder, in a writable one (-o: that exists; the default
        # <run>/export/: created)
        check_output(out, "--out", parents=args.out is None)
        # imported after the checks: --help and bad arguments answer at once
        from mlzoo.run.export import export, exported
        from mlzoo.run.load import load_checkpoint

        model, datamodule, _ = load_checkpoint(args.checkpoint, allow_targets=args.allow_targets)
        what = exported(model, args.format)  # before anything is written
        preprocessing = None
        if args.format != "hf":  # the data module's description, with the checkpoint's state
            from mlzoo.run.checkpoint import read_checkpoint
            from mlzoo.run.export import described_inputs

            saved = read_checkpoint(args.checkpoint).get(type(datamodule).__qualname__)
            try:
                preprocessing, note = described_inputs(datamodule, saved)
            except ZooError as err:
                raise ZooError(f"{args.checkpoint}: {err}") from None
            if note:
                print(note, file=sys.stderr)
        try:
            tmp.mkdir(parents=True)
            export(model, tmp, args.format, args.dtype, what, preprocessing)
            os.replace(tmp, out)
        except OSError as err:
            if describe(err) is None:  # not a file-system fault (no space, read-only, ...)
                raise
            raise fault(err, out, "write") from None
        print(f"{args.format} -> {out}")
        return 0
    except ZooError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
