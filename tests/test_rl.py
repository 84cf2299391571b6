"""Reinforcement learning: environments, replay buffer, the DQN's TD target, resume state, bar."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from gymnasium.utils.env_checker import check_env

from mlzoo.core.errors import ZooError
from mlzoo.models.dqn import DQNModule, QNetwork
from mlzoo.rl.buffer import ReplayBuffer
from mlzoo.rl.envs import EnvDataModule, make_env
from mlzoo.train import CONFIG_DIR

from conftest import compose_config

ENVS = sorted(p.stem for p in (Path(CONFIG_DIR) / "env").glob("*.yaml"))


@pytest.mark.parametrize("env", ENVS)
def test_every_env_the_zoo_builds_passes_gymnasiums_checker(env: str, tmp_path: Path) -> None:
    cfg = compose_config(["model=dqn", f"env={env}"], tmp_path)
    env_obj = make_env(cfg.data.env_id, seed=0)
    check_env(env_obj.unwrapped, skip_render_check=True)
    dm = EnvDataModule(cfg.data.env_id, num_envs=2)
    dm.setup()
    assert dm.reset_obs.shape == (2, *dm.spec["observation_shape"])


def test_unknown_env_is_one_clear_error() -> None:
    with pytest.raises(ZooError, match="CartPole-v99"):
        EnvDataModule("CartPole-v99")


def test_replay_buffer_wraps_around_and_round_trips() -> None:
    buf = ReplayBuffer(5, (2,))
    for i in range(7):
        buf.add(
            torch.full((1, 2), float(i)),
            torch.tensor([i % 2]),
            torch.tensor([float(i)]),
            torch.full((1, 2), i + 1.0),
            torch.tensor([0.0]),
        )
    assert len(buf) == 5 and buf.full
    assert sorted(buf.rewards.tolist()) == [2.0, 3.0, 4.0, 5.0, 6.0]  # the oldest two replaced
    other = ReplayBuffer(5, (2,))
    other.load_state_dict(buf.state_dict())
    assert torch.equal(other.obs, buf.obs) and other.pos == buf.pos and other.full


def test_td_target_plain_and_double() -> None:
    torch.manual_seed(0)
    model = DQNModule(torch.optim.Adam, observation_shape=(3,), num_actions=2, gamma=0.9)
    obs, next_obs = torch.randn(4, 3), torch.randn(4, 3)
    action = torch.tensor([0, 1, 1, 0])
    reward = torch.tensor([1.0, 0.0, 2.0, -1.0])
    terminated = torch.tensor([0.0, 1.0, 0.0, 0.0])
    with torch.no_grad():  # make the target network differ from the online one
        for p in model.q_target.parameters():
            p.add_(0.1 * torch.randn_like(p))
    q = model.q(obs).gather(1, action[:, None]).squeeze(1)
    for double in (False, True):
        model.hparams.double_dqn = double
        if double:
            next_a = model.q(next_obs).argmax(1, keepdim=True)
            next_q = model.q_target(next_obs).gather(1, next_a).squeeze(1)
        else:
            next_q = model.q_target(next_obs).max(1).values
        y = reward + 0.9 * (1 - terminated) * next_q
        expected = torch.nn.functional.smooth_l1_loss(q, y.detach())
        got = model.td_loss(obs, action, reward, next_obs, terminated)
        torch.testing.assert_close(got, expected)


def test_dueling_head_combines_value_and_mean_centred_advantage() -> None:
    net = QNetwork(3, 4, (8, 8), dueling=True)
    obs = torch.randn(5, 3)
    h = torch.relu(net.body(obs))
    a = net.advantage(h)
    torch.testing.assert_close(net(obs), net.value(h) + a - a.mean(1, keepdim=True))
    assert torch.allclose(net(obs).mean(1, keepdim=True), net.value(h), atol=1e-6)


def test_checkpoint_carries_replay_buffer_and_env_steps(run) -> None:
    summary = run(["model=dqn", "trainer=debug"])
    ckpt = torch.load(summary["last_checkpoint"], weights_only=True)
    state = ckpt["rl_state"]
    assert state["env_steps"] >= 1024 and len(state["buffer"]["rewards"]) == state["env_steps"]
    model = DQNModule(torch.optim.Adam, **ckpt["hyper_parameters"])
    model.on_load_checkpoint(ckpt)
    assert model.env_steps == state["env_steps"] and len(model.buffer) == state["env_steps"]
    assert summary["data"] == "cartpole" and "test/return" in summary["metrics"]


@pytest.mark.slow
def test_dqn_solves_cartpole(run) -> None:
    """The default `python train.py model=dqn`: some evaluation (10 greedy episodes) reaches a
    mean return >= 475 within 51,200 environment steps, and the best checkpoint is that one."""
    summary = run(["model=dqn", "logger=none"])
    assert summary["monitor"]["best"] >= 475, summary
    assert summary["metrics"]["test/return"] >= 400, summary


def test_evaluate_script_reports_returns_and_refuses_non_agents(run, capsys) -> None:
    import json
    import sys

    from conftest import ROOT

    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import evaluate
    finally:
        sys.path.pop(0)
    dqn = run(["model=dqn", "trainer=debug"])
    assert evaluate.main([dqn["last_checkpoint"], "--episodes", "3"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["episodes"] == 3 and out["env_id"] == "CartPole-v1" and out["mean_return"] >= 8
    mlp = run(["model=mlp", "trainer=debug"])
    assert evaluate.main([mlp["last_checkpoint"]]) == 1
    assert "not an RL agent" in capsys.readouterr().err


def test_gae_matches_a_hand_computation() -> None:
    from mlzoo.models.ppo import gae

    rewards = torch.tensor([[1.0], [1.0], [1.0]])
    values = torch.tensor([[0.5], [0.4], [0.3]])
    dones = torch.tensor([[0.0], [1.0], [0.0]])  # the episode ends at step 1
    next_value = torch.tensor([0.2])
    g, lam = 0.9, 0.8
    d2 = 1.0 + g * 0.2 - 0.3
    d1 = 1.0 - 0.4  # no bootstrap past the end of the episode
    d0 = 1.0 + g * 0.4 - 0.5
    expected = torch.tensor([[d0 + g * lam * d1], [d1], [d2]])
    torch.testing.assert_close(gae(rewards, values, dones, next_value, g, lam), expected)


def test_ppo_runs_with_continuous_actions(run) -> None:
    summary = run(
        [
            "model=ppo",
            "env=pendulum",
            "trainer=debug",
            "trainer.max_steps=-1",
            "trainer.max_epochs=1",
            "data.num_envs=2",
        ]
    )
    assert summary["data"] == "pendulum" and summary["metrics"]["test/return"] < 0


@pytest.mark.slow
def test_ppo_solves_cartpole(run) -> None:
    """The default `python train.py model=ppo`: some evaluation reaches a mean return >= 475
    within 102,400 environment steps (rl-zoo's budget is 100k)."""
    summary = run(["model=ppo", "logger=none"])
    assert summary["monitor"]["best"] >= 475, summary
    assert summary["metrics"]["test/return"] >= 475, summary
