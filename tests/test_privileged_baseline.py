"""The privileged baseline (--critic-obs privileged), proven on an exact problem with a hidden per-episode context.

The policy never sees the context c (a robot's randomised physics); the baseline V(s, c) does. The seed's proof
needs only that the baseline not depend on the action, so sum_t grad log pi(a_t|s_t) (G_t - V(s_t, c)) stays
unbiased: its Monte-Carlo mean matches the exact gradient within a Bonferroni bound from its standard error, and
its variance is below that of a baseline that sees only s. The same check catches a baseline that also sees the
action, which shows it has power.
"""

import numpy as np
import pytest
import torch

from robopg import estimators as est
from robopg import exact, make_config
from robopg.algorithms.weights import compute_weights
from robopg.policies import ObsNormalizer, ValueFunction
from robopg.sampler import Rollout
from robopg.stats import bias_test, variance_test

ALPHA = 1e-3


def _setting(num_episodes=40_000):
    mdp = exact.hidden_context_chain(5)
    theta = np.random.default_rng(1).normal(0, 0.5, size=(6, 2))
    episodes, contexts = mdp.sample(theta, num_episodes, np.random.default_rng(7))
    return mdp, theta, episodes, contexts


def _gradients(mdp, theta, ep, baseline):
    """Per-episode samples of sum_t grad log pi(a_t|s_t) (G_t - b_t), b [T, N]."""
    g = est.reward_to_go(ep.rewards, ep.terminated, ep.truncated, None, mdp.gamma)
    return mdp.episode_gradients(theta, ep, np.where(ep.mask, g - baseline, 0.0))


def test_hidden_context_sampling_matches_the_exact_objective():
    mdp, theta, ep, contexts = _setting(20_000)
    returns = (ep.rewards * ep.mask).sum(0)
    assert abs(returns.mean() - float(mdp.objective(torch.tensor(theta)))) < 4 * returns.std() / np.sqrt(len(returns))
    assert 0.45 < contexts.mean() < 0.55
    # The contexts really differ: each context's return is its own MDP's J.
    for c, m in enumerate(mdp.mdps):
        r = returns[contexts == c]
        assert abs(r.mean() - float(m.objective(torch.tensor(theta)))) < 4 * r.std() / np.sqrt(len(r))


def test_privileged_baseline_is_unbiased_and_lowers_the_variance():
    mdp, theta, ep, contexts = _setting()
    truth = mdp.gradient(theta)
    v = mdp.context_values(theta)                       # [C, S]: V_c(s)
    privileged = v[contexts[None, :], ep.states]        # V(s_t, c), the critic that sees the physics
    state_only = (mdp.probs @ v)[ep.states]             # a baseline of s alone
    g_priv = _gradients(mdp, theta, ep, privileged)
    g_state = _gradients(mdp, theta, ep, state_only)
    g_none = _gradients(mdp, theta, ep, np.zeros_like(privileged))
    for g in (g_priv, g_state, g_none):
        result = bias_test(g, truth, ALPHA)
        assert result.passed, result
    assert bias_test(g_priv, truth, ALPHA).bias_norm_upper < 0.2 * np.linalg.norm(truth)
    cmp = variance_test(g_state, g_priv, ALPHA)         # paired: the same episodes
    assert cmp.a_larger and cmp.ratio > 1.1, cmp  # measured: 1.14 (z = 18)
    assert variance_test(g_none, g_priv, ALPHA).a_larger


def test_a_baseline_that_sees_the_action_is_caught():
    mdp, theta, ep, contexts = _setting()
    v = mdp.context_values(theta)
    peeking = v[contexts[None, :], ep.states] + 3.0 * ep.actions  # V(s, c) + k * a: depends on the action
    assert not bias_test(_gradients(mdp, theta, ep, peeking), mdp.gradient(theta), ALPHA).passed


def test_privileged_value_function_reads_the_context():
    norm = ObsNormalizer(3)
    value = ValueFunction(norm, [8], "tanh", context_dim=2)
    torch.manual_seed(0)
    obs = np.random.default_rng(0).normal(size=(4, 2, 3)).astype(np.float32)
    context = np.zeros((4, 2, 2), np.float32)
    context[:, 1] = 0.3
    mask = np.ones((4, 2), bool)
    ro = Rollout(obs, np.zeros((4, 2, 1), np.float32), np.ones((4, 2)), np.zeros((4, 2), bool),
                 np.zeros((4, 2), bool), obs, mask, [], [], context=context)
    c = make_config("Hopper-v5", randomize="mass=0.5:1.5,friction=0.5:1.5", critic_obs="privileged")
    w = compute_weights(c, ro, value, None)
    assert w.value_inputs.shape == (8, 5) and w.obs.shape == (8, 3)
    np.testing.assert_array_equal(w.value_inputs[:, 3:].numpy(), context.reshape(8, 2))
    with torch.no_grad():
        same_obs = torch.as_tensor(np.concatenate([obs[0], np.zeros((2, 2), np.float32)], 1))
        shifted = same_obs.clone()
        shifted[:, 3:] = 0.3
        assert not torch.equal(value(same_obs), value(shifted))  # V depends on c


