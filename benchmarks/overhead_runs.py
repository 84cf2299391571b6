"""The overhead benchmark's runs: the zoo's network, tensors and optimizer saved for the plain
loop (benchmarks/plain_loop.py), the plain loop in a process of its own, both side by side on
two cores, and the zoo taking a plain-loop step after each of its own (benchmarks/interleaved.py)."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import ROOT, on_core, run_zoo_throughput

PLAIN_LOOP = str(ROOT / "benchmarks" / "plain_loop.py")  # the baseline; imports only torch


def plain_inputs(overrides: list[str], folder: Path) -> dict:
    """The zoo's own network (initial weights), training tensors and optimizer, for the plain
    loop: composed and instantiated exactly as train.py does."""
    import hydra
    import torch
    from hydra import compose, initialize_config_dir

    from mlzoo.run.build import instantiate_model
    from mlzoo.run.train import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    torch.manual_seed(0)
    dm = hydra.utils.instantiate(cfg.data, _convert_="all")
    dm.setup()
    module = instantiate_model(cfg.model, dm)
    configured = module.configure_optimizers()
    optimizer = configured["optimizer"] if isinstance(configured, dict) else configured
    kwargs = {
        k: v for k, v in optimizer.param_groups[0].items() if k not in ("params", "initial_lr")
    }
    accepted = inspect.signature(type(optimizer).__init__).parameters
    kwargs = {k: v for k, v in kwargs.items() if k in accepted}
    train = dm.splits["train"]
    file = folder / "plain.pt"
    torch.save({"net": module.net, "x": dm.transform(train.x), "y": train.y}, file)
    return {
        "file": str(file),
        "optimizer": type(optimizer).__name__,
        "optimizer_kwargs": kwargs,
        "batch_size": dm.batch_size,
        "indexed": dm.on_device,
    }


def run_overhead_plain(spec: dict, epochs: int) -> dict:
    launched = time.time()
    out = subprocess.run(
        [sys.executable, PLAIN_LOOP, json.dumps({**spec, "epochs": epochs})],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout
    total = time.time() - launched
    line = next(ln for ln in out.splitlines() if ln.startswith("RESULT "))
    return {"launched": launched, "total": total, **json.loads(line[7:])}


def run_side_by_side(overrides: list[str], spec: dict, epochs: int, folder: Path, cores) -> tuple:
    """The zoo on one core and, at the same time, the plain loop on the other: whatever the
    machine does meanwhile, both feel it. The plain loop runs until the zoo is done; its epochs
    that fall within the zoo's training count."""
    plain = subprocess.Popen(
        [sys.executable, PLAIN_LOOP, json.dumps({**spec, "epochs": 10**6})],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        preexec_fn=on_core(cores[1]),
    )
    try:
        zoo = run_zoo_throughput(overrides, epochs, folder, core=cores[0])
    finally:
        plain.kill()
    lines = plain.communicate()[0].splitlines()
    start, end = zoo["first_step_at"], zoo["epochs"][-1]["ended_at"]
    beside = [
        e
        for e in (json.loads(ln[6:]) for ln in lines if ln.startswith("EPOCH "))
        if e["ended_at"] - e["seconds"] >= start and e["ended_at"] <= end
    ]
    if len(beside) < 2:
        sys.exit("overhead --side-by-side: the plain loop ran fewer than 2 epochs beside the zoo")
    return zoo, {"epochs": beside}


def run_interleaved(
    overrides: list[str], spec: dict, epochs: int, folder: Path, allow: tuple[str, ...] = ()
) -> dict:
    """A zoo run that takes one plain-loop step after each of its own (benchmarks/interleaved.py);
    ``allow``: more modules (on PYTHONPATH) whose callbacks the overrides add."""
    spec_file = folder / "plain_spec.json"
    spec_file.write_text(json.dumps(spec))
    return run_zoo_throughput(
        [*overrides, f"+callbacks.throughput.spec={spec_file}"],
        epochs,
        folder,
        callback="benchmarks.interleaved.InterleavedPlainLoop",
        allow=allow,
    )


def plain_epochs(run: dict) -> list[dict]:
    """The plain loop's epochs inside an interleaved zoo run."""
    return [{"samples": e["plain_samples"], "seconds": e["plain_seconds"]} for e in run["epochs"]]


def ratios(run: dict) -> list[float]:
    """Per epoch after the first: the zoo's samples/s over the plain loop's beside it."""
    return [
        (z["samples"] / z["seconds"]) / (p["samples"] / p["seconds"])
        for z, p in zip(run["epochs"][1:], plain_epochs(run)[1:], strict=True)
    ]
