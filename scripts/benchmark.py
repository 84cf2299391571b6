"""Benchmarks, each printed as a table and appended to BENCHMARKS.md with the machine it ran on.

    python scripts/benchmark.py rl [--algos dqn ppo] [--seeds 0 1 2]    (pip install 'mlzoo[bench]')

rl: the zoo's DQN and PPO against Stable-Baselines3 with rl-baselines3-zoo's CartPole-v1
hyperparameters, the same ones the zoo's configs use, run alternately on this machine, one torch
thread each. Every run evaluates the deterministic (greedy) policy for 10 episodes every 1,024
env steps, including step 0, and stops at the first evaluation whose mean return is >= 475.
Reported per run: env steps to that evaluation; seconds to it counted from the step-0
evaluation (training, evaluations included: the same for both) and from the process launch
(start-up included); env steps per second over the run. The table gives medians over seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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


def write_report(title: str, command: str, table: str, notes: str = "") -> None:
    text = (
        f"\n## {title} ({datetime.now():%Y-%m-%d %H:%M})\n\n"
        f"Machine: {machine()}  \nCommand: `{command}`\n\n{table}\n"
        + (f"\n{notes}\n" if notes else "")
    )
    print(text)
    path = ROOT / "BENCHMARKS.md"
    if not path.exists():
        path.write_text("# Benchmarks\n\nAppended by `scripts/benchmark.py`; newest last.\n")
    with path.open("a") as f:
        f.write(text)


def markdown(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


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
        "python scripts/benchmark.py rl " + " ".join(sys.argv[2:]),
        markdown(medians, cols),
        "Per seed:\n\n" + per_seed + "\n\nEvaluation: 10 deterministic episodes every "
        f"{EVAL_EVERY} env steps; 's to 475' counts from the step-0 evaluation, "
        "evaluations included. Differences: SB3 anneals PPO's clip range with the learning "
        "rate (rl-zoo's lin_0.2); the zoo keeps clip 0.2.",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rl = sub.add_parser("rl", help="DQN and PPO vs Stable-Baselines3 on CartPole-v1")
    rl.add_argument("--algos", nargs="+", choices=["dqn", "ppo"], default=["dqn", "ppo"])
    rl.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = parser.parse_args(argv)
    if args.command == "rl":
        try:
            import stable_baselines3  # noqa: F401
        except ImportError:
            print("error: the rl benchmark needs `pip install 'mlzoo[bench]'`", file=sys.stderr)
            return 1
        bench_rl(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
