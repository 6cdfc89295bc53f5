"""The estimators against exact gradients on small MDPs.

Each test draws many episodes at a fixed softmax policy, turns robopg's weights Psi into per-episode (or
per-batch) gradient samples, and compares their mean with dJ/dtheta from an exact J(theta). The tolerance
is each coordinate's standard error times a Bonferroni-corrected normal quantile (alpha = 1e-3 overall):
a correct estimator fails with probability ~0.1%, and the seeds are fixed, so the outcome is repeatable.
The same check must reject deliberately biased estimators, which shows it has power.
"""

import numpy as np
import pytest

from robopg import estimators as est
from robopg import exact
from robopg.stats import bias_test, variance_test

ALPHA = 1e-3


def _psi(mdp, ep, estimator, baseline, values=None, lam=1.0, theta=None):
    nv = None
    v = None
    if values is not None:
        v = values[ep.states]
        # Finite-horizon J: a time-limit cut is the end of the problem, not a bootstrap point.
        nv = np.where(ep.truncated, 0.0, values[ep.next_states])
    psi, _ = est.weights(estimator, baseline, ep.rewards, ep.terminated, ep.truncated, ep.mask, mdp.gamma, lam,
                         values=v, next_values=nv)
    return psi


def _theta(mdp, seed=1):
    return np.random.default_rng(seed).normal(0, 0.5, size=(mdp.num_states, mdp.num_actions))


PROBLEMS = [exact.chain(5), exact.chain(5, horizon=8), exact.random_mdp(3)]


@pytest.fixture(scope="module", params=PROBLEMS, ids=lambda m: m.name)
def setting(request):
    mdp = request.param
    theta = _theta(mdp)
    ep = mdp.sample(theta, 40_000, np.random.default_rng(7))
    return mdp, theta, ep, mdp.gradient(theta)


@pytest.mark.parametrize("estimator,baseline", [("reinforce", "none"), ("rtg", "none"), ("rtg", "value"),
                                                ("reinforce", "value")])
def test_estimator_is_unbiased(setting, estimator, baseline):
    mdp, theta, ep, true_grad = setting
    values = mdp.values(theta) if baseline == "value" else None
    g = mdp.episode_gradients(theta, ep, _psi(mdp, ep, estimator, baseline, values))
    result = bias_test(g, true_grad, ALPHA)
    assert result.passed, (estimator, baseline, result)


def test_mean_baseline_is_unbiased_per_batch(setting):
    # The leave-one-out mean couples the episodes of one batch: the independent samples are batches.
    mdp, theta, ep, true_grad = setting
    k = 8
    n = ep.states.shape[1] // k * k
    batches = []
    for i in range(0, n, k):
        sl = slice(i, i + k)
        # Only up to the batch's longest episode: the 40,000 episodes' padding would be most of the work.
        steps = slice(0, ep.mask[:, sl].any(1).nonzero()[0].max() + 1)
        sub = exact.Episodes(*(getattr(ep, f)[steps, sl] for f in
                               ("states", "actions", "rewards", "next_states", "terminated", "truncated", "mask")))
        psi = _psi(mdp, sub, "rtg", "mean")
        batches.append(mdp.episode_gradients(theta, sub, psi).mean(0))
    result = bias_test(np.array(batches), true_grad, ALPHA)
    assert result.passed, result


def test_gae_with_exact_values_is_unbiased_for_any_lambda():
    # With V = V^pi exactly, E[delta_t | s_t, a_t] = A(s_t, a_t), so every lambda is unbiased.
    mdp = exact.chain(5)
    theta = _theta(mdp)
    ep = mdp.sample(theta, 40_000, np.random.default_rng(11))
    v = mdp.values(theta)
    for lam in (0.0, 0.5):
        g = mdp.episode_gradients(theta, ep, _psi(mdp, ep, "gae", "value", v, lam=lam))
        assert bias_test(g, mdp.gradient(theta), ALPHA).passed, lam


