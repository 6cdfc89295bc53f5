"""The Python entry points: ``train`` leaves its config alone, ``load`` gives a policy that acts, ``evaluate``
is repeatable."""

import gymnasium as gym
import numpy as np

import robopg

from .conftest import tiny


def test_load_gives_a_policy_that_acts(trained_cartpole):
    policy = robopg.load(trained_cartpole.run_dir)
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=0)
    a = policy.act(obs, deterministic=True)
    assert env.action_space.contains(a)
    batch = policy.act(np.stack([obs, obs]))
    assert batch.shape == (2,)
    best = robopg.load(trained_cartpole.run_dir, which="best")
    assert best.config.env_id == "CartPole-v1"


def test_train_does_not_change_the_config_it_is_given(tmp_path):
    config = tiny(workers=0)
    before = config.to_dict()
    run = robopg.train(config, tmp_path / "r")
    assert config.to_dict() == before
    assert run.config.run_dir == str(tmp_path / "r") and run.config.env_backend == "gymnasium"


def test_evaluate_is_repeatable(trained_cartpole):
    policy = robopg.load(trained_cartpole.run_dir)
    a = robopg.evaluate(policy, "CartPole-v1", episodes=3, seed=5)
    assert a == robopg.evaluate(policy, "CartPole-v1", episodes=3, seed=5) and a["episodes"] == 3
