"""The sampler stores exactly the transitions the environments produced: none fabricated at resets,
none shifted, truncations carrying their true final observation."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from robopg.config import Config
from robopg.envs import make_vector_env
from robopg.policies import make_policy
from robopg.sampler import Sampler


def _sampler(env_id, mode, batch_size=600, num_envs=3, seed=5):
    torch.manual_seed(0)
    venv = make_vector_env(env_id, num_envs)
    policy = make_policy(Config(env_id=env_id), venv.single_observation_space, venv.single_action_space)
    return Sampler(venv, policy, batch_size, mode, seed), venv


@pytest.mark.parametrize("env_id", ["CartPole-v1", "InvertedPendulum-v5"])
@pytest.mark.parametrize("mode", ["steps", "episodes"])
def test_replaying_actions_in_a_single_env_reproduces_the_batch(env_id, mode):
    sampler, venv = _sampler(env_id, mode)
    ro = sampler.collect()
    for n in range(venv.num_envs):
        env = gym.make(env_id)
        obs, _ = env.reset(seed=5 + n)  # vector envs seed sub-env i with seed + i
        for t in range(ro.obs.shape[0]):
            if not ro.mask[t, n]:
                break
            np.testing.assert_allclose(ro.obs[t, n], obs, rtol=0, atol=1e-6)
            action = sampler.policy.to_env(ro.actions[t, n][None])[0]
            obs, r, term, trunc, _ = env.step(action)
            assert ro.rewards[t, n] == r
            assert ro.terminated[t, n] == term
            np.testing.assert_allclose(ro.next_obs[t, n], obs, rtol=0, atol=1e-6)
            cut = mode == "steps" and t == ro.obs.shape[0] - 1 and not term  # the batch end
            assert ro.truncated[t, n] == (trunc or cut)
            if term or trunc:
                obs, _ = env.reset()
        env.close()
    venv.close()


def test_episode_mode_holds_only_whole_episodes():
    sampler, venv = _sampler("CartPole-v1", "episodes", batch_size=700)
    ro = sampler.collect()
    assert ro.num_steps >= 700
    ended = ro.terminated | ro.truncated
    for n in range(venv.num_envs):
        valid = np.flatnonzero(ro.mask[:, n])
        assert valid[0] == 0 and np.all(np.diff(valid) == 1)  # one contiguous block from the reset
        assert ended[valid[-1], n]  # ... ending at an episode end
    returns = []
    for n in range(venv.num_envs):
        start = 0
        for t in np.flatnonzero(ended[:, n] & ro.mask[:, n]):
            returns.append(ro.rewards[start:t + 1, n].sum())
            start = t + 1
    assert sorted(returns) == sorted(ro.episode_returns)


def test_steps_mode_cuts_the_batch_as_a_truncation_and_continues_next_batch():
    sampler, venv = _sampler("CartPole-v1", "steps", batch_size=300, num_envs=3)
    first = sampler.collect()
    assert first.obs.shape[:2] == (100, 3) and first.mask.all()
    assert np.all(first.terminated[-1] | first.truncated[-1])
    second = sampler.collect()
    # The next batch starts where the last one stopped (no reset in between).
    cont = ~first.terminated[-1]
    np.testing.assert_allclose(second.obs[0][cont], first.next_obs[-1][cont])
