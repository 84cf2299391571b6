"""rl: the zoo's DQN and PPO against Stable-Baselines3 with rl-baselines3-zoo's CartPole-v1
hyperparameters, the same ones the zoo's configs use, run alternately on this machine, one torch
thread each. Every run evaluates the deterministic (greedy) policy for 10 episodes every 1,024
env steps, including step 0, and stops at the first evaluation whose mean return is >= 475.
Reported per run: env steps to that evaluation; seconds to it counted from the step-0
evaluation (training, evaluations included: the same for both) and from the process launch
(start-up included); env steps per second over the run. The table gives medians over seeds.
Stable-Baselines3 runs in scripts/bench_sb3.py (pip install 'mlzoo[bench]').
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, markdown, write_report

NAME, HELP = "rl", "DQN and PPO vs Stable-Baselines3 on CartPole-v1"
ENV_ID = "CartPole-v1"  # SB3's env; the zoo's DQN and PPO configs default to it
EVAL_EVERY = 1024  # env steps between evaluations (both libraries)
TARGET = 475.0
SB3_WORKER = str(ROOT / "scripts" / "bench_sb3.py")
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
COLUMNS = [
    "library",
    "algo",
    "reached 475",
    "steps to 475",
    "s to 475",
    "s to 475 from launch",
    "steps/s",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--algos", nargs="+", choices=["dqn", "ppo"], default=["dqn", "ppo"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])


def run_sb3(algo: str, seed: int) -> list[tuple[int, float, float]]:
    spec = [algo, seed, SB3_HPARAMS[algo], SB3_ENVS[algo], SB3_STEPS[algo], EVAL_EVERY, TARGET]
    out = subprocess.run(
        [sys.executable, SB3_WORKER, json.dumps([*spec, ENV_ID])],
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
                f"{stop}.monitor=val/return",
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
        return [(e.step, e.value, e.wall_time) for e in events.Scalars("val/return")]


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


def median_row(library: str, algo: str, rows: list[dict]) -> dict:
    """The medians over seeds of one library's runs of one algorithm."""
    mine = [r for r in rows if r["algo"] == algo and r["library"] == library]
    reached = [r for r in mine if r["s to 475"] is not None]

    def med(key):
        return round(statistics.median(r[key] for r in reached), 1) if reached else None

    return {
        "library": library,
        "algo": algo,
        "reached 475": f"{len(reached)}/{len(mine)}",
        "steps to 475": med("steps to 475"),
        "s to 475": med("s to 475"),
        "s to 475 from launch": med("s to 475 from launch"),
        "steps/s": round(statistics.median(r["steps/s"] for r in mine)),
    }


def main(args: argparse.Namespace) -> int:
    try:
        import stable_baselines3  # noqa: F401
    except ImportError:
        print("error: the rl benchmark needs `pip install 'mlzoo[bench]'`", file=sys.stderr)
        return 1
    rows = []
    for algo in args.algos:
        for seed in args.seeds:
            for library, runner in (("mlzoo", run_zoo), ("stable-baselines3", run_sb3)):
                launched = time.time()
                rows.append(rl_row(library, algo, seed, launched, runner(algo, seed)))
                print(json.dumps(rows[-1]), flush=True)
    libraries = ("mlzoo", "stable-baselines3")
    medians = [median_row(library, algo, rows) for algo in args.algos for library in libraries]
    per_seed = markdown(rows, ["library", "algo", "seed", *COLUMNS[3:]])
    write_report(
        f"rl: {ENV_ID}, the zoo vs Stable-Baselines3 (medians over seeds)",
        medians,
        "Per seed:\n\n" + per_seed + "\n\nEvaluation: 10 deterministic episodes every "
        f"{EVAL_EVERY} env steps; 's to 475' counts from the step-0 evaluation, "
        "evaluations included. Differences: SB3 anneals PPO's clip range with the learning "
        "rate (rl-zoo's lin_0.2); the zoo keeps clip 0.2.",
        columns=COLUMNS,
    )
    return 0
