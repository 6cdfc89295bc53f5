"""Policies: the sampler's frozen fast path against the reference ``sample``, the value function's Adam step."""

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch

from robopg.config import Config
from robopg.optim import adam_step
from robopg.policies import ObsNormalizer, ValueFunction, make_policy


def _policy(space, activation="tanh", hidden=(64, 64)):
    torch.manual_seed(0)
    config = Config(env_id="test", hidden_sizes=list(hidden), activation=activation)
    policy = make_policy(config, gym.spaces.Box(-np.inf, np.inf, (5,)), space)
    obs = np.random.default_rng(0).normal(3.0, 2.0, (500, 5))
    policy.normalizer.update(obs)  # non-trivial statistics, some observations beyond the clip
    return policy


SPACES = {
    # Bounds the Gaussian's samples cross (so clipping is exercised) and an action shape to restore.
    "box": gym.spaces.Box(-0.3, np.array([0.2, 0.5, 1.0, 0.1], np.float32).reshape(2, 2), dtype=np.float32),
    "discrete": gym.spaces.Discrete(4, start=-1),
}


@pytest.mark.parametrize("space", SPACES.values(), ids=SPACES.keys())
@pytest.mark.parametrize("activation,hidden", [("tanh", (64, 64)), ("relu", (8,)), ("elu", (16, 8)), ("tanh", ())])
def test_sampling_gives_the_numbers_of_sample_and_to_env(space, activation, hidden):
    policy = _policy(space, activation, hidden)
    obs = np.random.default_rng(1).normal(3.0, 40.0, (16, 5)).astype(np.float32)
    sample_actions = policy.sampling()
    torch.manual_seed(7)
    fast = [sample_actions(obs) for _ in range(3)]
    torch.manual_seed(7)
    with torch.no_grad():
        reference = [policy.sample(torch.as_tensor(obs)).numpy() for _ in range(3)]
    for (actions, env_actions), expected in zip(fast, reference):
        assert actions.dtype == expected.dtype and np.array_equal(actions, expected)  # to the bit
        assert np.array_equal(env_actions, policy.to_env(expected))
        assert env_actions.shape == (16, *space.shape)
    if isinstance(space, gym.spaces.Box):
        assert not np.array_equal(fast[0][0].reshape(env_actions.shape), fast[0][1])  # clipping happened


def test_sampling_is_frozen_against_later_updates():
    policy = _policy(SPACES["box"])
    obs = np.random.default_rng(2).normal(size=(4, 5)).astype(np.float32)
    sample_actions = policy.sampling()
    torch.manual_seed(3)
    before = sample_actions(obs)[0]
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.5)  # in place, as an optimizer step is
    policy.normalizer.update(obs * 10)
    torch.manual_seed(3)
    assert np.array_equal(sample_actions(obs)[0], before)
    torch.manual_seed(3)
    assert not np.array_equal(policy.sampling()(obs)[0], before)


def test_sampling_records_no_autograd_history():
    policy = _policy(SPACES["box"])
    mean = policy.sampling()
    with torch.enable_grad():
        actions, _ = mean(np.zeros((2, 5), np.float32))  # .numpy() would raise on a tensor that needs grad
    assert actions.shape == (2, 4)


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_adam_step_is_optimizer_step_to_the_bit(weight_decay):
    torch.manual_seed(0)
    a = ValueFunction(ObsNormalizer(5), [16, 16], "tanh")
    b = copy.deepcopy(a)
    opt_a = torch.optim.Adam(a.net.parameters(), lr=3e-3, fused=True, weight_decay=weight_decay)
    opt_b = torch.optim.Adam(b.net.parameters(), lr=3e-3, fused=True, weight_decay=weight_decay)
    x, y = torch.randn(64, 5), torch.randn(64)
    for step in range(6):  # the first step creates Adam's state; the rest take the fast path
        for value, step_fn in ((a, opt_a.step), (b, lambda: adam_step(opt_b))):
            value.squared_error_grad(x[step::2], y[step::2])
            step_fn()
        if step == 3:
            for opt in (opt_a, opt_b):
                opt.param_groups[0]["lr"] = 1e-3  # a changed learning rate is read on every step
    for pa, pb in zip(a.net.parameters(), b.net.parameters()):
        assert torch.equal(pa, pb)
    for sa, sb in zip(opt_a.state.values(), opt_b.state.values()):
        assert all(torch.equal(sa[k], sb[k]) for k in ("step", "exp_avg", "exp_avg_sq"))


def test_adam_step_falls_back_to_torch_where_it_does_not_apply():
    torch.manual_seed(0)
    value = ValueFunction(ObsNormalizer(3), [8], "tanh")
    opt = torch.optim.Adam(value.net.parameters(), lr=1e-2, amsgrad=True)  # not fused, amsgrad
    before = [p.detach().clone() for p in value.net.parameters()]
    for _ in range(2):
        value.squared_error_grad(torch.randn(10, 3), torch.randn(10))
        adam_step(opt)
    assert all(not torch.equal(p, q) for p, q in zip(before, value.net.parameters()))
    assert all(s["max_exp_avg_sq"].abs().sum() > 0 for s in opt.state.values())
