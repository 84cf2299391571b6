"""Export a trained model for use outside the zoo.

    python scripts/export.py <ckpt> --format hf                 # SFT/DPO on a Hugging Face policy
    python scripts/export.py <ckpt> --format hf -o merged/ --dtype bfloat16

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

from mlzoo.core.targets import add_allow_targets_argument

FORMATS = ("hf",)
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


def hf_policy(model):
    """(the HFCausalLM, its HFTokenizer) of an SFT or DPO module on a Hugging Face policy."""
    from mlzoo.core.errors import ZooError
    from mlzoo.lm.hf import HFCausalLM

    lm = getattr(model, "policy", None) or getattr(model, "lm", None)
    if not isinstance(lm, HFCausalLM):
        raise ZooError(
            f"--format hf: the checkpoint's {type(model).__name__} has no Hugging Face policy "
            "(only SFT and DPO runs with model.policy=smollm2, a folder or a hub name)"
        )
    return lm, model.tokenizer


def export_hf(model, out: Path, dtype: str) -> None:
    import torch

    lm, tokenizer = hf_policy(model)
    hf = lm.hf.merge_and_unload() if lm.has_adapter else lm.hf  # W <- W + (alpha / r) B A
    hf.to(getattr(torch, dtype)).save_pretrained(out)
    tokenizer.tok.save_pretrained(out)  # with its chat template


EXPORTERS = {"hf": export_hf}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # imported after parsing: --help and bad arguments answer at once
    from mlzoo.core.checkpoint import load_checkpoint
    from mlzoo.core.errors import ZooError

    out = args.out or (
        args.checkpoint.resolve().parent.parent / "export" / f"{args.checkpoint.stem}-{args.format}"
    )
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        if out.exists():
            raise ZooError(f"--out {out} exists: choose a new name (nothing is overwritten)")
        model, _, _ = load_checkpoint(args.checkpoint, allow_targets=args.allow_targets)
        if args.format == "hf":
            hf_policy(model)  # before anything is written
        tmp.mkdir(parents=True)
        EXPORTERS[args.format](model, tmp, args.dtype)
        os.replace(tmp, out)
        print(f"{args.format} -> {out}")
        return 0
    except ZooError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