def _critic_and_batch(critic_obs: str, **kw):
    """A Hopper critic (--critic-obs critic_obs, more options in ``kw``) and a batch whose two episodes differ
    only in their context."""
    import gymnasium as gym

    from robopg.algorithms.critic import Critic
    from robopg.policies import make_policy

    c = make_config("Hopper-v5", randomize="mass=0.5:1.5,friction=0.5:1.5", critic_obs=critic_obs, hidden_sizes=[8],
                    **kw)
    obs_space = gym.spaces.Box(-np.inf, np.inf, (11,), np.float32)
    torch.manual_seed(0)
    critic = Critic(c, make_policy(c, obs_space, gym.spaces.Box(-1, 1, (3,), np.float32)), 2)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(16, 2, 11)).astype(np.float32)
    context = np.stack([np.zeros((16, 2)), np.full((16, 2), 0.4)], axis=1).astype(np.float32)
    rewards = np.stack([np.ones(16), np.full(16, 3.0)], axis=1)  # the heavier context earns more
    ro = Rollout(obs, np.zeros((16, 2, 3), np.float32), rewards, np.zeros((16, 2), bool), np.zeros((16, 2), bool),
                 obs, np.ones((16, 2), bool), [], [], context=context)
    return critic, ro


def _fit_critic_on_contexts(critic_obs: str):
    """The critic of ``_critic_and_batch`` fit once on its batch; returns its value function and the first layer's
    context columns before and after the fit."""
    critic, ro = _critic_and_batch(critic_obs)
    first = critic.value.net[0].weight
    before = first[:, 11:].detach().clone()
    critic.fit(critic.weights(ro), 0)
    return critic.value, before, first[:, 11:].detach().clone()


def test_blind_critic_is_the_privileged_network_without_the_information():
    # --critic-obs blind: the control arm of the experiment in docs/robustness.md. Its network has the context
    # inputs but never reads them (weights on them stay at their initial values, V does not change with c);
    # the privileged one, on the same batch, learns from them.
    blind, before, after = _fit_critic_on_contexts("blind")
    np.testing.assert_array_equal(before.numpy(), after.numpy())
    x = torch.zeros(3, 13)
    shifted = x.clone()
    shifted[:, 11:] = 0.4
    with torch.no_grad():
        assert torch.equal(blind(x), blind(shifted))
    privileged, before, after = _fit_critic_on_contexts("privileged")
    assert not torch.equal(before, after)
    with torch.no_grad():
        assert not torch.equal(privileged(x), privileged(shifted))


def test_context_noise_blurs_the_context_columns_only():
    from robopg.value_fit import blur_context

    value = ValueFunction(ObsNormalizer(3), [8], "tanh", context_dim=2)
    n, sigma = 20_000, 0.1
    x = torch.as_tensor(np.random.default_rng(0).normal(size=(n, 5)), dtype=torch.float32)
    torch.manual_seed(0)
    blurred = blur_context(value, x, sigma)
    assert torch.equal(blurred[:, :3], x[:, :3]) and not torch.equal(blurred, x)
    noise = (blurred[:, 3:] - x[:, 3:]).double()
    # Mean and std of n Gaussian draws, each within 5 of its standard errors (sigma/sqrt(n), sigma/sqrt(2n)).
    assert (noise.mean(0).abs() < 5 * sigma / n ** 0.5).all()
    assert ((noise.std(0) - sigma).abs() < 5 * sigma / (2 * n) ** 0.5).all()
    # Nothing to blur: the same tensor, and no random numbers drawn (a plain run's numbers stay what they were).
    plain = ValueFunction(ObsNormalizer(5), [8], "tanh")
    state = torch.get_rng_state()
    assert blur_context(value, x, 0.0) is x
    assert blur_context(plain, x, sigma) is x
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("clip", [None, 0.2])  # the plain fit and PPO's clipped one
def test_context_noise_defaults_and_reaches_the_fit_not_psi(clip):
    # The default: 0.1 for a privileged critic (the measured setting), 0 for any other; given, as given.
    assert make_config("Hopper-v5", randomize="mass=0.5:1.5", critic_obs="privileged").context_noise() == 0.1
    assert make_config("Hopper-v5", randomize="mass=0.5:1.5", critic_obs="privileged",
                       critic_context_noise=0.0).context_noise() == 0.0
    assert make_config("Hopper-v5", randomize="mass=0.5:1.5", critic_obs="blind").context_noise() == 0.0
    critics = {}
    for noise in (0.0, 0.3):
        critic, ro = _critic_and_batch("privileged", critic_context_noise=noise)
        assert critic.value_fit.context_noise == noise
        before = critic.weights(ro)
        critic.fit(before, 0, clip)
        critics[noise] = (before, critic.weights(ro))
    # Psi before the fit does not depend on the noise (V is read noise-free); the fit does.
    assert torch.equal(critics[0.0][0].psi, critics[0.3][0].psi)
    assert not torch.equal(critics[0.0][1].psi, critics[0.3][1].psi)
