"""The trust-region update rules against exact quantities (``robopg.exact``), each check shown to fail on a
deliberately broken variant of what it guards; then bad input, non-finite stops, and the rules in the runner.

The tabular problems' softmax policy pi(a|s) = softmax(theta[s]) is robopg's own ``CategoricalPolicy`` with
no hidden layer on one-hot observations: logits(s) = W[:, s] + b, so theta[s, a] = W[a, s] + b[a] (the map
``_jacobian``). The LQR's linear Gaussian policy is a ``GaussianPolicy`` with no hidden layer: mean = W x + b.
Everything runs in float64, so "equal" means to ~1e-10.
"""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from robopg import estimators as est
from robopg import exact, losses
from robopg.algorithms.natural import NaturalGradient, conjugate_gradient, fisher_product, flat_grad
from robopg.algorithms.weights import Weights
from robopg.config import Config
from robopg.policies import CategoricalPolicy, GaussianPolicy
from robopg.stats import bias_test

# --- the exact problems as robopg policies ---------------------------------------------------------------


def _tabular_policy(mdp, theta):
    policy = CategoricalPolicy(mdp.num_states, gym.spaces.Discrete(mdp.num_actions), [], "tanh",
                               normalize_observations=False).double()
    with torch.no_grad():
        policy.logits_net[0].weight.copy_(torch.as_tensor(theta.T))
        policy.logits_net[0].bias.zero_()
    return policy


def _theta_of(policy):
    layer = policy.logits_net[0]
    return (layer.weight.detach().T + layer.bias.detach()).numpy()


def _jacobian(mdp):
    """[S*A, P]: d theta / d (W, b), P in ``policy.parameters()`` order (W [A, S] row by row, then b [A])."""
    S, A = mdp.num_states, mdp.num_actions
    J = np.zeros((S * A, A * S + A))
    for s in range(S):
        for a in range(A):
            J[s * A + a, a * S + s] = 1.0
            J[s * A + a, A * S + a] = 1.0
    return J


def _one_hot(states, num_states):
    return torch.nn.functional.one_hot(torch.as_tensor(states), num_states).double()


def _theta(mdp, seed=1):
    return np.random.default_rng(seed).normal(0, 0.5, size=(mdp.num_states, mdp.num_actions))


def _psi(mdp, ep, theta, estimator, baseline, lam=0.95):
    v = mdp.values(theta)
    needs_v = baseline == "value" or estimator == "gae"
    values = v[ep.states] if needs_v else None
    next_values = np.where(ep.truncated, 0.0, v[ep.next_states]) if needs_v else None
    psi, _ = est.weights(estimator, baseline, ep.rewards, ep.terminated, ep.truncated, ep.mask, mdp.gamma, lam,
                         values, next_values)
    return psi


def _batch(mdp, policy, ep, psi):
    obs = _one_hot(ep.states[ep.mask], mdp.num_states)
    actions = torch.as_tensor(ep.actions[ep.mask])
    return Weights(obs, actions, torch.as_tensor(psi[ep.mask], dtype=torch.float64), None, None)


# --- 1. PPO's clipped surrogate at ratio 1 is the policy gradient ------------------------------------------

ESTIMATORS = [("reinforce", "none"), ("reinforce", "mean"), ("rtg", "none"), ("rtg", "mean"), ("rtg", "value"),
              ("gae", "value")]


def _ppo_gradient(policy, w, sign=1.0):
    log_prob, _ = policy.log_prob_entropy(w.obs, w.actions)
    old = log_prob.detach()
    # sign=-1: the broken variant, a ratio written upside down, pi_old / pi.
    ratio_log = sign * (log_prob - old)
    loss, _ = losses.clipped_surrogate_loss(ratio_log + old, old, w.psi, 0.2)
    return flat_grad(loss, list(policy.parameters()))


@pytest.mark.parametrize("mdp", [exact.chain(5), exact.chain(5, horizon=8), exact.random_mdp(3)],
                         ids=lambda m: m.name)
@pytest.mark.parametrize("estimator,baseline", ESTIMATORS)
def test_clipped_surrogate_gradient_at_ratio_one_is_the_policy_gradient(mdp, estimator, baseline):
    theta = _theta(mdp)
    ep = mdp.sample(theta, 300, np.random.default_rng(2))
    psi = _psi(mdp, ep, theta, estimator, baseline)
    policy = _tabular_policy(mdp, theta)
    w = _batch(mdp, policy, ep, psi)
    log_prob, _ = policy.log_prob_entropy(w.obs, w.actions)
    pg = flat_grad(losses.policy_gradient_loss(log_prob, w.psi), list(policy.parameters()))
    # The same estimate from the exact problem's closed-form scores, mapped to (W, b): the loss is its negation.
    closed_form = -_jacobian(mdp).T @ mdp.episode_gradients(theta, ep, psi).sum(0) / w.obs.shape[0]
    np.testing.assert_allclose(pg.numpy(), closed_form, rtol=1e-10, atol=1e-12)
    ppo = _ppo_gradient(policy, w)
    np.testing.assert_allclose(ppo.numpy(), pg.numpy(), rtol=1e-12, atol=1e-14)
    broken = _ppo_gradient(policy, w, sign=-1.0)
    assert not np.allclose(broken.numpy(), pg.numpy(), rtol=1e-3, atol=1e-6)


