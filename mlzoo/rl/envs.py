"""Gymnasium environments as the "data" of reinforcement-learning runs.

An RL concept collects its own experience, so there is no data set to load. ``EnvDataModule``
takes the data module's place in the zoo's wiring: it builds the environments (a gymnasium vector
env for training, a single env for evaluation), tells the model what it needs to size itself
(``spec``: observation shape, number of actions or action bounds), and gives Lightning a loader
that is just a counter: each "batch" is one training iteration in which the model steps the
environments itself.

The training envs step in this process (``vectorization: sync``, the default) or each in a worker
process of its own (``async``: gymnasium's AsyncVectorEnv, for envs whose step is costly, e.g.
Atari on a machine with cores to spare; BENCHMARKS.md). They live for ``fit``: its teardown
closes them (and ends the workers); evaluation and test use one separate env in this process.

Vector envs use gymnasium 1.x's SAME_STEP autoreset: when an episode ends, ``step`` already
returns the first observation of the next one, and the true last observation is in
``info["final_obs"]`` (the default NEXT_STEP mode would instead return a meaningless transition on
the following step). ``RecordEpisodeStatistics`` reports each finished episode's return and length.

Exact resume: gymnasium has no save/restore of an environment, but a classic-control env's whole
state is a few plain attributes (the physics ``state`` array, its random generator, the time
limit's step counter, the episode statistics). For those envs ``state_dict`` snapshots every plain
attribute along each wrapper chain (numbers, strings, numpy arrays as tensors, generator states),
training and evaluation envs alike, and a resumed run continues the very same episodes: the same
transitions as a run that was never stopped. Other envs (Box2D, Atari) keep state in native
objects; a resumed run starts new episodes there (``exact_resume`` is False).

``wrappers`` are gymnasium wrappers applied to every single environment, training and evaluation
alike, e.g. Atari's preprocessing and frame stacking (configs/env/atari.yaml); Atari ids (ALE/...)
register ale-py's environments first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import lightning as L
import numpy as np
from gymnasium.vector import AutoresetMode

from mlzoo.base.errors import ZooError, one_line
from mlzoo.base.extras import installed, missing, require

Wrapper = Callable[[gym.Env], gym.Env]
_PLAIN = (bool, int, float, str, type(None))


def _chain(env: Any) -> list[Any]:
    """The env and everything it wraps, outermost first (a vector env: then each of its envs)."""
    out = []
    while env is not None:
        out.append(env)
        if isinstance(getattr(env, "envs", None), list):  # SyncVectorEnv
            return out + [part for sub in env.envs for part in _chain(sub)]
        env = getattr(env, "env", None)
    return out


def _snapshot(obj: Any) -> dict[str, Any]:
    """obj's plain attributes, as checkpoint-safe values (tensors, numbers, strings)."""
    import torch

    state: dict[str, Any] = {}
    for key, value in vars(obj).items():
        if isinstance(value, np.ndarray) and value.dtype != object:
            state[key] = torch.from_numpy(np.array(value))  # a copy
        elif isinstance(value, np.generic):
            state[key] = value.item()
        elif isinstance(value, _PLAIN):
            state[key] = value
    rng = vars(obj).get("_np_random")
    if isinstance(rng, np.random.Generator):
        state["__np_random__"] = rng.bit_generator.state
    return state


def _restore(obj: Any, state: dict[str, Any]) -> None:
    import torch

    for key, value in state.items():
        if key == "__np_random__":
            if vars(obj).get("_np_random") is None:
                obj._np_random = np.random.Generator(np.random.PCG64())
            obj._np_random.bit_generator.state = value
        elif isinstance(value, torch.Tensor):
            old = vars(obj).get(key)
            setattr(obj, key, value.numpy().astype(old.dtype if old is not None else None))
        else:
            setattr(obj, key, value)


def register_extra_envs(env_id: str) -> None:
    """Atari ids (ALE/Pong-v5, ...) exist once ale-py's environments are registered."""
    if env_id.startswith("ALE/"):
        gym.register_envs(require("ale_py", "rl", f"env: {env_id}", package="ale-py"))


