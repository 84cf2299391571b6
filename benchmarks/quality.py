"""quality: every concept's default run (python train.py model=<concept>): its wall time, its
peak memory and the test metric that says how well it learned, against issue 10's bar (10
minutes and 4 GiB on 2 CPU cores)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from benchmarks.common import run_measured, write_report

NAME, HELP = "quality", "every concept's default run: time, memory, metric"
# The order matters: transfer starts from the newest SimCLR run, DPO from the newest SFT run.
QUALITY_RUNS = {  # concept: (overrides, the test metric that says how well it learned)
    "mlp": (["model=mlp"], "test/acc"),
    "cnn": (["model=cnn"], "test/acc"),
    "rnn": (["model=rnn"], "test/acc"),
    "autoencoder": (["model=autoencoder"], "test/mse"),
    "vae": (["model=vae"], "test/elbo"),
    "dcgan": (["model=dcgan"], "test/fid_cls"),
    "ddpm": (["model=ddpm"], "test/fid_cls"),
    "simclr": (["model=simclr"], "test/probe_acc"),
    "transfer": (["model=transfer"], "test/acc"),
    "dqn": (["model=dqn"], "test/return"),
    "ppo": (["model=ppo"], "test/return"),
    "sft": (["model=sft"], "test/correct"),
    "dpo": (["model=dpo"], "test/win_rate"),
}
LIMIT_S, LIMIT_GIB = 600, 4.0  # issue 10's bar for every default run on 2 CPU cores


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--only", nargs="+", choices=list(QUALITY_RUNS), default=None)


def main(args: argparse.Namespace) -> int:
    rows = []
    with tempfile.TemporaryDirectory() as logs:
        for concept, (overrides, key) in QUALITY_RUNS.items():
            if args.only and concept not in args.only:
                continue
            command = [sys.executable, "train.py", *overrides, f"paths.log_dir={logs}"]
            seconds, gib, code = run_measured(command)
            found = sorted(Path(logs).glob(f"runs/{concept}-*/*/summary.json"))
            summary = json.loads(found[-1].read_text()) if found and code == 0 else {}
            metrics = summary.get("metrics", {})
            if key not in metrics:  # print what there is, to fix the table's choice
                print(f"{concept}: no {key} in {sorted(metrics)}", file=sys.stderr)
            within = seconds <= LIMIT_S and gib <= LIMIT_GIB and code == 0
            rows.append(
                {
                    "concept": concept,
                    "data": summary.get("data", "?"),
                    "epochs": summary.get("epochs", "?"),
                    "metric": key,
                    "value": f"{metrics[key]:.4g}" if key in metrics else "failed",
                    "wall s": f"{seconds:.0f}",
                    "peak RSS GiB": f"{gib:.2f}",
                    "within 10 min, 4 GiB": "yes" if within else "NO",
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    write_report(
        "quality: every concept's default run (python train.py model=<concept>)",
        rows,
        "Wall time of the whole process (start-up, training, validation, test); peak RSS of "
        "the training process. The metric: on the test split, of the checkpoint the run "
        "selected (its best by the monitored validation metric).",
    )
    return 0
