"""Policies and the value function: each fast path against its plain reference, to the bit."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from robopg.config import Config
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


def assert_frozen_sampler_is_sample(policy, obs: np.ndarray) -> list:
    """The frozen sampler's (actions, env actions) for ``obs``, three calls from one torch seed, against
    ``sample`` then ``to_env`` from the same seed: to the bit. Returns the sampler's."""
    sample_actions = policy.frozen_sampler()
    torch.manual_seed(7)
    fast = [sample_actions(obs) for _ in range(3)]
    torch.manual_seed(7)
    with torch.no_grad():
        reference = [policy.sample(torch.as_tensor(obs)).numpy() for _ in range(3)]
    for (actions, env_actions), expected in zip(fast, reference):
        assert actions.dtype == expected.dtype and np.array_equal(actions, expected)  # to the bit
        assert np.array_equal(env_actions, policy.to_env(expected))
    return fast


@pytest.mark.parametrize("space", SPACES.values(), ids=SPACES.keys())
@pytest.mark.parametrize("activation,hidden", [("tanh", (64, 64)), ("relu", (8,)), ("elu", (16, 8)), ("tanh", ())])
def test_frozen_sampler_gives_the_numbers_of_sample_and_to_env(space, activation, hidden):
    policy = _policy(space, activation, hidden)
    obs = np.random.default_rng(1).normal(3.0, 40.0, (16, 5)).astype(np.float32)
    fast = assert_frozen_sampler_is_sample(policy, obs)
    for _, env_actions in fast:
        assert env_actions.shape == (16, *space.shape)
    if isinstance(space, gym.spaces.Box):
        assert not np.array_equal(fast[0][0].reshape(env_actions.shape), fast[0][1])  # clipping happened


def test_frozen_sampler_is_frozen_against_later_updates():
    policy = _policy(SPACES["box"])
    obs = np.random.default_rng(2).normal(size=(4, 5)).astype(np.float32)
    sample_actions = policy.frozen_sampler()
    torch.manual_seed(3)
    before = sample_actions(obs)[0]
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.5)  # in place, as an optimizer step is
    policy.normalizer.update(obs * 10)
    torch.manual_seed(3)
    assert np.array_equal(sample_actions(obs)[0], before)
    torch.manual_seed(3)
    assert not np.array_equal(policy.frozen_sampler()(obs)[0], before)


def test_frozen_sampler_records_no_autograd_history():
    policy = _policy(SPACES["box"])
    mean = policy.frozen_sampler()
    with torch.enable_grad():
        actions, _ = mean(np.zeros((2, 5), np.float32))  # .numpy() would raise on a tensor that needs grad
    assert actions.shape == (2, 4)


@pytest.mark.parametrize("activation,hidden", [("tanh", [64, 64]), ("relu", [32, 16, 8]), ("elu", [16]),
                                               ("tanh", [])])
@pytest.mark.parametrize("rows", [128, 37, 1])
def test_value_backward_by_hand_equals_its_plain_reference_to_the_bit(activation, hidden, rows):
    torch.manual_seed(0)
    value = ValueFunction(ObsNormalizer(5), hidden, activation)
    x, targets = torch.randn(rows, 5) * 2, torch.randn(rows)
    for _ in range(2):  # the second call writes into the .grad tensors the first made
        loss = value.squared_error_grad(x, targets)
    expected_loss, expected = value.squared_error_grad_reference(x, targets)
    assert torch.equal(loss, expected_loss)
    for p, g in zip(value.net.parameters(), expected):
        assert torch.equal(p.grad, g) and torch.equal(torch.signbit(p.grad), torch.signbit(g))


@pytest.mark.parametrize("activation,hidden", [("tanh", [64, 64]), ("relu", [32, 16, 8]), ("elu", [16]),
                                               ("tanh", [])])
def test_value_backward_by_hand_equals_autograd(activation, hidden):
    # The mathematics, against autograd of the reference loss. In float64 rounding is ~1e-16, so any slip in
    # the hand-written chain rule shows far above 1e-10.
    from robopg import losses

    torch.manual_seed(0)
    value = ValueFunction(ObsNormalizer(5), hidden, activation).double()
    x = torch.randn(37, 5, dtype=torch.float64) * 2
    targets = torch.randn(37, dtype=torch.float64)
    loss = value.squared_error_grad(x, targets)
    by_hand = [p.grad.clone() for p in value.net.parameters()]
    value.net.zero_grad(set_to_none=True)
    expected = losses.value_loss(value.values_of_normalized(x), targets)
    expected.backward()
    assert torch.allclose(loss, expected.detach(), rtol=1e-12, atol=0)
    for got, p in zip(by_hand, value.net.parameters()):
        assert got.shape == p.shape
        assert torch.allclose(got, p.grad, rtol=1e-10, atol=1e-13)


def test_normaliser_constants_follow_the_module_to_float64():
    policy = _policy(SPACES["box"])
    obs = torch.as_tensor(np.random.default_rng(3).normal(3.0, 2.0, (8, 5)))
    policy.double()
    norm = policy.normalizer
    expected = ((obs - norm.mean) / torch.sqrt(norm.var + 1e-8)).clamp(-norm.clip, norm.clip)
    got = norm(obs)
    assert got.dtype == torch.float64 and torch.allclose(got, expected, rtol=1e-15, atol=0)
    assert policy.log_prob_entropy(obs, torch.zeros(8, 4, dtype=torch.float64))[0].dtype == torch.float64
    policy.float()
    assert norm(obs.float()).dtype == torch.float32


def test_normaliser_constants_follow_a_load():
    a, b = _policy(SPACES["box"]), _policy(SPACES["box"])
    b.normalizer.update(np.full((10, 5), 7.0))
    a.load_state_dict(b.state_dict())
    obs = torch.randn(4, 5)
    assert torch.equal(a.normalizer(obs), b.normalizer(obs))