# What the rl extra installs for gymnasium, as gymnasium's DependencyNotInstalled names it:
# (a word of its message, the module, the package to name)
RL_PACKAGES = (
    ("box2d", "Box2D", "Box2D"),
    ("opencv", "cv2", "opencv"),
    ("moviepy", "moviepy", "moviepy"),
)


def _missing_rl_package(env_id: str, err: Exception) -> ZooError | None:
    """gymnasium's "Box2D is not installed, you can install it by run `pip install swig` ..." as
    the zoo's one line naming the extra, for a package the rl extra installs; else None."""
    text = str(err).lower()
    for word, module, package in RL_PACKAGES:
        if word in text and not installed(module):
            return missing(f"env: {env_id}", package, "rl")
    return None


def make_env(
    env_id: str, seed: int | None = None, wrappers: Sequence[Wrapper] = (), **kwargs: Any
) -> gym.Env:
    """One environment, wrapped and seeded; a clear error for an unknown id or a missing extra."""
    register_extra_envs(env_id)
    for wrap in wrappers:  # before the env is made (ALE prints its banner then)
        if getattr(wrap, "func", wrap) is gym.wrappers.AtariPreprocessing:  # resizes with opencv
            require("cv2", "rl", f"env: {env_id} (AtariPreprocessing)", package="opencv")
    try:
        env = gym.make(env_id, **kwargs)
        for wrap in wrappers:
            env = wrap(env)
    except (gym.error.DependencyNotInstalled, ImportError) as err:  # LunarLander without Box2D
        raise _missing_rl_package(env_id, err) or ZooError(
            f"env: cannot make {env_id!r}: {one_line(err, None)}"
        ) from None
    except gym.error.Error as err:
        raise ZooError(f"env: cannot make {env_id!r}: {err}") from None
    env.reset(seed=seed)
    env.action_space.seed(seed)
    return env


COUNTS = ("num_envs", "iterations_per_epoch", "eval_episodes")  # settings that must be >= 1