# --- 2. Fisher-vector products against exact Fisher matrices ------------------------------------------------

@pytest.mark.parametrize("mdp", [exact.chain(5), exact.random_mdp(3), exact.gridworld(3)], ids=lambda m: m.name)
def test_fisher_vector_product_equals_exact_fisher_tabular(mdp):
    theta = _theta(mdp)
    policy = _tabular_policy(mdp, theta)
    d = mdp.visitation(theta)
    obs = _one_hot(np.arange(mdp.num_states), mdp.num_states)
    J = _jacobian(mdp)
    exact_F = J.T @ (mdp.fisher(theta) / d.sum()) @ J  # mean over the visited states, in (W, b)
    rng = np.random.default_rng(0)
    product = fisher_product(policy, obs, torch.as_tensor(d))
    wrong_states = fisher_product(policy, obs, torch.ones(mdp.num_states))  # uniform, not the visitation
    wrong_policy = fisher_product(_tabular_policy(mdp, np.zeros_like(theta)), obs, torch.as_tensor(d))
    for _ in range(5):
        v = rng.normal(size=J.shape[1])
        want = exact_F @ v
        np.testing.assert_allclose(product(torch.as_tensor(v)).numpy(), want, rtol=1e-10, atol=1e-12)
        for broken in (wrong_states, wrong_policy):
            assert np.abs(broken(torch.as_tensor(v)).numpy() - want).max() > 1e-3 * np.abs(want).max()


def test_fisher_vector_product_equals_exact_fisher_lqr():
    lqr = exact.lqr()
    K = np.array([[0.5, 0.6]])
    m, n = lqr.shape
    D, T = lqr.state_moment(K)
    policy = GaussianPolicy(n, gym.spaces.Box(-1e6, 1e6, (m,)), [], "tanh", math.log(lqr.sigma),
                            normalize_observations=False).double()
    with torch.no_grad():
        policy.mean_net[0].weight.copy_(torch.as_tensor(-K))
        policy.mean_net[0].bias.zero_()
        policy.log_std.fill_(math.log(lqr.sigma))  # in float64 (the constructor's is float32)

    def quadrature(moment):
        # F(x) is quadratic in x, so E_d[F(x)] needs only d's first two moments (0 and D / T): 2n points
        # +-sqrt(n) L e_i with L L' = D / T reproduce them exactly.
        L = np.linalg.cholesky(moment)
        pts = np.concatenate([np.sqrt(n) * L.T, -np.sqrt(n) * L.T])
        return torch.as_tensor(pts), torch.full((2 * n,), 1.0 / (2 * n), dtype=torch.float64)

    # The exact Fisher over (log_std, W, b) (``parameters()`` order: the policy's own, then its network's):
    # log_std's 2 I, K's block kron(I, D/T)/sigma^2 (exact.LQR.fisher), b's I/sigma^2, and no cross terms
    # (E[x] = 0; the score of the mean is odd in eps, that of log_std even).
    assert [k for k, _ in policy.named_parameters()] == ["log_std", "mean_net.0.weight", "mean_net.0.bias"]
    P = m + m * n + m
    F = np.zeros((P, P))
    F[:m, :m] = 2 * np.eye(m)
    F[m:m + m * n, m:m + m * n] = lqr.fisher(K) / T
    F[-m:, -m:] = np.eye(m) / lqr.sigma ** 2
    product = fisher_product(policy, *quadrature(D / T))
    broken = fisher_product(policy, *quadrature(lqr.X0))  # the start distribution, not the visitation
    rng = np.random.default_rng(0)
    for _ in range(5):
        v = rng.normal(size=P)
        np.testing.assert_allclose(product(torch.as_tensor(v)).numpy(), F @ v, rtol=1e-10, atol=1e-12)
        assert np.abs(broken(torch.as_tensor(v)).numpy() - F @ v).max() > 1e-2 * np.abs(F @ v).max()


# --- 3. NPG's sampled direction converges to the exact natural gradient like 1/sqrt(n) ----------------------

DAMPING = 0.1


def _npg_config(**kw):
    return Config(env_id="exact", algorithm=kw.pop("algorithm", "npg"), estimator="rtg", baseline="none",
                  batch_mode="episodes", normalize_advantages=False, cg_iters=kw.pop("cg_iters", 40),
                  cg_damping=DAMPING, **kw)


def _exact_natural_direction(mdp, theta):
    """x* = (F + d I)^-1 g in (W, b), with F and g per step: the limit of robopg's ratio estimator."""
    J = _jacobian(mdp)
    d = mdp.visitation(theta)
    T = d.sum()
    F = J.T @ mdp.fisher(theta) @ J / T
    g = J.T @ mdp.gradient(theta).reshape(-1) / T
    A = F + DAMPING * np.eye(len(g))
    return np.linalg.solve(A, g), A, T


