"""Update rules on their own, without the runner: what ``update`` changes, and what ``state_dict`` keeps."""

import copy

import numpy as np
import pytest
import torch

from robopg.algorithms import PolicyGradient, make_algorithm
from robopg.envs import make_vector_env
from robopg.policies import make_policy
from robopg.sampler import Sampler

from .conftest import tiny


def _setup(**kw):
    config = tiny("CartPole-v1", **kw)
    torch.manual_seed(0)
    venv = make_vector_env(config.env_id, config.num_envs)
    policy = make_policy(config, venv.single_observation_space, venv.single_action_space)
    algorithm = make_algorithm(config, policy, config.num_envs)
    sampler = Sampler(venv, policy, config.batch_size, config.resolved_batch_mode(), config.seed)
    return config, policy, algorithm, sampler


@pytest.mark.parametrize("kw", [dict(estimator="gae", baseline="value", normalize_rewards=True),
                                dict(estimator="rtg", baseline="optimal", entropy_coef=0.01),
                                dict(estimator="reinforce", baseline="none")])
def test_update_moves_the_policy_and_reports_its_statistics(kw):
    config, policy, algorithm, sampler = _setup(**kw)
    assert isinstance(algorithm, PolicyGradient)
    before = copy.deepcopy(policy.state_dict())
    stats = algorithm.update(sampler.collect(), iteration=1, progress=0.0)
    assert {"policy_loss", "entropy", "grad_norm", "lr"} <= set(stats)
    assert all(np.isfinite(v) for k, v in stats.items() if k != "explained_variance")
    assert ("value_loss" in stats) == (config.baseline == "value")
    changed = [k for k, v in policy.state_dict().items() if not torch.equal(v, before[k])]
    assert any("net" in k for k in changed) and "normalizer.mean" in changed
    sampler.close()


def test_state_dict_round_trip_gives_the_same_next_update():
    _, _, algorithm, sampler = _setup(estimator="gae", baseline="value", normalize_rewards=True)
    algorithm.update(sampler.collect(), 1, 0.0)
    rollout = sampler.collect()
    state, policy_state = copy.deepcopy(algorithm.state_dict()), copy.deepcopy(algorithm.policy.state_dict())
    torch.manual_seed(5)
    first = algorithm.update(rollout, 2, 0.5)
    _, _, other, _ = _setup(estimator="gae", baseline="value", normalize_rewards=True)
    other.policy.load_state_dict(policy_state)
    other.load_state_dict(state)
    torch.manual_seed(5)
    assert other.update(rollout, 2, 0.5) == first
    sampler.close()


def test_linear_schedule_anneals_the_learning_rate():
    config, _, algorithm, sampler = _setup(lr_schedule="linear")
    stats = algorithm.update(sampler.collect(), 1, progress=0.75)
    assert stats["lr"] == pytest.approx(config.lr * 0.25)
    sampler.close()
