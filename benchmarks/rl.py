"""rl: the zoo's DQN and PPO against Stable-Baselines3, per env, with rl-baselines3-zoo's
hyperparameters on both sides (the zoo's experiment presets copy them), run alternately on this
machine, one torch thread each. Every run evaluates the deterministic (greedy) policy for 10
episodes every ``every`` env steps (the zoo's epoch), including step 0, and stops at the first
evaluation whose mean return reaches the pair's target, or at its budget.

    python benchmarks/run.py rl                                  # CartPole-v1, both algos
    python benchmarks/run.py rl --env acrobot lunarlander --seeds 0

Reported per run: env steps to the target; seconds to it counted from the step-0 evaluation
(training, evaluations included: the same for both) and from the process launch (start-up
included); the best evaluation; env steps per second over the run. The table gives medians over
seeds. Stable-Baselines3 runs in benchmarks/sb3_worker.py (pip install 'mlzoo[bench]').
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import ROOT, env_needs, markdown, refuse_missing, write_report

NAME, HELP = "rl", "DQN and PPO vs Stable-Baselines3, per env, with rl-zoo's hyperparameters"
SB3_WORKER = str(ROOT / "benchmarks" / "sb3_worker.py")


@dataclass(frozen=True)
class Bench:
    """One (algorithm, env) pair: the same hyperparameters on both sides (rl-baselines3-zoo's
    hyperparams/{dqn,ppo}.yml, which the zoo's experiment presets copy), evaluated every
    ``every`` env steps (the zoo's epoch: it validates once per epoch) up to ``steps``."""

    env_id: str  # Gymnasium's id, for SB3
    zoo: tuple[str, ...]  # the zoo's overrides
    sb3: dict = field(default_factory=dict)  # SB3's keyword arguments
    n_envs: int = 1
    steps: int = 100_000
    every: int = 1024
    target: float = 475.0  # the bar, else rl-zoo's published return
    extra: dict = field(default_factory=dict)  # SB3 worker: normalize, env_kwargs


# fmt: off
_DQN_ACROBOT = dict(  # rl-zoo's Acrobot-v1 and LunarLander-v2 DQN
    learning_rate=6.3e-4, batch_size=128, buffer_size=50_000, learning_starts=0, gamma=0.99,
    target_update_interval=250, train_freq=4, gradient_steps=-1, exploration_fraction=0.12,
    exploration_final_eps=0.1, policy_kwargs=dict(net_arch=[256, 256]),
)
_PPO_LUNAR = dict(n_steps=1024, batch_size=64, gae_lambda=0.98, gamma=0.999, n_epochs=4,
                  ent_coef=0.01)
BENCHES = {
    ("dqn", "cartpole"): Bench(
        "CartPole-v1",
        ("model=dqn", "data.iterations_per_epoch=4"),
        dict(learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1000,
             gamma=0.99, target_update_interval=10, train_freq=256, gradient_steps=128,
             exploration_fraction=0.16, exploration_final_eps=0.04,
             policy_kwargs=dict(net_arch=[256, 256])),
        steps=51_200,
    ),
    ("ppo", "cartpole"): Bench(
        "CartPole-v1",
        ("model=ppo", "data.iterations_per_epoch=4"),
        dict(n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0,
             learning_rate="lin_0.001", clip_range="lin_0.2"),
        n_envs=8, steps=102_400,
    ),
    ("dqn", "acrobot"): Bench(
        "Acrobot-v1", ("experiment=dqn_acrobot",), _DQN_ACROBOT, every=5000, target=-100.0
    ),
    ("dqn", "mountaincar"): Bench(
        "MountainCar-v0",
        ("experiment=dqn_mountaincar",),
        dict(learning_rate=4e-3, batch_size=128, buffer_size=10_000, learning_starts=1000,
             gamma=0.98, target_update_interval=600, train_freq=16, gradient_steps=8,
             exploration_fraction=0.2, exploration_final_eps=0.07,
             policy_kwargs=dict(net_arch=[256, 256])),
        steps=120_000, every=6000, target=-130.0,
    ),
    ("dqn", "lunarlander"): Bench(
        "LunarLander-v3", ("experiment=dqn_lunarlander",), _DQN_ACROBOT, every=5000, target=154.0
    ),
    ("ppo", "acrobot"): Bench(
        "Acrobot-v1",
        ("experiment=ppo_acrobot",),
        dict(n_steps=256, batch_size=64, gae_lambda=0.94, gamma=0.99, n_epochs=4, ent_coef=0.0),
        n_envs=16, steps=983_040, every=49_152, target=-100.0, extra=dict(normalize=True),
    ),
    ("ppo", "mountaincar"): Bench(
        "MountainCar-v0",
        ("experiment=ppo_mountaincar",),
        dict(n_steps=16, batch_size=64, gae_lambda=0.98, gamma=0.99, n_epochs=4, ent_coef=0.0),
        n_envs=16, steps=1_003_520, every=50_176, target=-130.0, extra=dict(normalize=True),
    ),
    ("ppo", "lunarlander"): Bench(
        "LunarLander-v3", ("experiment=ppo_lunarlander",), _PPO_LUNAR,
        n_envs=16, steps=983_040, every=49_152, target=200.0,
    ),
    ("ppo", "lunarlander_continuous"): Bench(
        "LunarLander-v3", ("experiment=ppo_lunarlander_continuous",), _PPO_LUNAR,
        n_envs=16, steps=983_040, every=49_152, target=200.0,
        extra=dict(normalize=True, env_kwargs=dict(continuous=True)),
    ),
}
# fmt: on
ENVS = sorted({env for _, env in BENCHES})
COLUMNS = ["library", "algo", "env", "target", "reached", "steps to target", "s to target",
           "s to target from launch", "best return", "steps/s"]  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--algos", nargs="+", choices=["dqn", "ppo"], default=["dqn", "ppo"])
    parser.add_argument("--env", nargs="+", choices=ENVS, default=["cartpole"], dest="envs")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--steps", type=int, help="cap every run's env-step budget (a quick look; default: each "
        "pair's own, rl-zoo's)",
    )  # fmt: skip


def run_sb3(bench: Bench, algo: str, seed: int, steps: int) -> list[tuple[int, float, float]]:
    spec = [algo, seed, bench.sb3, bench.n_envs, steps, bench.every, bench.target, bench.env_id,
            bench.extra]  # fmt: skip
    out = subprocess.run(
        [sys.executable, SB3_WORKER, json.dumps(spec)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("EVALS "))
    return [tuple(e) for e in json.loads(line[6:])]


def run_zoo(bench: Bench, algo: str, seed: int, steps: int) -> list[tuple[int, float, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    per_epoch = bench.every
    with tempfile.TemporaryDirectory() as logs:
        stop = "+callbacks.early_stopping"
        subprocess.run(
            [
                sys.executable,
                "train.py",
                *bench.zoo,
                f"trainer.max_epochs={max(1, steps // per_epoch)}",
                f"seed={seed}",
                "torch_threads=1",
                "test=false",
                f"paths.log_dir={logs}",
                "~callbacks.progress_bar",
                *(["~callbacks.video"] if bench.zoo[0].startswith("experiment=") else []),
                f"{stop}._target_=lightning.pytorch.callbacks.EarlyStopping",
                f"{stop}.monitor=val/return",
                f"{stop}.mode=max",
                f"{stop}.stopping_threshold={bench.target}",
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


def rl_row(library: str, pair: tuple[str, str], seed: int, launched: float, evals: list) -> dict:
    target = BENCHES[pair].target
    first = next(((s, t) for s, v, t in evals if v >= target), None)
    t0, last_step, last_t = evals[0][2], evals[-1][0], evals[-1][2]
    return {
        "library": library,
        "algo": pair[0],
        "env": pair[1],
        "seed": seed,
        "target": target,
        "steps to target": first[0] if first else f"> {last_step}",
        "s to target": round(first[1] - t0, 1) if first else None,
        "s to target from launch": round(first[1] - launched, 1) if first else None,
        "best return": round(max(v for _, v, _ in evals), 1),
        "steps/s": round(last_step / max(1e-9, last_t - t0)),
    }


def median_row(library: str, pair: tuple[str, str], rows: list[dict]) -> dict:
    """The medians over seeds of one library's runs of one (algorithm, env) pair."""
    mine = [r for r in rows if (r["algo"], r["env"]) == pair and r["library"] == library]
    reached = [r for r in mine if r["s to target"] is not None]

    def med(key, among=reached):
        return round(statistics.median(r[key] for r in among), 1) if among else None

    return {
        "library": library,
        "algo": pair[0],
        "env": pair[1],
        "target": BENCHES[pair].target,
        "reached": f"{len(reached)}/{len(mine)}",
        "steps to target": med("steps to target"),
        "s to target": med("s to target"),
        "s to target from launch": med("s to target from launch"),
        "best return": med("best return", mine),
        "steps/s": round(statistics.median(r["steps/s"] for r in mine)),
    }


def main(args: argparse.Namespace) -> int:
    needs = [("stable_baselines3", "stable-baselines3", "bench"), *env_needs(args.envs)]
    if refuse_missing("benchmarks/run.py rl", needs):
        return 1
    pairs = [(a, e) for e in args.envs for a in args.algos if (a, e) in BENCHES]
    if not pairs:
        print(f"error: no benchmark for {args.algos} on {args.envs}", file=sys.stderr)
        return 1
    rows = []
    for pair in pairs:
        bench = BENCHES[pair]
        steps = min(bench.steps, args.steps or bench.steps)
        for seed in args.seeds:
            for library, runner in (("mlzoo", run_zoo), ("stable-baselines3", run_sb3)):
                launched = time.time()
                evals = runner(bench, pair[0], seed, steps)
                rows.append(rl_row(library, pair, seed, launched, evals))
                print(json.dumps(rows[-1]), flush=True)
    libraries = ("mlzoo", "stable-baselines3")
    medians = [median_row(library, pair, rows) for pair in pairs for library in libraries]
    per_seed = markdown(rows, ["library", "algo", "env", "seed", *COLUMNS[3:4], *COLUMNS[5:]])
    write_report(
        "rl: the zoo vs Stable-Baselines3 (medians over seeds)",
        medians,
        "Per seed:\n\n" + per_seed + "\n\nEvaluation: 10 deterministic episodes every epoch "
        "of the zoo's run (the same env steps for SB3); 's to target' counts from the step-0 "
        "evaluation, evaluations included. Differences: on CartPole SB3 anneals PPO's clip "
        "range with the learning rate (rl-zoo's lin_0.2); the zoo keeps clip 0.2.",
        columns=COLUMNS,
        extra={"per_seed": rows},
    )
    return 0