def _influence_constant(mdp, theta, x_star, A, T, rng):
    """E||z||^2 for the delta method's per-episode influence z_i = A^-1 (G_i - Phi_i x* - T_i d x*) / T
    (G_i: episode i's gradient sum, Phi_i: its Fisher sum, T_i: its length): n E||x_n - x*||^2 -> E||z||^2."""
    ep = mdp.sample(theta, 40_000, rng)
    J = _jacobian(mdp)
    psi = _psi(mdp, ep, theta, "rtg", "value")
    G = mdp.episode_gradients(theta, ep, psi) @ J
    pi = exact._softmax(theta)
    xt = (J @ x_star).reshape(mdp.num_states, mdp.num_actions)
    F_x = pi * xt - pi * (pi * xt).sum(-1, keepdims=True)  # (diag pi_s - pi_s pi_s') x_s, per state
    counts = np.stack([np.bincount(col[m], minlength=mdp.num_states) for col, m in zip(ep.states.T, ep.mask.T)])
    Phi_x = (counts[:, :, None] * F_x[None]).reshape(len(counts), -1) @ J
    lengths = ep.mask.sum(0)
    z = np.linalg.solve(A, (G - Phi_x - DAMPING * lengths[:, None] * x_star[None]).T / T).T
    return float((z ** 2).sum(1).mean())


def _npg_directions(mdp, theta, episodes, replicates, rng, wrong_fisher=False):
    algorithm = NaturalGradient(_npg_config(), _tabular_policy(mdp, theta), 1)
    out = []
    for _ in range(replicates):
        ep = mdp.sample(theta, episodes, rng)
        w = _batch(mdp, algorithm.policy, ep, _psi(mdp, ep, theta, "rtg", "value"))
        log_prob, _ = algorithm.policy.log_prob_entropy(w.obs, w.actions)
        objective = losses.surrogate(log_prob, log_prob.detach(), w.psi)
        if not wrong_fisher:
            out.append(algorithm.direction(objective, w.obs)[1].numpy())
            continue
        # Broken: the Fisher averaged uniformly over the visited states, not over the visitation.
        states = ep.states[ep.mask]
        weights = torch.as_tensor(1.0 / np.bincount(states)[states])
        fvp = fisher_product(algorithm.policy, w.obs, weights)
        g = flat_grad(objective, list(algorithm.policy.parameters()))
        out.append(conjugate_gradient(lambda v, fvp=fvp: fvp(v) + DAMPING * v, g, 40).numpy())
    return np.array(out)


SIZES = (50, 200, 800, 3200)  # episodes per batch


@pytest.fixture(scope="module")
def npg_setting():
    mdp = exact.chain(5)
    theta = _theta(mdp)
    x_star, A, T = _exact_natural_direction(mdp, theta)
    C = _influence_constant(mdp, theta, x_star, A, T, np.random.default_rng(3))
    return mdp, theta, x_star, C


def test_npg_direction_converges_to_the_exact_natural_gradient(npg_setting):
    mdp, theta, x_star, C = npg_setting
    rng = np.random.default_rng(4)
    report = []
    for n in SIZES:
        X = _npg_directions(mdp, theta, n, 100, rng)
        mse = float(((X - x_star) ** 2).sum(1).mean())
        bias = float(np.linalg.norm(X.mean(0) - x_star))
        report.append((n, mse * n / C, bias, math.sqrt(C / n)))
    print(f"\n episodes  n*MSE/C  ||bias||  sqrt(C/n)  (C = {C:.4g}, ||x*|| = {np.linalg.norm(x_star):.4g})")
    for n, ratio, bias, scale in report:
        print(f" {n:8d}  {ratio:7.3f}  {bias:8.4f}  {scale:9.4f}")
    # The delta method's 1/n law, with C computed from the exact F, g and x* (not fit to these samples): the
    # mean squared error times n stays at C. At 50 episodes the ratio estimator's higher-order terms add more.
    assert 0.5 < report[0][1] < 2.5, report[0]
    for n, ratio, _, _ in report[1:]:
        assert 0.7 < ratio < 1.4, (n, ratio)
    # The bias of a ratio estimator is O(1/n): at every size it is a fraction of the noise, and shrinks.
    assert all(bias < 0.5 * scale for _, _, bias, scale in report), report
    assert report[-1][2] < report[0][2]


def test_npg_with_a_fisher_from_the_wrong_distribution_is_caught(npg_setting):
    mdp, theta, x_star, C = npg_setting
    X = _npg_directions(mdp, theta, SIZES[-1], 30, np.random.default_rng(5), wrong_fisher=True)
    ratio = float(((X - x_star) ** 2).sum(1).mean()) * SIZES[-1] / C
    print(f"\nFisher uniform over visited states, {SIZES[-1]} episodes: n*MSE/C = {ratio:.2f}")
    assert ratio > 1.4, ratio  # it converges, to something else: n * MSE grows with n


def test_npg_direction_is_unbiased_at_large_batches(npg_setting):
    mdp, theta, x_star, _ = npg_setting
    X = _npg_directions(mdp, theta, SIZES[-1], 60, np.random.default_rng(6))
    assert bias_test(X, x_star, 1e-3).passed


# --- 4. TRPO's accepted step never exceeds the KL bound ------------------------------------------------------

