"""env=gym: any registered gymnasium environment, sized from its spaces; env_kwargs reach
gymnasium.make; a space the agents cannot take, an unknown id or a missing id give one line."""

from __future__ import annotations

from pathlib import Path

from cli_cases import run_cases

from conftest import run_training


def test_ppo_runs_on_a_gym_env_sized_from_its_spaces(tmp_path: Path) -> None:
    overrides = ["model=ppo", "env=gym", "data.env_id=MountainCarContinuous-v0", "trainer=debug"]
    summary = run_training([*overrides, "logger=none"], tmp_path / "logs")
    assert summary["data"] == "gym" and "test/return" in summary["metrics"]


def test_env_kwargs_reach_gymnasium_make(tmp_path: Path) -> None:
    """CartPole cut at 20 steps: no evaluation episode can return more than 20."""
    overrides = ["model=dqn", "env=gym", "data.env_id=CartPole-v1", "trainer=debug"]
    kwargs = "+data.env_kwargs.max_episode_steps=20"
    summary = run_training([*overrides, kwargs, "logger=none"], tmp_path / "logs")
    assert 0 < summary["metrics"]["test/return"] <= 20


def test_spaces_the_agents_cannot_take_give_one_line(tmp_path: Path) -> None:
    gym = ["env=gym", "trainer=debug"]
    cases = [
        (["model=ppo", *gym, "data.env_id=FrozenLake-v1"], "observation space Discrete(16)"),
        (["model=dqn", *gym, "data.env_id=Pendulum-v1"], "use model=ppo"),
        (["model=ppo", *gym, "data.env_id=Blackjack-v1"], "observation space Tuple"),
        (["model=ppo", *gym, "data.env_id=NoSuchEnv-v0"], "NoSuchEnv"),
        (["model=ppo", *gym], "data.env_id"),
    ]
    failures = run_cases([("train", a, r) for a, r in cases], tmp_path)
    assert not failures, "\n".join(failures)
    assert not list(tmp_path.glob("logs/runs/*/*")), "a failed run left its folder behind"
