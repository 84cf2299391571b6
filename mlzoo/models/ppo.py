"""PPO: improve a stochastic policy in small, safe steps from its own fresh experience.

Schulman, Wolski, Dhariwal, Radford & Klimov (2017), "Proximal Policy Optimization Algorithms";
GAE: Schulman et al. (2016). Implementation details after Huang et al. (2022), "The 37
Implementation Details of PPO".

An actor pi_theta(a | s) (categorical for discrete actions, Gaussian for continuous ones) and a
critic V_phi(s). Each iteration collects ``num_steps`` steps from each of ``num_envs`` environments
with the current policy, then estimates advantages with GAE(lambda):

    delta_t = r_t + gamma * V(s_{t+1}) * (1 - done_{t+1}) - V(s_t)
    A_t     = delta_t + gamma * lambda * (1 - done_{t+1}) * A_{t+1},      returns R_t = A_t + V(s_t)

and takes ``update_epochs`` passes of minibatch gradient steps on the clipped surrogate:

    ratio_t = pi_theta(a_t | s_t) / pi_old(a_t | s_t)
    L_clip  = -E[min(ratio_t * A_t, clip(ratio_t, 1 - eps, 1 + eps) * A_t)]
    L       = L_clip + c_v * (V(s_t) - R_t)^2 / 2 - c_e * entropy[pi_theta(. | s_t)]

The clip removes any incentive to move the probability ratio outside [1 - eps, 1 + eps], so one
batch of data cannot push the policy far. Advantages are normalised per minibatch; the learning
rate falls linearly to 0 over the run. When an episode is cut by a time limit (truncated, not
terminated), its last reward is bootstrapped with gamma * V(final observation). For continuous
control, observations can be standardised and rewards scaled by running statistics
(``normalize_obs``, ``normalize_reward``: mlzoo/rl/normalize.py), which travel in the checkpoint.

In Lightning: one training_step = one rollout + its whole update, written out below as CleanRL
writes it: the torch optimizer itself, stepped ``update_epochs x num_minibatches`` times per
rollout (mlzoo/rl/agent.py says why), clipped by ``max_grad_norm`` (the concept's one clipping
setting: ``trainer.gradient_clip_val`` is refused). The x-axis in TensorBoard is environment
steps. What every agent shares, the environments (``step_envs``), the deterministic evaluation
``val/return`` after every epoch (which picks the best checkpoint) and the checkpoint state, is
in mlzoo/rl/agent.py.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.distributions import Categorical, Normal

from mlzoo.base.module import Exported, OptimizerFactory, SchedulerFactory
from mlzoo.base.tensorboard import log_scalars
from mlzoo.nets.nature_cnn import NatureCNN
from mlzoo.rl.agent import RLModule
from mlzoo.rl.normalize import RewardScaler, RunningMeanStd


def layer(i: int, o: int, std: float = math.sqrt(2)) -> nn.Linear:
    """Orthogonal weights with gain ``std``, zero bias (PPO's usual initialisation)."""
    lin = nn.Linear(i, o)
    nn.init.orthogonal_(lin.weight, std)
    nn.init.zeros_(lin.bias)
    return lin


def gae(
    rewards: Tensor, values: Tensor, dones: Tensor, next_value: Tensor, gamma: float, lam: float
) -> Tensor:
    """Generalized advantage estimates for (T, N) rollouts; dones[t] = 1 if the episode ended at
    step t (then s_{t+1} is the next episode's first observation and is not bootstrapped)."""
    advantages, last = torch.zeros_like(rewards), torch.zeros_like(next_value)
    for t in reversed(range(len(rewards))):  # computed backwards
        next_v = next_value if t == len(rewards) - 1 else values[t + 1]
        not_done = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_v * not_done - values[t]  # TD error delta_t
        last = delta + gamma * lam * not_done * last  # A_t = delta_t + gamma lambda A_{t+1}
        advantages[t] = last
    return advantages


def ppo_loss(
    logp: Tensor,
    logp_old: Tensor,
    advantages: Tensor,
    values: Tensor,
    returns: Tensor,
    entropy: Tensor,
    clip_coef: float,
    vf_coef: float,
    ent_coef: float,
    values_old: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(L, L_clip, value loss, share of clipped ratios) for a minibatch:

    ratio   = exp(log pi_theta(a|s) - log pi_old(a|s))
    L_clip  = -mean(min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A))
    L_V     = mean((V - R)^2) / 2, or with ``values_old`` (clipped value loss):
              mean(max((V - R)^2, (V_old + clip(V - V_old, -eps, eps) - R)^2)) / 2
    L       = L_clip + c_v * L_V - c_e * mean(entropy)
    """
    ratio = (logp - logp_old).exp()
    pg_loss = -torch.min(
        ratio * advantages, ratio.clamp(1 - clip_coef, 1 + clip_coef) * advantages
    ).mean()
    if values_old is None:
        v_loss = 0.5 * ((values - returns) ** 2).mean()
    else:
        v_clipped = values_old + (values - values_old).clamp(-clip_coef, clip_coef)
        v_loss = 0.5 * torch.max((values - returns) ** 2, (v_clipped - returns) ** 2).mean()
    loss = pg_loss + vf_coef * v_loss - ent_coef * entropy.mean()
    with torch.no_grad():
        clipped = ((ratio - 1).abs() > clip_coef).float().mean()
    return loss, pg_loss, v_loss, clipped


def explained_variance(values: Tensor, returns: Tensor) -> float:
    """1 - Var[R - V] / Var[R]: the share of the returns' variance the critic predicts (1: all
    of it, 0: no better than a constant, < 0: worse). On a fresh rollout, before the update, it
    measures the critic on data it has not trained on."""
    var = returns.var()
    return float("nan") if var == 0 else float(1 - (returns - values).var() / var)


def mlp(i: int, hidden: Sequence[int], o: int, out_std: float) -> nn.Sequential:
    sizes, mods = [i, *hidden], []
    for a, b in itertools.pairwise(sizes):
        mods += [layer(a, b), nn.Tanh()]
    return nn.Sequential(*mods, layer(sizes[-1], o, out_std))


class PPOModule(RLModule):
    """PPO with a categorical (discrete) or diagonal Gaussian (continuous) policy."""

    own_clip_setting = "model.max_grad_norm"

    def __init__(
        self,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        observation_shape: Sequence[int] = (4,),
        num_actions: int = 0,
        action_dim: int = 0,
        action_low: Sequence[float] = (),
        action_high: Sequence[float] = (),
        hidden_sizes: Sequence[int] = (64, 64),
        num_steps: int = 32,
        gamma: float = 0.98,
        gae_lambda: float = 0.8,
        update_epochs: int = 20,
        num_minibatches: int = 1,
        clip_coef: float = 0.2,
        clip_vloss: bool = False,
        ent_coef: float = 0.0,
        vf_coef: float = 0.5,
        max_grad_norm: float = 0.5,
        anneal_lr: bool = True,
        normalize_obs: bool = False,
        normalize_reward: bool = False,
        clip_obs: float = 10.0,
        clip_reward: float = 10.0,
    ) -> None:
        if scheduler is not None:  # it would be ignored: the learning rate follows anneal_lr
            name = getattr(scheduler, "func", scheduler)
            raise ValueError(
                f"model=ppo sets its learning rate itself (model.anneal_lr: linear decay to 0), so "
                f"it would ignore scheduler {getattr(name, '__name__', name)}: use scheduler=none"
            )
        super().__init__(optimizer, None)
        self.save_hyperparameters(ignore=["optimizer", "scheduler"], logger=False)
        if (num_actions > 0) == (action_dim > 0):
            raise ValueError(
                "PPO needs either a discrete (num_actions) or a Box (action_dim) space"
            )
        self.discrete = num_actions > 0
        if len(observation_shape) == 3:  # Atari frame stacks: a shared Nature CNN, linear heads
            if normalize_obs:
                raise ValueError("normalize_obs is for vector observations, not images")
            self.encoder: nn.Module = NatureCNN(observation_shape)
            features, hidden_sizes = self.encoder.out_features, ()
        elif len(observation_shape) == 1:  # vectors: separate actor and critic MLPs
            self.encoder, features = nn.Identity(), int(observation_shape[0])
        else:
            raise ValueError(f"PPO takes vectors or image stacks, got {list(observation_shape)}")
        self.critic = mlp(features, hidden_sizes, 1, out_std=1.0)
        out = num_actions if self.discrete else action_dim
        self.actor = mlp(features, hidden_sizes, out, out_std=0.01)  # near-uniform start
        if not self.discrete:  # state-independent log standard deviation
            self.log_std = nn.Parameter(torch.zeros(action_dim))
            self.register_buffer("low", torch.tensor(action_low, dtype=torch.float32))
            self.register_buffer("high", torch.tensor(action_high, dtype=torch.float32))
        # running statistics (buffers: in the checkpoint), None when off
        self.obs_rms = RunningMeanStd(observation_shape) if normalize_obs else None
        self.reward_scaler = RewardScaler(gamma, clip_reward) if normalize_reward else None
        self.iterations = 0  # rollouts and their updates so far

    def observe(self, obs, update: bool = False) -> Tensor:
        """Env observations as the networks' input: standardised when normalize_obs is on (the
        statistics move only with training rollouts, never during evaluation)."""
        obs = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        if self.obs_rms is None:
            return obs
        if update:
            self.obs_rms.update(obs)
        return self.obs_rms.normalize(obs, self.hparams.clip_obs)

    def forward(self, obs: Tensor):
        """pi(. | s) and V(s) for a batch of (observed) states."""
        h = self.encoder(obs)
        return self._distribution(self.actor(h)), self.critic(h).squeeze(-1)

    def policy(self, obs: Tensor):
        return self._distribution(self.actor(self.encoder(obs)))

    def value(self, obs: Tensor) -> Tensor:
        return self.critic(self.encoder(obs)).squeeze(-1)

    def _distribution(self, logits_or_mean: Tensor):
        # No argument checks: the parameters are the network's own outputs (a NaN still stops the
        # run, through FiniteGuard on the losses), and the checks would run on every rollout step
        # and minibatch.
        if self.discrete:
            return Categorical(logits=logits_or_mean, validate_args=False)
        scale = self.log_std.exp().expand_as(logits_or_mean)
        return Normal(logits_or_mean, scale, validate_args=False)

    def _log_prob(self, dist, action: Tensor) -> Tensor:
        lp = dist.log_prob(action)
        return lp if self.discrete else lp.sum(-1)

    def _entropy(self, dist) -> Tensor:
        return dist.entropy() if self.discrete else dist.entropy().sum(-1)

    def env_action(self, action: Tensor) -> np.ndarray:
        if self.discrete:
            return action.cpu().numpy()
        return torch.max(torch.min(action, self.high), self.low).cpu().numpy()  # clip to the box

    @torch.no_grad()
    def act(self, obs: Tensor, deterministic: bool = True) -> Tensor:
        """The policy's mode (deterministic) or a sample, for a batch of raw observations."""
        dist = self.policy(self.observe(obs))
        if deterministic:
            return (dist.probs.argmax(-1) if self.discrete else dist.mean).cpu()
        return dist.sample().cpu()

    # --- one iteration: rollout and GAE, then epochs of clipped updates ---------------------------
    @torch.no_grad()
    def rollout(self) -> dict[str, Tensor]:
        """num_steps steps of every env with the current policy, and their GAE advantages."""
        hp, n = self.hparams, self.envs.num_envs
        obs_buf, act_buf, logp_buf, rew_buf, done_buf, val_buf = [], [], [], [], [], []
        start = time.perf_counter()
        for _ in range(hp.num_steps):
            obs = self.observe(self.obs, update=True)
            dist, value = self(obs)
            action = dist.sample()
            step = self.step_envs(action)
            reward = torch.as_tensor(step.reward, dtype=torch.float32, device=self.device)
            ended = step.terminated | step.truncated
            done = torch.as_tensor(ended, dtype=torch.float32, device=self.device)
            if self.reward_scaler is not None:  # r / std(discounted return)
                reward = self.reward_scaler(reward, done)
            for i in np.flatnonzero(step.truncated & ~step.terminated):  # time limit: bootstrap
                final = self.observe(step.final_obs[i][None])  # gamma * V(s_final)
                reward[i] += hp.gamma * self.value(final).squeeze()
            obs_buf.append(obs)
            act_buf.append(action)
            logp_buf.append(self._log_prob(dist, action))
            val_buf.append(value)
            rew_buf.append(reward)
            done_buf.append(done)
        sps = hp.num_steps * n / (time.perf_counter() - start)
        next_value = self.value(self.observe(self.obs))
        rewards, dones, values = torch.stack(rew_buf), torch.stack(done_buf), torch.stack(val_buf)
        advantages = gae(rewards, values, dones, next_value, hp.gamma, hp.gae_lambda)
        log_scalars(self, {"rollout/sps": sps}, self.env_steps)
        return {
            "obs": torch.stack(obs_buf).flatten(0, 1),
            "actions": torch.stack(act_buf).flatten(0, 1),
            "logp": torch.stack(logp_buf).flatten(0, 1),
            "advantages": advantages.flatten(),
            "returns": (advantages + values).flatten(),
            "values": values.flatten(),
        }

    def anneal_learning_rate(self, opt) -> None:
        """lr = (1 - iteration / total iterations) * base lr: linear decay to 0 over the run."""
        frac = 1.0 - self.iterations / max(1, self.total_iterations)
        for group in opt.param_groups:
            group["lr"] = frac * group.setdefault("base_lr", group["lr"])

    def training_step(self, batch: int, batch_idx: int) -> dict[str, Tensor] | None:
        hp = self.hparams
        data = self.rollout()
        explained = explained_variance(data["values"], data["returns"])  # before the update
        opt = self.optimizers(use_pl_optimizer=False)  # the torch optimizer itself
        if hp.anneal_lr:
            self.anneal_learning_rate(opt)
        size = len(data["advantages"])
        minibatch, stats = max(1, size // hp.num_minibatches), []
        for _ in range(hp.update_epochs):
            for idx in torch.randperm(size, device=self.device).split(minibatch):
                dist, v = self(data["obs"][idx])
                adv = data["advantages"][idx]
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)  # per-minibatch normalisation
                entropy = self._entropy(dist)
                loss, pg_loss, v_loss, clipped = ppo_loss(
                    self._log_prob(dist, data["actions"][idx]), data["logp"][idx], adv,
                    v, data["returns"][idx], entropy, hp.clip_coef, hp.vf_coef, hp.ent_coef,
                    data["values"][idx] if hp.clip_vloss else None,
                )  # fmt: skip
                opt.zero_grad()
                loss.backward()
                if hp.max_grad_norm:  # ||grad|| <= max_grad_norm
                    nn.utils.clip_grad_norm_(self.parameters(), hp.max_grad_norm)
                opt.step()
                stats.append(torch.stack([loss, pg_loss, v_loss, entropy.mean(), clipped]).detach())
        self.iterations += 1
        self.count_iteration()
        total, pg, vl, ent, clipfrac = torch.stack(stats).mean(0).tolist()
        log_scalars(
            self,
            {"train/loss": total, "train/loss_policy": pg, "train/loss_value": vl,
             "train/entropy": ent, "train/clip_fraction": clipfrac,
             "train/explained_variance": explained, "train/lr": opt.param_groups[0]["lr"]},
            self.env_steps,
        )  # fmt: skip
        return {"loss_policy": torch.tensor(pg), "loss_value": torch.tensor(vl)}  # FiniteGuard

    # --- checkpoints: RLModule saves env steps and observations; PPO adds its own counters ---
    def extra_state(self) -> dict:
        state = {"iterations": self.iterations}
        returns = getattr(self.reward_scaler, "returns", None)
        if self.envs_in_checkpoint and returns is not None:  # the same episodes continue
            state["discounted_returns"] = returns
        return state

    def load_extra_state(self, state: dict) -> None:
        self.iterations = int(state["iterations"])
        if "discounted_returns" in state and self.reward_scaler is not None:
            self.reward_scaler.returns = state["discounted_returns"]

    def exported_networks(self) -> dict[str, Exported]:
        """``policy``: raw observations -> (the policy's mode, clipped to the action box for
        continuous actions; the actor's logits or Gaussian mean)."""
        gen = torch.Generator().manual_seed(0)
        obs = torch.rand(2, *[int(d) for d in self.hparams.observation_shape], generator=gen)
        return {"policy": Exported(ModePolicy(self), (obs,), ["obs"], ["action", "logits_or_mean"])}


class ModePolicy(nn.Module):
    """The exported agent, obs -> (the policy's mode, logits or mean): the actor with the frozen
    observation statistics of training, without the LightningModule around it (which does not
    trace)."""

    def __init__(self, agent: PPOModule) -> None:
        super().__init__()
        self.encoder, self.actor, self.obs_rms = agent.encoder, agent.actor, agent.obs_rms
        self.discrete, self.clip_obs = agent.discrete, float(agent.hparams.clip_obs)
        if not self.discrete:
            self.register_buffer("low", agent.low.clone())
            self.register_buffer("high", agent.high.clone())

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        x = obs.float()
        if self.obs_rms is not None:
            x = self.obs_rms.normalize(x, self.clip_obs)
        out = self.actor(self.encoder(x))
        if self.discrete:
            return out.argmax(dim=-1), out
        return torch.max(torch.min(out, self.high), self.low), out