def _trpo_steps(mdp, max_kl, damping, seeds, episodes=200, broken=False):
    """For each seed, one TRPO step from a policy that favours one action (so the natural step raises rarely
    taken actions, where the KL grows faster than its quadratic model; the second action: the chain's
    "right", which keeps its episodes short): (exact KL over the batch's states, exact KL over the
    visitation, backtracks, the KL robopg logged)."""
    out = []
    for seed in seeds:
        theta = _theta(mdp, seed)
        theta[:, 1] += 2.5
        config = _npg_config(algorithm="trpo", max_kl=max_kl, cg_iters=10)
        config.cg_damping = damping
        algorithm = NaturalGradient(config, _tabular_policy(mdp, theta), 1)
        if broken:
            algorithm.accept = lambda kl, improvement: True  # a line search that accepts everything
        ep = mdp.sample(theta, episodes, np.random.default_rng(seed))
        stats = algorithm.policy_step(_batch(mdp, algorithm.policy, ep, _psi(mdp, ep, theta, "rtg", "value")), 1)
        new = _theta_of(algorithm.policy)
        counts = np.bincount(ep.states[ep.mask], minlength=mdp.num_states)
        out.append((mdp.kl(theta, new, counts), mdp.kl(theta, new), stats["backtracks"], stats["approx_kl"]))
    return np.array(out)


RADII = (0.01, 0.1, 0.5, 2.0)
TRPO_PROBLEMS = [exact.chain(5), exact.random_mdp(3), exact.gridworld(3)]


@pytest.mark.parametrize("mdp", TRPO_PROBLEMS, ids=lambda m: m.name)
def test_trpo_accepted_step_never_exceeds_the_kl_bound(mdp):
    rows = []
    for damping in (0.0, 0.1):
        for max_kl in RADII:
            batch_kl, population_kl, backtracks, logged = _trpo_steps(mdp, max_kl, damping, range(5)).T
            # The constraint is on the batch's states; measured exactly (closed-form softmax KL), not by robopg.
            assert (batch_kl <= max_kl * (1 + 1e-9)).all(), (damping, max_kl, batch_kl.max())
            np.testing.assert_allclose(logged, batch_kl, rtol=1e-6, atol=1e-12)
            rows.append((damping, max_kl, batch_kl.max() / max_kl, population_kl.max() / max_kl, backtracks.mean()))
    print(f"\n{mdp.name}: damping, max_kl, worst batch KL / bound, worst visitation KL / bound, mean backtracks")
    for row in rows:
        print("  {:.1f}  {:.2f}  {:.3f}  {:.3f}  {:.1f}".format(*row))


def test_a_line_search_that_accepts_everything_is_caught():
    exceeded, total = 0, 0
    for mdp in TRPO_PROBLEMS:
        for damping in (0.0, 0.1):
            for max_kl in RADII:
                batch_kl = _trpo_steps(mdp, max_kl, damping, range(5), broken=True)[:, 0]
                exceeded += int((batch_kl > max_kl * (1 + 1e-9)).sum())
                total += len(batch_kl)
    print(f"\naccepting every full step: {exceeded} of {total} steps exceed the KL bound")
    assert exceeded > 0


# --- the rules in the runner --------------------------------------------------------------------------------

def _updated(config, rollout, seed=0):
    """A fresh algorithm from ``config`` (its value net seeded alike), after one update on ``rollout``."""
    from robopg.algorithms import make_algorithm
    from robopg.envs import make_vector_env
    from robopg.policies import make_policy

    torch.manual_seed(seed)
    venv = make_vector_env(config.env_id, 1)
    policy = make_policy(config, venv.single_observation_space, venv.single_action_space)
    venv.close()
    algorithm = make_algorithm(config, policy, config.num_envs)
    algorithm.update(rollout, 1, 0.0)
    return algorithm


def _one_update(config, rollout, seed=0):
    """The policy after one update of a fresh algorithm (``_updated``)."""
    return _updated(config, rollout, seed).policy


def _sampled_batch(config):
    """One batch sampled by a fresh policy of ``config`` (torch seed 0), and that policy's spaces' env."""
    from robopg.envs import make_vector_env
    from robopg.policies import make_policy
    from robopg.sampler import Sampler

    torch.manual_seed(0)
    venv = make_vector_env(config.env_id, config.num_envs)
    sampler = Sampler(venv, make_policy(config, venv.single_observation_space, venv.single_action_space),
                      config.batch_size, config.resolved_batch_mode(), config.seed)
    rollout = sampler.collect()
    sampler.close()
    return rollout, venv


@pytest.mark.parametrize("env_id", ["CartPole-v1", "InvertedPendulum-v5"])  # autograd; Gaussian: by hand
@pytest.mark.parametrize("kw", [dict(estimator="gae", baseline="value", normalize_rewards=True),
                                dict(estimator="rtg", baseline="mean", entropy_coef=0.01),
                                dict(estimator="reinforce", baseline="none")])
def test_one_epoch_of_one_full_minibatch_is_pgs_gradient(kw, env_id):
    # Through the whole update (compute_weights, the loss, the entropy bonus): PPO's first gradient is pg's.
    from .conftest import tiny

    pg = tiny(env_id, algorithm="pg", **kw)
    rollout, _ = _sampled_batch(pg)
    ppo = tiny(env_id, algorithm="ppo", epochs=1, minibatch_size=pg.batch_size, **kw)
    a, b = _one_update(pg, rollout), _one_update(ppo, rollout)
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        # float32, the rows summed in another order (PPO's minibatch is a permutation of the batch)
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-6, msg=name)


# --- PPO's hand-written minibatch gradient against autograd --------------------------------------------------