class EnvDataModule(L.LightningDataModule):
    """Training and evaluation environments for one gymnasium id.

    Args:
        env_id: a gymnasium id, e.g. CartPole-v1.
        num_envs: environments stepped in parallel (a vector env).
        vectorization: "sync" (all in this process) or "async" (one worker process per env).
        iterations_per_epoch: training iterations (model-defined groups of env steps) per epoch.
        eval_episodes: deterministic evaluation episodes per validation (val/return).
        seed: environment seed (null: the run's seed).
        env_kwargs: passed to gymnasium.make (e.g. max_episode_steps).
        wrappers: callables env -> wrapped env, applied in order to every environment (in
            configs: ``_partial_: true`` wrapper classes).
    """

    def __init__(
        self,
        env_id: str = "CartPole-v1",
        num_envs: int = 1,
        iterations_per_epoch: int = 10,
        eval_episodes: int = 10,
        seed: int | None = None,
        env_kwargs: dict[str, Any] | None = None,
        wrappers: Sequence[Wrapper] = (),
        vectorization: str = "sync",
    ) -> None:
        super().__init__()
        if vectorization not in ("sync", "async"):
            raise ZooError(f"data.vectorization must be 'sync' or 'async', got {vectorization!r}")
        counts = (num_envs, iterations_per_epoch, eval_episodes)
        for name, value in zip(COUNTS, counts, strict=True):
            if value < 1:
                raise ZooError(f"data.{name} must be >= 1, got {value}")
        self.env_id, self.num_envs, self.vectorization = env_id, num_envs, vectorization
        self.iterations_per_epoch, self.eval_episodes = iterations_per_epoch, eval_episodes
        self.seed, self.env_kwargs = seed, dict(env_kwargs or {})
        render_mode = self.env_kwargs.get("render_mode")
        if render_mode not in (None, "rgb_array"):
            # a window per training env needs a display (none on a server: a traceback) and
            # would slow training to the screen's frame rate
            raise ZooError(
                f"data.env_kwargs.render_mode={render_mode}: training envs render nothing "
                "(null) or off screen (rgb_array); to watch the agent, record episodes with "
                "scripts/evaluate.py <ckpt> --video"
            )
        self.wrappers = list(wrappers)
        self.envs: gym.vector.VectorEnv | None = None
        self.eval_env: gym.Env | None = None
        self._probe = self.make_env(0)  # spaces, checked at once
        module = type(self._probe.unwrapped).__module__
        # (an async env's state is in its workers, out of reach)
        self.exact_resume = module.startswith("gymnasium.envs.classic_control") and (
            vectorization == "sync"
        )
        self._pending: dict[str, Any] | None = None

    def make_env(self, seed: int | None, **extra_kwargs: Any) -> gym.Env:
        """One environment as the agent sees it (wrapped), e.g. for evaluation or a video."""
        return make_env(self.env_id, seed, self.wrappers, **{**self.env_kwargs, **extra_kwargs})

    def setup(self, stage: str | None = None) -> None:
        if self.envs is not None or (stage == "test" and self.eval_env is not None):
            return  # (a test after fit needs only the evaluation env)
        import torch

        seed = self.seed if self.seed is not None else int(torch.initial_seed() % 2**31)
        try:
            self.envs = gym.make_vec(
                self.env_id,
                num_envs=self.num_envs,
                vectorization_mode=self.vectorization,
                vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
                wrappers=self.wrappers or None,
                **self.env_kwargs,
            )
        except gym.error.Error as err:
            raise ZooError(f"env: cannot make {self.env_id!r}: {err}") from None
        self.envs = gym.wrappers.vector.RecordEpisodeStatistics(self.envs)
        self.envs.action_space.seed(seed)
        self.reset_obs, _ = self.envs.reset(seed=seed)
        if self.eval_env is None:
            self.eval_env = self.make_env(seed + 10_000)
        if self._pending is not None:
            self.load_state_dict(self._pending)

    # --- exact resume (Lightning stores these in every checkpoint) ------------------------------
    def state_dict(self) -> dict[str, Any]:
        if not self.exact_resume or self.envs is None:
            return {}
        return {
            "train": [_snapshot(part) for part in _chain(self.envs)],
            "eval": [_snapshot(part) for part in _chain(self.eval_env)],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state or not self.exact_resume:
            return
        if self.eval_env is None:  # restored before setup: apply once the envs exist
            self._pending = state
            return
        self._pending = None
        restored = [(self.eval_env, state["eval"])]  # a test: the best checkpoint's evaluation
        if self.envs is not None:  # (the training envs end with fit)
            restored.insert(0, (self.envs, state["train"]))
        for env, saved in restored:
            parts = _chain(env)
            if len(parts) != len(saved):
                raise ZooError("checkpoint: its environments are wrapped differently from these")
            for part, part_state in zip(parts, saved, strict=True):
                _restore(part, part_state)

    @property
    def spec(self) -> dict[str, Any]:
        """What an agent sizes itself by: observation shape and the action space."""
        obs, act = self._probe.observation_space, self._probe.action_space
        if not isinstance(obs, gym.spaces.Box) or len(obs.shape) not in (1, 3):
            raise ZooError(
                f"env: {self.env_id}'s observation space {obs} is not supported: the agents take "
                "a Box of a vector or of image stacks (wrap it, e.g. one-hot a Discrete state)"
            )
        out: dict[str, Any] = {"observation_shape": list(obs.shape)}
        if isinstance(act, gym.spaces.Discrete):
            out["num_actions"] = int(act.n)
        elif isinstance(act, gym.spaces.Box):
            out.update(
                action_dim=int(np.prod(act.shape)),
                action_low=act.low.flatten().tolist(),
                action_high=act.high.flatten().tolist(),
            )
        else:
            raise ZooError(
                f"env: {self.env_id}'s action space {act} is not supported (Discrete, or Box for PPO)"
            )
        return out

    def train_dataloader(self) -> range:
        return range(self.iterations_per_epoch)  # a counter: the model steps the envs itself

    def val_dataloader(self) -> range:
        return range(1)  # one validation "batch": the model runs eval_episodes episodes

    def test_dataloader(self) -> range:
        return range(1)

    def teardown(self, stage: str) -> None:
        if stage == "fit" and self.envs is not None:  # the training envs (and any workers) end
            self.envs.close()
            self.envs = None
        if stage == "test":  # the evaluation env stays open between fit and test
            for env in (self.eval_env, self._probe):
                if env is not None:
                    env.close()
