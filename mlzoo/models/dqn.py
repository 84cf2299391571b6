"""DQN: learn the value of every action from replayed experience, and act greedily on it.

Mnih et al. (2015), "Human-level control through deep reinforcement learning"; Double DQN: van
Hasselt, Guez & Silver (2016); dueling networks: Wang et al. (2016).

Q(s, a) is the expected discounted return of taking action a in state s and acting well after.
It satisfies the Bellman equation Q(s, a) = E[r + gamma * max_a' Q(s', a')]. DQN fits a network
Q_theta to it by regression on transitions (s, a, r, s', done) drawn from a replay buffer of past
experience, against a *target network* Q_target (a lagging copy of Q_theta):

    y = r + gamma * (1 - terminated) * max_a' Q_target(s', a')          TD target
    L = Huber(Q_theta(s, a) - y)                                        (smooth L1: robust to outliers)

Double DQN picks the next action with the online network and scores it with the target network,
y = r + gamma * (1 - terminated) * Q_target(s', argmax_a' Q_theta(s', a')), which removes the max
operator's overestimation. A dueling network splits Q into a state value and action advantages,
Q(s, a) = V(s) + A(s, a) - mean_a A(s, a). The target network follows Q_theta by a hard copy every
``target_update_interval`` environment steps (tau = 1) or by Polyak averaging (tau < 1):
theta_target <- tau * theta + (1 - tau) * theta_target. With updates in bursts after each batch of
environment steps (below), a short interval means: sync once before every burst.

Acting is epsilon-greedy: a random action with probability epsilon, else argmax_a Q_theta(s, a);
epsilon falls linearly from 1 to ``epsilon_final`` over the first ``exploration_fraction`` of the
run's environment steps. Truncated episodes (time limits) still bootstrap: only true termination
zeroes the future.

In Lightning: one training_step = ``train_frequency`` environment steps, then ``gradient_steps``
updates, written out below as CleanRL writes them: the torch optimizer itself, stepped thousands
of times a run (mlzoo/rl/agent.py says why), clipped by ``max_grad_norm`` (the concept's one
clipping setting: ``trainer.gradient_clip_val`` is refused), counted in ``updates``. What every
agent shares, the environments (``step_envs``), the greedy evaluation logged as ``val/return``
(which picks the best checkpoint) and the checkpoint state, is in mlzoo/rl/agent.py;
TensorBoard's x-axis is environment steps.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mlzoo.base.module import Exported, OptimizerFactory, SchedulerFactory
from mlzoo.base.tensorboard import log_scalars
from mlzoo.nets.mlp import MLP
from mlzoo.nets.nature_cnn import NatureCNN
from mlzoo.rl.agent import RLModule


class QNetwork(nn.Module):
    """s -> Q(s, .): an MLP, or a dueling MLP with V(s) and A(s, .) heads; image observations
    (Atari frame stacks) first go through the Nature CNN."""

    def __init__(
        self,
        observation_shape: Sequence[int],
        num_actions: int,
        hidden: Sequence[int],
        dueling: bool,
    ):
        super().__init__()
        self.dueling = dueling
        if len(observation_shape) == 3:  # (frames, height, width)
            self.torso = NatureCNN(observation_shape)
            obs_dim = self.torso.out_features
        elif len(observation_shape) == 1:
            self.torso, obs_dim = nn.Identity(), int(observation_shape[0])
        else:
            raise ValueError(f"DQN takes vectors or image stacks, got {list(observation_shape)}")
        if dueling:
            self.body = MLP(obs_dim, hidden[-1], list(hidden[:-1]), activation="relu")
            self.value, self.advantage = (
                nn.Linear(hidden[-1], 1),
                nn.Linear(hidden[-1], num_actions),
            )
        else:
            self.q = MLP(obs_dim, num_actions, list(hidden), activation="relu")

    def forward(self, obs: Tensor) -> Tensor:
        obs = self.torso(obs)
        if not self.dueling:
            return self.q(obs)
        h = F.relu(self.body(obs))
        a = self.advantage(h)
        return self.value(h) + a - a.mean(dim=1, keepdim=True)  # Q = V + A - mean_a A


class ReplayBuffer:
    """Experience replay (Lin 1992; Mnih et al. 2015): a ring of the last ``capacity``
    transitions (s, a, r, s', terminated), sampled uniformly, so that an update sees a mix of old
    and new experience instead of the last few, strongly correlated steps. Tensors all the way:
    it saves into a weights-only checkpoint and a resumed agent continues with the experience it
    had."""

    def __init__(
        self, capacity: int, obs_shape: Sequence[int], obs_dtype: torch.dtype = torch.float32
    ) -> None:
        if capacity < 1:
            raise ValueError(f"buffer capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        # uint8 for Atari frames: 4 x 84 x 84 bytes per observation instead of 4x that
        self.obs = torch.zeros(capacity, *obs_shape, dtype=obs_dtype)
        self.next_obs = torch.zeros(capacity, *obs_shape, dtype=obs_dtype)
        self.actions = torch.zeros(capacity, dtype=torch.long)
        self.rewards = torch.zeros(capacity)
        self.terminated = torch.zeros(capacity)  # 1: no bootstrapping (truncation still bootstraps)
        self.pos, self.full = 0, False

    def __len__(self) -> int:
        return self.capacity if self.full else self.pos

    def add(
        self, obs: Tensor, action: Tensor, reward: Tensor, next_obs: Tensor, terminated: Tensor
    ) -> None:
        """Store a batch of transitions (one per environment), over the oldest once full."""
        for i in range(len(obs)):
            self.obs[self.pos] = obs[i]
            self.actions[self.pos] = action[i]
            self.rewards[self.pos] = reward[i]
            self.next_obs[self.pos] = next_obs[i]
            self.terminated[self.pos] = terminated[i]
            self.pos = (self.pos + 1) % self.capacity
            self.full = self.full or self.pos == 0

    def sample(self, batch_size: int, device: torch.device | str = "cpu") -> tuple[Tensor, ...]:
        """``batch_size`` stored transitions drawn uniformly (with replacement)."""
        idx = torch.randint(0, len(self), (batch_size,))
        parts = (self.obs, self.actions, self.rewards, self.next_obs, self.terminated)
        return tuple(p[idx].to(device) for p in parts)

    def state_dict(self) -> dict:
        n = len(self)  # only the filled part: a checkpoint early in training stays small
        return {
            "obs": self.obs[:n].clone(),
            "next_obs": self.next_obs[:n].clone(),
            "actions": self.actions[:n].clone(),
            "rewards": self.rewards[:n].clone(),
            "terminated": self.terminated[:n].clone(),
            "pos": self.pos,
            "full": self.full,
        }

    def load_state_dict(self, state: dict) -> None:
        n = len(state["rewards"])
        if n > self.capacity:
            raise ValueError(f"replay buffer in checkpoint holds {n} > capacity {self.capacity}")
        for key in ("obs", "next_obs", "actions", "rewards", "terminated"):
            getattr(self, key)[:n] = state[key]
        self.pos, self.full = int(state["pos"]), bool(state["full"])


class DQNModule(RLModule):
    """DQN for discrete actions on vector observations or image stacks."""

    own_clip_setting = "model.max_grad_norm"

    def __init__(
        self,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        observation_shape: Sequence[int] = (4,),
        num_actions: int | None = None,
        hidden_sizes: Sequence[int] = (256, 256),
        dueling: bool = False,
        double_dqn: bool = False,
        gamma: float = 0.99,
        buffer_size: int = 100_000,
        batch_size: int = 64,
        learning_starts: int = 1_000,
        train_frequency: int = 256,
        gradient_steps: int = 128,
        target_update_interval: int = 10,
        tau: float = 1.0,
        epsilon_final: float = 0.04,
        exploration_fraction: float = 0.16,
        total_env_steps: int | None = None,
        max_grad_norm: float | None = 10.0,
    ) -> None:
        super().__init__(optimizer, scheduler)
        self.save_hyperparameters(ignore=["optimizer", "scheduler"], logger=False)
        if num_actions is None:  # the env's spec gives num_actions only for Discrete actions
            raise ValueError(
                "DQN chooses among discrete actions, but this env's action space is continuous "
                "(not gymnasium Discrete); use model=ppo for continuous control"
            )
        if num_actions < 2 or not 0 < tau <= 1 or not 0 <= gamma <= 1:
            raise ValueError(
                f"need num_actions >= 2, 0 < tau <= 1, 0 <= gamma <= 1: {num_actions}, {tau}, {gamma}"
            )
        self.q = QNetwork(observation_shape, num_actions, hidden_sizes, dueling)
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        images = len(observation_shape) == 3  # Atari frames are stored as bytes
        self.obs_dtype = torch.uint8 if images else torch.float32
        self.buffer = ReplayBuffer(buffer_size, observation_shape, obs_dtype=self.obs_dtype)
        self.updates, self._synced = 0, 0  # saved in checkpoints (extra_state)
        self.epsilon_budget = 0  # env steps the epsilon schedule spans: set in on_fit_start

    def on_fit_start(self) -> None:
        # model.total_env_steps as configured, else the whole run's env steps
        run = self.total_iterations * self._steps_per_iteration()
        self.epsilon_budget = self.hparams.total_env_steps or run

    def _steps_per_iteration(self) -> int:
        n = self.envs.num_envs
        return max(1, self.hparams.train_frequency // n) * n

    def epsilon(self) -> float:
        """Linear decay from 1 to epsilon_final over exploration_fraction * epsilon_budget."""
        hp = self.hparams
        frac = min(1.0, self.env_steps / max(1.0, hp.exploration_fraction * self.epsilon_budget))
        return 1.0 + frac * (hp.epsilon_final - 1.0)

    @torch.no_grad()
    def act(self, obs: Tensor, epsilon: float = 0.0) -> Tensor:
        """Epsilon-greedy actions for a batch of observations (epsilon 0: greedy)."""
        greedy = self.q(obs.to(self.device)).argmax(dim=1).cpu()
        if epsilon <= 0:  # evaluation draws no random numbers: training's stream stays the same
            return greedy
        random = torch.randint(0, self.hparams.num_actions, greedy.shape)
        explore = torch.rand(greedy.shape) < epsilon
        return torch.where(explore, random, greedy)

    def collect(self) -> float:
        """train_frequency env steps (in all, over the envs), epsilon-greedy, into the replay
        buffer; returns the env steps per second it took."""
        n = self.envs.num_envs
        start = time.perf_counter()
        for _ in range(self._steps_per_iteration() // n):
            obs = torch.as_tensor(self.obs, dtype=self.obs_dtype)
            action = self.act(obs, self.epsilon())
            step = self.step_envs(action)
            self.buffer.add(
                obs,
                action,
                torch.as_tensor(step.reward, dtype=torch.float32),
                torch.as_tensor(step.final_obs, dtype=self.obs_dtype),  # s', also where one ended
                torch.as_tensor(step.terminated, dtype=torch.float32),
            )
        return self._steps_per_iteration() / (time.perf_counter() - start)

    def td_loss(self, obs, action, reward, next_obs, terminated) -> Tensor:
        q = self.q(obs).gather(1, action.long().unsqueeze(1)).squeeze(1)  # Q_theta(s, a)
        with torch.no_grad():
            if self.hparams.double_dqn:  # a' from the online net, its value from the target
                next_a = self.q(next_obs).argmax(dim=1, keepdim=True)
                next_q = self.q_target(next_obs).gather(1, next_a).squeeze(1)
            else:  # max_a' Q_target(s', a')
                next_q = self.q_target(next_obs).max(dim=1).values
            y = reward + self.hparams.gamma * (1.0 - terminated) * next_q  # TD target
        return F.smooth_l1_loss(q, y)  # Huber(Q(s, a) - y)

    def update_target(self) -> None:
        """theta_target <- tau * theta + (1 - tau) * theta_target (tau 1: a copy), once per
        target_update_interval env steps passed since the last sync (Stable-Baselines3's rule)."""
        syncs = self.env_steps // self.hparams.target_update_interval - self._synced
        if syncs > 0:
            with torch.no_grad():
                for p_t, p in zip(self.q_target.parameters(), self.q.parameters(), strict=True):
                    p_t.lerp_(p, 1 - (1 - self.hparams.tau) ** syncs)  # syncs Polyak steps at once
            self._synced += syncs

    def training_step(self, batch: int, batch_idx: int) -> dict[str, Tensor] | None:
        sps = self.collect()
        hp = self.hparams
        # the iteration's scalars every trainer.log_every_n_steps iterations, as self.log does
        log_now = batch_idx % max(1, self.trainer.log_every_n_steps) == 0
        if log_now:
            log_scalars(
                self, {"rollout/sps": sps, "rollout/epsilon": self.epsilon()}, self.env_steps
            )
        if self.env_steps < hp.learning_starts:
            return None
        self.update_target()
        opt = self.optimizers(use_pl_optimizer=False)  # the torch optimizer itself
        losses = []
        for _ in range(hp.gradient_steps):
            loss = self.td_loss(*self.buffer.sample(hp.batch_size, self.device))
            opt.zero_grad()
            loss.backward()
            if hp.max_grad_norm:  # ||grad|| <= max_grad_norm
                nn.utils.clip_grad_norm_(self.q.parameters(), hp.max_grad_norm)
            opt.step()
            self.updates += 1
            losses.append(loss.detach())
        self.count_iteration()
        loss = torch.stack(losses).mean()
        if log_now:
            log_scalars(self, {"train/loss": float(loss)}, self.env_steps)
        return {"loss": loss}  # checked by FiniteGuard

    def extra_state(self) -> dict:
        return {"updates": self.updates, "synced": self._synced, "buffer": self.buffer.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        self.updates, self._synced = int(state["updates"]), int(state.get("synced", 0))
        self.buffer.load_state_dict(state["buffer"])

    def exported_networks(self) -> dict[str, Exported]:
        """``policy``: observations (uint8 frames for Atari, as the agent sees them) -> (greedy
        action, Q-values)."""
        gen = torch.Generator().manual_seed(0)
        obs = torch.rand(2, *[int(d) for d in self.hparams.observation_shape], generator=gen)
        if self.obs_dtype == torch.uint8:
            obs = (obs * 255).to(torch.uint8)
        return {"policy": Exported(GreedyPolicy(self.q), (obs,), ["obs"], ["action", "q"])}


class GreedyPolicy(nn.Module):
    """The exported agent, obs -> (argmax_a Q(s, a), Q(s, .)): the Q-network without the
    LightningModule around it (which does not trace)."""

    def __init__(self, q: nn.Module) -> None:
        super().__init__()
        self.q = q

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        q = self.q(obs)
        return q.argmax(dim=1), q
