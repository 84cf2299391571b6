"""One Stable-Baselines3 run of `python benchmarks/run.py rl`: train DQN or PPO, evaluating
the deterministic policy every ``every`` env steps (step 0 included) until a mean return of
``target``, and print the evaluations as one line ``EVALS [[env steps, mean return, time], ...]``.

    python benchmarks/sb3_worker.py '["ppo", 0, {HPARAMS}, 8, 100000, 1024, 475.0, "CartPole-v1"]'

The argument: a JSON list of algo ("dqn" or "ppo"), seed, SB3 keyword arguments (rl-zoo's
"lin_<x>" learning rates and clip ranges: linear decay from x to 0), parallel envs, the env-step
budget, env steps between evaluations, the target return, and optionally a Gymnasium env id
(default CartPole-v1) and extras: {"normalize": true} wraps the envs in VecNormalize (rl-zoo's
``normalize: true``; evaluation sees the training statistics, unnormalised rewards),
{"env_kwargs": {...}} goes to gymnasium.make. One torch thread, on the CPU.
"""

from __future__ import annotations

import json
import sys
import time

import gymnasium as gym
import torch
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

DEFAULT_ENV = "CartPole-v1"


def linear_schedules(hp: dict) -> dict:
    """rl-zoo's "lin_x" (learning rate, clip range): a linear decay from x to 0 over training."""
    hp = dict(hp)
    for key in ("learning_rate", "clip_range"):
        if isinstance(hp.get(key), str):
            start = float(hp[key].split("_")[1])
            hp[key] = lambda progress, start=start: progress * start
    return hp


class Evaluate(BaseCallback):
    """Evaluates at the start and every ``every`` env steps; stops at the first mean >= target."""

    def __init__(self, eval_env: gym.Env, every: int, target: float) -> None:
        super().__init__()
        self.eval_env, self.every, self.target = eval_env, every, target
        self.evals: list[tuple[int, float, float]] = []
        self.next = 0

    def _evaluate(self) -> bool:
        mean, _ = evaluate_policy(self.model, self.eval_env, n_eval_episodes=10, deterministic=True)
        self.evals.append((self.num_timesteps, float(mean), time.time()))
        self.next = self.num_timesteps + self.every
        return mean < self.target  # False stops training

    def _on_training_start(self) -> None:
        self._evaluate()

    def _on_step(self) -> bool:
        return self._evaluate() if self.num_timesteps >= self.next else True


def main(argv: list[str]) -> int:
    algo, seed, hp, n_envs, steps, every, target, *rest = json.loads(argv[0])
    env_id = rest[0] if rest else DEFAULT_ENV
    extra = rest[1] if len(rest) > 1 else {}
    kwargs = extra.get("env_kwargs") or {}
    torch.set_num_threads(1)
    env = make_vec_env(env_id, n_envs=n_envs, seed=seed, env_kwargs=kwargs)
    eval_env = DummyVecEnv([lambda: gym.make(env_id, **kwargs)])
    eval_env.seed(seed + 10_000)
    if extra.get("normalize"):
        env = VecNormalize(env, gamma=hp.get("gamma", 0.99))
        eval_env = VecNormalize(eval_env, training=False, norm_reward=False)
        eval_env.obs_rms = env.obs_rms  # the same object: it follows training
    policy = (DQN if algo == "dqn" else PPO)(
        "MlpPolicy", env, seed=seed, device="cpu", **linear_schedules(hp)
    )
    evaluate = Evaluate(eval_env, every, target)
    policy.learn(total_timesteps=steps, callback=evaluate)
    print("EVALS " + json.dumps(evaluate.evals))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
