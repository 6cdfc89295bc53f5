"""--mean-bound-coef: a penalty on a Gaussian policy's mean beyond the action bounds (pg, ppo). Its closed form,
its pull on the means when the policy gradient is zero, nothing changed without it, and bad input."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import robopg
from robopg import losses
from robopg.algorithms import PPO, PolicyGradient
from robopg.algorithms.weights import Weights
from robopg.metrics import read_csv
from robopg.policies import GaussianPolicy

from .conftest import tiny
from .test_training import _numbers


def test_penalty_is_the_squared_excess_over_the_bounds():
    mean = torch.tensor([[0.5, -0.2], [3.0, -1.5], [-2.0, 1.25]])
    low, high = torch.tensor([-1.0, -1.0]), torch.tensor([1.0, 1.5])
    # rows: inside (0); 2 over the first high and 0.5 under the second low; 1 under the first low.
    expected = (0.0 + (2.0 ** 2 + 0.5 ** 2) + 1.0 ** 2) / 3
    assert losses.mean_bound_penalty(mean, low, high).item() == pytest.approx(expected, rel=1e-7)


def _policy(bias):
    space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    policy = GaussianPolicy(3, space, [], "tanh", 0.0, normalize_observations=False)
    with torch.no_grad():
        policy.mean_net[0].weight.zero_()
        policy.mean_net[0].bias.copy_(torch.as_tensor(bias))
    return policy


@pytest.mark.parametrize("rule", [PolicyGradient, PPO])
@pytest.mark.parametrize("coef", [None, 0.0, 1.0])
def test_the_penalty_pulls_a_mean_past_its_bound_back_when_the_policy_gradient_is_zero(rule, coef):
    config = tiny("Pendulum-v1", algorithm=rule.name, mean_bound_coef=coef, lr=0.1, minibatch_size=64)
    policy = _policy([3.0, 0.5])
    update = rule(config, policy, num_envs=4)
    obs = torch.randn(256, 3)
    w = Weights(obs, policy.sample(obs).detach(), torch.zeros(256), None, None)  # Psi = 0: no policy gradient
    for it in range(20):
        update._policy_step(None, w, it) if rule is PolicyGradient else update.policy_epochs(w, it)
    mean = policy(obs[:1]).detach()[0]
    if coef:
        assert 0.3 < mean[0] < 1.8                               # pulled back to about the bound (Adam overshoots)
    else:
        assert mean[0] == pytest.approx(3.0, abs=1e-6)           # nothing pulls it
    assert mean[1] == pytest.approx(0.5, abs=1e-6)               # inside the bounds: never touched


def test_without_the_option_and_at_zero_the_numbers_are_todays(tmp_path):
    kw = dict(steps=2048, batch_size=512)
    default = robopg.train(tiny("Pendulum-v1", **kw), tmp_path / "default")
    zero = robopg.train(tiny("Pendulum-v1", mean_bound_coef=0.0, **kw), tmp_path / "zero")
    on = robopg.train(tiny("Pendulum-v1", mean_bound_coef=1.0, **kw), tmp_path / "on")
    assert _numbers(zero.run_dir) == _numbers(default.run_dir)
    assert robopg.api.load_config(on.run_dir).mean_bound_coef == 1.0
    # (Pendulum's means stay within its bounds of +-2 here, so the penalty is logged and is 0.)
    assert [row["mean_bound_penalty"] for row in read_csv(on.run_dir / "metrics.csv")] == [0.0] * 4
    assert all(np.isnan(row["mean_bound_penalty"]) for row in read_csv(default.run_dir / "metrics.csv"))


@pytest.mark.parametrize("args,option", [
    (["Hopper-v5", "--mean-bound-coef", "-1"], "--mean-bound-coef"),
    (["Hopper-v5", "--algorithm", "trpo", "--mean-bound-coef", "0.1"], "--mean-bound-coef"),
    (["CartPole-v1", "--mean-bound-coef", "0.1"], "--mean-bound-coef"),
])
def test_bad_input_exits_2_naming_the_option(cli, tmp_path, args, option):
    out = cli("train", *args, "--run-dir", tmp_path / "r")
    assert out.returncode == 2, out.stderr
    assert option in out.stderr and "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()