def test_clipped_surrogate_slope_is_autograds():
    rng = np.random.default_rng(0)
    n = 400
    old = torch.tensor(rng.normal(size=n), dtype=torch.float64)
    # log-ratios from well inside to well outside the clip range, a quarter exactly 0 (ratio 1: the ties)
    log_ratio = torch.tensor(rng.normal(scale=0.4, size=n), dtype=torch.float64)
    log_ratio[: n // 4] = 0.0
    psi = torch.tensor(rng.normal(size=n), dtype=torch.float64)
    log_prob = (old + log_ratio).requires_grad_()
    loss, ratio = losses.clipped_surrogate_loss(log_prob, old, psi, 0.2)
    (reference,) = torch.autograd.grad(loss, log_prob)
    slope, loss2, ratio2 = losses.clipped_surrogate_slope(log_prob.detach(), old, psi, 0.2)
    clipped = ((ratio.detach() - 1).abs() > 0.2)
    assert 0.1 < float(clipped.double().mean()) < 0.6 and (reference[clipped] == 0).any()  # both cases occur
    torch.testing.assert_close(slope, reference, rtol=1e-13, atol=0)
    torch.testing.assert_close(loss2, loss.detach(), rtol=0, atol=0)
    torch.testing.assert_close(ratio2, ratio.detach(), rtol=0, atol=0)


@pytest.mark.parametrize("activation", ["tanh", "relu", "elu"])
def test_gaussian_log_prob_grad_is_autograds(activation):
    torch.manual_seed(0)
    space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    policy = GaussianPolicy(5, space, [16, 16], activation, init_log_std=-0.3).double()
    with torch.no_grad():
        policy.log_std.copy_(torch.tensor([-0.5, 0.0, 0.4]))
    obs, actions = torch.randn(64, 5, dtype=torch.float64), torch.randn(64, 3, dtype=torch.float64)
    weights = torch.randn(64, dtype=torch.float64)  # L(log_prob) = sum(weights * log_prob): slope = weights
    log_prob, entropy = policy.log_prob_entropy(obs, actions)
    params = list(policy.parameters())
    reference = torch.autograd.grad((weights * log_prob).sum() - 0.05 * entropy.mean(), params)
    seen = []
    lp = policy.log_prob_grad(policy.normalizer.forward(obs), actions, lambda x: seen.append(x) or weights, 0.05)
    torch.testing.assert_close(lp, log_prob.detach(), rtol=1e-14, atol=0)
    torch.testing.assert_close(seen[0], log_prob.detach(), rtol=1e-14, atol=0)
    for p, g in zip(params, reference):
        torch.testing.assert_close(p.grad, g, rtol=1e-10, atol=1e-13)


def test_kl_driven_rate_moves_by_its_factor_and_stops_at_its_bounds():
    from types import SimpleNamespace

    from robopg.algorithms.ppo import LR_FACTOR, LR_MAX, LR_MIN, PPO

    def adapted(lr, kl, desired=0.01):
        ppo = SimpleNamespace(optimizer=SimpleNamespace(param_groups=[{"lr": lr}]), desired_kl=desired)
        PPO._adapt_lr(ppo, kl)
        return ppo.optimizer.param_groups[0]["lr"]

    assert adapted(3e-4, 0.05) == pytest.approx(3e-4 / LR_FACTOR)   # KL above twice the target: slower
    assert adapted(3e-4, 0.001) == pytest.approx(3e-4 * LR_FACTOR)  # below half of it: faster
    assert adapted(3e-4, 0.01) == 3e-4 and adapted(3e-4, 0.0) == 3e-4
    assert adapted(1.2e-5, 1.0) == LR_MIN and adapted(LR_MAX / 1.2, 0.001) == LR_MAX
    # A rate given outside the bounds is never moved the wrong way by them.
    assert adapted(5e-6, 1.0) == 5e-6 and adapted(5e-6, 0.001) == pytest.approx(5e-6 * LR_FACTOR)
    assert adapted(5e-2, 0.001) == 5e-2 and adapted(5e-2, 1.0) == pytest.approx(5e-2 / LR_FACTOR)


def test_ppo_update_by_hand_equals_the_autograd_update(monkeypatch):
    # A whole PPO update (4 epochs x 8 minibatches, gradient clipping, entropy bonus) on a Gaussian policy:
    # the hand-written gradients and autograd's differ only in float32 rounding.
    from robopg.algorithms.ppo import PPO
    from robopg.policies import make_policy

    from .conftest import tiny

    config = tiny("InvertedPendulum-v5", algorithm="ppo", epochs=4, minibatch_size=64, entropy_coef=0.01,
                  max_grad_norm=0.5, batch_size=512)
    rollout, venv = _sampled_batch(config)
    monkeypatch.setattr(PPO, "hand_backward", False)
    reference = _one_update(config, rollout)
    monkeypatch.setattr(PPO, "hand_backward", True)
    by_hand = _one_update(config, rollout)
    torch.manual_seed(0)  # the policy both updates started from (as _one_update makes it)
    start = make_policy(config, venv.single_observation_space, venv.single_action_space)
    moved = max(float((p - s).detach().abs().max()) for p, s in zip(reference.parameters(), start.parameters()))
    assert moved > 1e-3  # the update really moved the policy, far beyond the tolerance below
    for (name, p), q in zip(reference.named_parameters(), by_hand.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-6, msg=name)


def test_ppo_minibatches_are_the_rows_of_tensor_split():
    # PPO gathers each epoch's permutation once and steps on slices of it: the slices must hold the rows that
    # perm.tensor_split(k) gives, minibatch for minibatch (uneven splits included).
    from robopg.algorithms.ppo import _sections

    for n in (1, 7, 64, 2048, 2050):
        for k in {1, 2, 3, max(1, n // 64), n}:
            perm = torch.randperm(n)
            assert [perm[s].tolist() for s in _sections(n, k)] == [c.tolist() for c in perm.tensor_split(k)]


# --- --recompute-advantages ---------------------------------------------------------------------------------

def _state(algorithm):
    return [p.detach().clone() for m in algorithm.modules() for p in m.parameters()]


def _scaler_state(algorithm) -> bytes:
    import pickle

    return pickle.dumps(algorithm.critic.reward_scaler.state_dict())


def test_recompute_advantages_with_one_epoch_is_plain_ppo_with_one_value_pass():
    # One epoch: the policy pass, then one value pass, nothing recomputed: exactly PPO with --value-epochs 1.
    from .conftest import tiny

    kw = dict(algorithm="ppo", epochs=1, minibatch_size=64, batch_size=512, normalize_rewards=True)
    plain = tiny("InvertedPendulum-v5", value_epochs=1, **kw)
    rollout, _ = _sampled_batch(plain)
    a = _updated(plain, rollout)
    b = _updated(tiny("InvertedPendulum-v5", value_epochs=5, recompute_advantages=True, **kw), rollout)
    for p, q in zip(_state(a), _state(b)):
        assert torch.equal(p, q)
    assert _scaler_state(a) == _scaler_state(b)


def test_recompute_advantages_weighs_each_epoch_with_the_refitted_value(monkeypatch):
    # Each epoch's Psi is GAE with V after the passes before it (and the rewards scaled once, as the first
    # epoch's): checked against estimators.weights called on V's values at that moment.
    from robopg.algorithms.critic import Critic

    from .conftest import tiny

    config = tiny("InvertedPendulum-v5", algorithm="ppo", epochs=3, minibatch_size=64, batch_size=512,
                  value_minibatches=8, normalize_rewards=True, normalize_advantages=False,
                  recompute_advantages=True)
    rollout, _ = _sampled_batch(config)
    seen, fits = [], []
    reweigh, fit = Critic.reweigh, Critic.fit

    def spy_reweigh(self, ro, w):
        with torch.no_grad():
            values = self.value(torch.as_tensor(ro.obs)).double().numpy()
            next_values = self.value(torch.as_tensor(ro.next_obs)).double().numpy()
        expected, _ = est.weights("gae", "value", w.rewards, ro.terminated, ro.truncated, ro.mask, config.gamma,
                                  config.lam, values, next_values)
        new = reweigh(self, ro, w)
        seen.append((new.psi, torch.as_tensor(expected[ro.mask], dtype=torch.float32), w.psi))
        return new

    def spy_fit(self, w, iteration, clip=None, epochs=None):
        fits.append(epochs)
        return fit(self, w, iteration, clip, epochs)

    monkeypatch.setattr(Critic, "reweigh", spy_reweigh)
    monkeypatch.setattr(Critic, "fit", spy_fit)
    algorithm = _updated(config, rollout)
    assert fits == [1, 1, 1] and len(seen) == 2  # a value pass after every epoch, Psi anew before the 2nd and 3rd
    for new, expected, before in seen:
        assert torch.equal(new, expected)
        assert float((new - before).abs().max()) > 1e-3  # V really moved between epochs
    # The scaler learned from the batch once: as a plain update leaves it.
    plain = tiny("InvertedPendulum-v5", algorithm="ppo", epochs=3, minibatch_size=64, batch_size=512,
                 value_minibatches=8, normalize_rewards=True, normalize_advantages=False)
    assert _scaler_state(_updated(plain, rollout)) == _scaler_state(algorithm)


def test_recompute_advantages_needs_a_value_function():
    from robopg.config import ConfigError

    from .conftest import tiny

    with pytest.raises(ConfigError, match="recompute_advantages|recompute-advantages"):
        tiny("CartPole-v1", algorithm="ppo", estimator="rtg", baseline="mean", recompute_advantages=True).validate()


HUGE_REWARD = "robopg-test/HugeReward-v0"
# Rewards of 1e308 from the 150th step: finite, but returns summed over them are not.
gym.register(HUGE_REWARD, entry_point="tests.test_training:NaNRewardEnv", max_episode_steps=20,
             kwargs={"bad_reward": 1e308})


@pytest.mark.parametrize("algorithm,quantity", [("ppo", "clipped surrogate"), ("trpo", "surrogate gradient"),
                                                ("npg", "surrogate gradient")])
def test_non_finite_stops_naming_iteration_and_quantity(tmp_path, algorithm, quantity):
    import robopg
    from robopg.errors import NonFiniteError
    from robopg.metrics import read_csv

    from .conftest import tiny
    # Rewards finite but so large that their discounted sums overflow from iteration 5 on: the env is not at
    # fault (a NaN reward is reported as the env's), the update's arithmetic is.
    config = tiny(HUGE_REWARD, num_envs=2, batch_size=64, steps=10_000, checkpoint_every=1,
                  normalize_observations=False, algorithm=algorithm)
    with pytest.raises(NonFiniteError, match=f"non-finite {quantity} at iteration 5"):
        robopg.train(config, tmp_path / "r")
    data = robopg.checkpoint.load(tmp_path / "r" / "checkpoints" / "latest.pt")
    assert data["iteration"] == 4 and len(read_csv(tmp_path / "r" / "metrics.csv")) == 4
    assert all(np.isfinite(v.numpy()).all() for v in data["policy"].values() if hasattr(v, "numpy"))


@pytest.mark.parametrize("args,option", [
    (["--clip-range", "0.2"], "--clip-range"),                                   # a PPO option with pg
    (["--algorithm", "ppo", "--max-kl", "0.01"], "--max-kl"),                    # a TRPO option with PPO
    (["--algorithm", "npg", "--backtracks", "5"], "--backtracks"),               # TRPO's, with NPG
    (["--algorithm", "ppo", "--epochs", "0"], "--epochs"),
    (["--algorithm", "ppo", "--minibatch-size", "-4"], "--minibatch-size"),
    (["--algorithm", "ppo", "--minibatch-size", "5000", "--batch-size", "4096"], "--minibatch-size"),
    (["--algorithm", "trpo", "--max-kl", "0"], "--max-kl"),
    (["--algorithm", "trpo", "--max-kl", "-0.01"], "--max-kl"),
    (["--algorithm", "trpo", "--max-grad-norm", "0.5"], "--max-grad-norm"),
    (["--algorithm", "npg", "--lr-schedule", "linear"], "--lr-schedule"),
    (["--algorithm", "ppo", "--desired-kl", "0.01", "--lr-schedule", "linear"], "--desired-kl"),
    (["--recompute-advantages"], "--recompute-advantages"),                       # a PPO option with pg
    (["--algorithm", "ppo", "--estimator", "rtg", "--baseline", "optimal"], "--baseline"),
    (["--algorithm", "sac"], "--algorithm"),
])
def test_bad_algorithm_options_exit_2_naming_the_option(cli, tmp_path, args, option):
    out = cli("train", "CartPole-v1", *args, "--run-dir", tmp_path / "r")
    assert out.returncode == 2, out.stderr
    assert option in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "r").exists()


def test_each_algorithm_starts_from_its_preset():
    from robopg.presets import ALGORITHM_PRESETS, PRESETS, make_config

    pg = make_config("Hopper-v5", algorithm="pg")
    assert {k: getattr(pg, k) for k in PRESETS["Hopper-v5"]} == PRESETS["Hopper-v5"]
    ppo = make_config("Hopper-v5", algorithm="ppo")
    assert ppo.algorithm == "ppo" and ppo.minibatch_size is not None and ppo.clip_range is not None
    trpo = make_config("Hopper-v5", algorithm="trpo", max_kl=0.02).validate()
    assert trpo.lr_schedule == "constant" and trpo.option("max_kl") == 0.02 and trpo.option("cg_iters") == 10
    for algorithm in ("pg", "npg", "trpo", "ppo"):
        for env_id in (*PRESETS, *(env for presets in ALGORITHM_PRESETS.values() for env in presets)):
            make_config(env_id, algorithm=algorithm).validate()
    swimmer = make_config("Swimmer-v5", algorithm="trpo").validate()  # rl-zoo3's TRPO values, not the general defaults
    assert (swimmer.option("cg_iters"), swimmer.option("max_kl"), swimmer.gamma, swimmer.num_envs) == (25, 0.01,
                                                                                                      0.9999, 2)
    assert make_config("Swimmer-v5", algorithm="npg").option("cg_iters") == 10  # a rule's preset is its own
    # Humanoid's PPO: rl-zoo3's values over 8 envs x 64 steps, at gamma 0.99 and lambda 0.95 (SB3's, not rl-zoo3's
    # 0.95 / 0.9), the rate adapted to the KL, 20 epochs: the values the seven measured seeds' config.yaml hold.
    humanoid = make_config("Humanoid-v5", algorithm="ppo").validate()
    assert (humanoid.num_envs, humanoid.batch_size, humanoid.gamma, humanoid.lam, humanoid.desired_kl,
            humanoid.init_log_std, humanoid.epochs) == (8, 512, 0.99, 0.95, 0.01, -2.0, 20)


def test_a_schedule_given_replaces_the_presets_kl_driven_learning_rate(cli, tmp_path):
    from robopg.presets import make_config

    ant = make_config("Ant-v5", algorithm="ppo")
    assert ant.desired_kl == 0.01 and ant.lr_schedule == "constant"  # Ant's PPO preset adapts lr to the KL
    linear = make_config("Ant-v5", algorithm="ppo", lr_schedule="linear").validate()
    assert linear.desired_kl is None and linear.lr_schedule == "linear"
    both = make_config("Ant-v5", algorithm="ppo", lr_schedule="linear", desired_kl=0.02)  # both given: refused
    out = cli("train", "Ant-v5", "--algorithm", "ppo", "--lr-schedule", "linear", "--desired-kl", "0.02",
              "--run-dir", tmp_path / "r")
    assert both.desired_kl == 0.02 and out.returncode == 2 and "--desired-kl" in out.stderr, out.stderr


def test_a_batch_given_smaller_than_the_presets_minibatch_takes_the_default_minibatch(cli, tmp_path):
    from robopg.errors import ConfigError
    from robopg.presets import make_config

    assert make_config("HalfCheetah-v5").option("minibatch_size") == 512  # HalfCheetah's PPO preset
    assert make_config("HalfCheetah-v5", batch_size=4096).option("minibatch_size") == 512  # it fits: kept
    small = make_config("HalfCheetah-v5", batch_size=256).validate()
    assert small.option("minibatch_size") == 64  # PPO's default, not a refusal of a value never given
    with pytest.raises(ConfigError, match="--minibatch-size"):  # both given and inconsistent: refused
        make_config("HalfCheetah-v5", batch_size=256, minibatch_size=512).validate()
    with pytest.raises(ConfigError, match="--batch-size"):  # no preset minibatch to fall back from (the fuzz's case)
        make_config("CartPole-v1", batch_size=-1).validate()
    out = cli("train", "HalfCheetah-v5", "--batch-size", "256", "--minibatch-size", "512", "--run-dir", tmp_path / "r")
    assert out.returncode == 2 and "--minibatch-size" in out.stderr, out.stderr


def test_a_presets_env_kwargs_are_defaults_that_given_ones_add_to():
    from robopg.presets import make_config

    no_forces = {"include_cfrc_ext_in_observation": False}
    assert make_config("Ant-v5", algorithm="ppo").env_kwargs == no_forces  # Ant's PPO preset: 27 inputs
    assert make_config("Ant-v5", algorithm="pg").env_kwargs == {}          # (measured for PPO only)
    more = make_config("Ant-v5", algorithm="ppo", env_kwargs={"ctrl_cost_weight": 0.1}).env_kwargs
    assert more == {**no_forces, "ctrl_cost_weight": 0.1}
    back = make_config("Ant-v5", algorithm="ppo", env_kwargs={"include_cfrc_ext_in_observation": True}).env_kwargs
    assert back == {"include_cfrc_ext_in_observation": True}


def test_each_robot_defaults_to_its_measured_best_rule(cli, tmp_path):
    from robopg.presets import DEFAULT_ALGORITHM, make_config

    assert DEFAULT_ALGORITHM["HalfCheetah-v5"] == "ppo"
    for env_id, rule in DEFAULT_ALGORITHM.items():
        assert make_config(env_id).algorithm == rule
        assert make_config(env_id, algorithm="pg").algorithm == "pg"  # a rule given wins
    assert make_config("CartPole-v1").algorithm == "pg"  # robots without a measured better rule: pg
    out = cli("train", "HalfCheetah-v5", "--steps", "512", "--num-envs", "2", "--batch-size", "256",
              "--run-dir", tmp_path / "r", "--no-tensorboard")
    assert out.returncode == 0, out.stderr
    assert "algorithm: ppo" in (tmp_path / "r" / "config.yaml").read_text()


def test_sweep_over_algorithms_then_compare_and_report(cli, tmp_path):
    import json

    from robopg.experiments import sweep

    s = sweep.plan("CartPole-v1", ["gae"], [0], {"steps": 1024, "batch_size": 512, "num_envs": 4,
                                                 "tensorboard": False}, grid={"algorithm": ["pg", "ppo"]},
                   path=tmp_path / "sw")
    result = sweep.run(s, jobs=1, say=lambda msg: None)
    assert result.exit_code == 0 and len(result.outcomes) == 2
    out = cli("compare", tmp_path / "sw", "--json")
    assert out.returncode == 0, out.stderr
    labels = [a["label"] for a in json.loads(out.stdout)["arms"]]
    assert len(labels) == 2 and any("ppo" in label for label in labels), labels
    out = cli("report", tmp_path / "sw", "--no-video")
    assert out.returncode == 0 and (tmp_path / "sw" / "report.html").exists(), out.stderr


# --- the estimator lab measures the update rules ----------------------------------------------------------------

def test_variance_lab_measures_the_update_rules(tmp_path):
    from robopg.diagnostics import measure_algorithms, write_algorithm_outputs

    result = measure_algorithms("exact:chain", ["pg", "npg", "ppo"], "gae", batches=12, batch_size=1000,
                                clip_ranges=(0.2,), epochs=3)
    rows = {(r.algorithm, r.epochs): r for r in result.rows}
    assert set(rows) == {("pg", 1), ("npg", 1), ("ppo", 1), ("ppo", 2), ("ppo", 3)}
    # The natural step points closer to the natural gradient than the plain one, batch by batch on average.
    assert rows[("npg", 1)].cos_natural_mean > rows[("pg", 1)].cos_natural_mean
    assert all(0.5 < r.cos_gradient_mean <= 1.0 for r in result.rows)
    files = write_algorithm_outputs(result, tmp_path)
    assert all(f.exists() and f.stat().st_size > 0 for f in files)


@pytest.mark.parametrize("args,option", [(["exact:chain", "--algorithms", "pg,sac"], "--algorithms"),
                                         (["CartPole-v1", "--algorithms", "pg"], "--algorithms"),
                                         (["exact:chain", "--algorithms", "ppo", "--clip-ranges", "2"],
                                          "--clip-ranges"),
                                         (["exact:chain", "--algorithms", "ppo", "--ppo-epochs", "0"], "--ppo-epochs")])
def test_variance_lab_algorithm_bad_input(cli, tmp_path, args, option):
    out = cli("variance", *args, "--out", tmp_path / "o")
    assert out.returncode == 2 and option in out.stderr and "Traceback" not in out.stderr, out.stderr