def test_variance_order_reinforce_rtg_baseline(setting):
    mdp, theta, ep, _ = setting
    g_reinforce = mdp.episode_gradients(theta, ep, _psi(mdp, ep, "reinforce", "none"))
    g_rtg = mdp.episode_gradients(theta, ep, _psi(mdp, ep, "rtg", "none"))
    g_base = mdp.episode_gradients(theta, ep, _psi(mdp, ep, "rtg", "value", mdp.values(theta)))
    first = variance_test(g_reinforce, g_rtg, ALPHA)
    second = variance_test(g_rtg, g_base, ALPHA)
    assert first.a_larger, first
    assert second.a_larger, second


# --- the check has power: biased estimators are caught ------------------------------------------------

def test_action_dependent_baseline_is_detected_as_biased():
    mdp = exact.chain(5)
    theta = _theta(mdp)
    ep = mdp.sample(theta, 40_000, np.random.default_rng(3))
    g_rtg = est.reward_to_go(ep.rewards, ep.terminated, ep.truncated, None, 1.0)
    # b(s, a): a baseline that looks at the action taken is no longer zero-mean under pi.
    b = mdp.values(theta)[ep.states] + 3.0 * (ep.actions == 1)
    g = mdp.episode_gradients(theta, ep, g_rtg - b)
    assert not bias_test(g, mdp.gradient(theta), ALPHA).passed


def test_reward_to_go_summing_the_past_is_detected_as_biased():
    # Psi_t = sum_{t' <= t} r_t' (the past instead of the future): the past rewards average out against
    # grad log pi(a_t|s_t), so what is left is the immediate reward alone, not the gradient of J.
    # (A reward-to-go that summed the whole episode would be REINFORCE: unbiased, but the variance-order
    # test above would fail, since its variance would equal REINFORCE's.)
    mdp = exact.chain(5)
    theta = _theta(mdp)
    ep = mdp.sample(theta, 40_000, np.random.default_rng(4))
    past = np.cumsum(np.where(ep.mask, ep.rewards, 0.0), axis=0)
    g = mdp.episode_gradients(theta, ep, past)
    assert not bias_test(g, mdp.gradient(theta), ALPHA).passed


def test_gae_with_wrong_values_and_small_lambda_is_detected_as_biased():
    mdp = exact.chain(5)
    theta = _theta(mdp)
    ep = mdp.sample(theta, 40_000, np.random.default_rng(5))
    wrong = mdp.values(theta) + np.linspace(0, 8, mdp.num_states) * ~mdp.terminal
    g = mdp.episode_gradients(theta, ep, _psi(mdp, ep, "gae", "value", wrong, lam=0.0))
    assert not bias_test(g, mdp.gradient(theta), ALPHA).passed


def test_exact_gradient_matches_finite_differences():
    mdp = exact.random_mdp(5, horizon=6)
    theta = _theta(mdp)
    g = mdp.gradient(theta)
    import torch

    eps = 1e-6
    for idx in [(0, 0), (2, 1), (4, 2)]:
        tp, tm = theta.copy(), theta.copy()
        tp[idx] += eps
        tm[idx] -= eps
        fd = (mdp.objective(torch.tensor(tp)).item() - mdp.objective(torch.tensor(tm)).item()) / (2 * eps)
        assert g[idx] == pytest.approx(fd, rel=1e-5, abs=1e-8)


def test_monte_carlo_return_matches_exact_objective():
    mdp = exact.chain(5, horizon=8)
    theta = _theta(mdp)
    ep = mdp.sample(theta, 40_000, np.random.default_rng(9))
    returns = np.where(ep.mask, ep.rewards, 0).sum(0)
    import torch

    J = mdp.objective(torch.tensor(theta)).item()
    se = returns.std() / np.sqrt(len(returns))
    assert abs(returns.mean() - J) < 4 * se
