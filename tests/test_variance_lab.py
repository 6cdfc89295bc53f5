"""The estimator lab: every estimator matches the exact gradient, the variance order of the seed holds,
the optimal baseline is no worse than the mean, biased estimators are caught, and the command works."""

import csv
import json

import numpy as np
import pytest
import torch

import robopg
from robopg import estimators as est
from robopg import exact
from robopg.diagnostics import estimate, make_problem, measure, summarize
from robopg.gradients import optimal_baseline_gradient, per_step_scores
from robopg.stats import variance_test

from .conftest import tiny

ALPHA = 1e-3
SPECS = [("reinforce", "none"), ("rtg", "none"), ("rtg", "mean"), ("rtg", "value"), ("rtg", "optimal"),
         ("gae", "value")]


def _estimates(target, batches=1000, batch_size=200, seed=0):
    problem = make_problem(target, seed=seed)
    rng = np.random.default_rng(seed + 1)
    out = {s: [] for s in SPECS}
    for _ in range(batches):
        batch = problem.sample(batch_size, rng)
        for e, b in SPECS:
            out[(e, b)].append(estimate(batch, e, b, problem.gamma, 0.9))
    return problem, {k: np.array(v) for k, v in out.items()}


@pytest.fixture(scope="module", params=["exact:chain", "exact:gridworld-H20", "exact:lqr", "exact:lqr-H15"])
def lab(request):
    return _estimates(request.param)


def test_every_estimator_matches_the_exact_gradient(lab):
    # GAE is unbiased here too: the problems supply exact values (episodic), or zero-bootstrapped ones.
    problem, G = lab
    for spec, g in G.items():
        if spec == ("gae", "value") and getattr(getattr(problem, "lqr", None), "horizon", None):
            continue  # the time-limited LQR's baseline is not its exact value: GAE(lambda<1) is biased there
        if spec == ("gae", "value") and "-H" in problem.name and hasattr(problem, "mdp"):
            continue  # likewise for time-limited tabular problems (values depend on the time left)
        row = summarize(f"{spec}", 200, g, problem.true_gradient, alpha=ALPHA)
        assert not row.bias_detected, (problem.name, spec, row)


def test_variance_order_of_the_seed(lab):
    problem, G = lab
    reinforce, rtg, value = G[("reinforce", "none")], G[("rtg", "none")], G[("rtg", "value")]
    assert variance_test(reinforce, rtg, ALPHA).a_larger, problem.name
    assert variance_test(rtg, value, ALPHA).a_larger, problem.name


def test_optimal_baseline_is_no_worse_than_the_mean(lab):
    problem, G = lab
    cmp = variance_test(G[("rtg", "optimal")], G[("rtg", "mean")], ALPHA)
    assert not cmp.a_larger, (problem.name, cmp)


def test_optimal_baseline_strictly_lowers_variance(lab):
    problem, G = lab
    if "lqr" in problem.name:
        # There the per-parameter optimum is only ~1.3x below no baseline: too close to resolve at
        # alpha = 1e-3 with 1000 heavy-tailed batches (z ~ 2.6 measured). The <= mean test still applies.
        pytest.skip("effect too small to resolve on the LQR at this sample size")
    assert variance_test(G[("rtg", "none")], G[("rtg", "optimal")], ALPHA).a_larger, problem.name


def test_the_bias_check_has_power():
    # An action-dependent "baseline" b(s, a) = V(s) + 3*[a = 1] is no longer zero-mean under pi.
    problem = make_problem("exact:chain")
    mdp, theta = problem.mdp, problem.theta
    ep = mdp.sample(theta, 20_000, np.random.default_rng(2))
    rtg = est.reward_to_go(ep.rewards, ep.terminated, ep.truncated, None, 1.0)
    biased = rtg - (problem._v[ep.states] + 3.0 * (ep.actions == 1))
    g = mdp.episode_gradients(theta, ep, biased)
    assert summarize("biased", 1, g, problem.true_gradient, alpha=ALPHA).bias_detected
    fair = mdp.episode_gradients(theta, ep, rtg - problem._v[ep.states])
    assert not summarize("fair", 1, fair, problem.true_gradient, alpha=ALPHA).bias_detected


def test_optimal_baseline_gradient_by_hand():
    torch.manual_seed(0)
    scores = torch.randn(7, 3, dtype=torch.float64)
    psi = torch.randn(7, dtype=torch.float64)
    episode = torch.tensor([0, 0, 1, 1, 1, 2, 2])
    g = optimal_baseline_gradient(scores, psi, episode)
    expected = torch.zeros(3, dtype=torch.float64)
    for t in range(7):
        others = episode != episode[t]
        b = (scores[others] ** 2 * psi[others, None]).sum(0) / (scores[others] ** 2).sum(0)
        expected += scores[t] * (psi[t] - b)
    torch.testing.assert_close(g, expected)


def test_per_step_scores_match_autograd():
    import gymnasium as gym

    from robopg.policies import make_policy

    env = gym.make("Hopper-v5")
    policy = make_policy(robopg.make_config("Hopper-v5"), env.observation_space, env.action_space)
    obs, act = torch.randn(5, 11), torch.randn(5, 3)
    scores = per_step_scores(policy, obs, act)
    for t in (0, 4):
        lp, _ = policy.log_prob_entropy(obs[t:t + 1], act[t:t + 1])
        g = torch.autograd.grad(lp.sum(), list(policy.parameters()))
        torch.testing.assert_close(scores[t], torch.cat([x.reshape(-1) for x in g]))


def test_lqr_objective_matches_scipy_lyapunov_and_monte_carlo():
    from scipy.linalg import solve_discrete_lyapunov

    lqr = exact.lqr()
    K = np.array([[1.0, 1.5]])
    c = 1 - lqr.p_end
    M = lqr.A - lqr.B @ K
    P = solve_discrete_lyapunov(np.sqrt(c) * M.T, lqr.Q + K.T @ lqr.R @ K)
    noise = lqr.sigma ** 2 * lqr.B @ lqr.B.T + lqr.W
    J = -(np.trace(P @ lqr.X0) + c / (1 - c) * np.trace(P @ noise) + lqr.sigma ** 2 * np.trace(lqr.R) / (1 - c))
    assert lqr.objective(torch.tensor(K)).item() == pytest.approx(J, rel=1e-10)
    b = lqr.sample(K, 50_000, np.random.default_rng(0))
    returns = np.where(b["mask"], b["rewards"], 0).sum(0)
    assert abs(returns.mean() - J) < 4 * returns.std() / np.sqrt(len(returns))


def test_training_with_the_optimal_baseline_and_grad_stats(tmp_path):
    run = robopg.train(tiny(estimator="rtg", baseline="optimal", log_grad_stats=2), tmp_path / "r")
    rows = robopg.metrics.read_csv(run.metrics_path)
    assert all(np.isfinite(r["grad_var"]) and r["grad_var"] > 0 for r in rows if r["iteration"] % 2 == 0)
    assert all(np.isnan(r["grad_var"]) for r in rows if r["iteration"] % 2 == 1)


def test_variance_command_end_to_end(cli, tmp_path):
    out = cli("variance", "exact:chain", "--estimators", "reinforce,rtg,rtg+value,rtg+optimal", "--batches", "30",
              "--batch-size", "200", "--batch-sizes", "50,100", "--out", tmp_path / "v")
    assert out.returncode == 0, out.stderr
    assert "reinforce" in out.stdout and "true gradient: exact" in out.stdout
    for f in ("summary.csv", "layers.csv", "result.json", "batch_size.png"):
        assert (tmp_path / "v" / f).exists()
    rows = list(csv.DictReader(open(tmp_path / "v" / "summary.csv")))
    assert len(rows) == 4 * 3
    data = json.loads((tmp_path / "v" / "result.json").read_text())
    assert {r["estimator"] for r in data["rows"]} == {"reinforce", "rtg", "rtg+value", "rtg+optimal"}
    big = [r for r in rows if r["batch_size"] == "200"]
    assert all(int(r["num_estimates"]) == 30 for r in big)


def test_variance_on_a_robot_policy_and_a_checkpoint(tmp_path):
    result = measure("CartPole-v1", ["reinforce", "rtg+value", "rtg+optimal"], batches=4, batch_size=300,
                     batch_sizes=[150], value_batches=2, reference_batches=4)
    assert result.truth.startswith("reference")
    assert {r.estimator for r in result.rows} == {"reinforce", "rtg+value", "rtg+optimal"}
    assert all(r.total_variance > 0 and r.layer_variance for r in result.rows if r.batch_size == 300)
    run = robopg.train(tiny(), tmp_path / "r")
    result = measure(str(run.run_dir / "checkpoints" / "latest.pt"), ["rtg"], batches=3, batch_size=300,
                     value_batches=0, reference_batches=3)
    assert "CartPole-v1" in result.target
    # A trained policy is measured reproducibly: its sampling is seeded by --seed, as an initial policy's is.
    torch.manual_seed(123)  # whatever state the process is in
    again = measure(str(run.run_dir), ["rtg"], batches=3, batch_size=300, value_batches=0, reference_batches=3)
    assert [r.total_variance for r in again.rows] == [r.total_variance for r in result.rows]


def test_variance_with_a_privileged_baseline_on_a_randomised_robot():
    # The same batches, the privileged critic fit with and without noise on its context inputs: the plain value
    # baseline's estimates do not move, the privileged one's do, and the note says which critic was measured.
    kw = dict(batches=3, batch_size=300, value_batches=1, reference_batches=3, randomize="mass=0.5:1.5")
    results = {noise: measure("Hopper-v5", ["rtg+value", "rtg+privileged"], context_noise=noise, **kw)
               for noise in (0.0, 0.3)}
    rows = {noise: {r.estimator: r for r in res.rows if r.batch_size == 300} for noise, res in results.items()}
    assert rows[0.0]["rtg+value"].total_variance == rows[0.3]["rtg+value"].total_variance
    assert rows[0.0]["rtg+privileged"].total_variance != rows[0.3]["rtg+privileged"].total_variance
    assert all(r.total_variance > 0 for by in rows.values() for r in by.values())
    assert "blurred by N(0, 0.3^2)" in results[0.3].value_baseline
    assert "blurred" not in results[0.0].value_baseline


def test_variance_bad_input(cli):
    assert cli("variance", "exact:nope").returncode == 2
    out = cli("variance", "exact:chain", "--estimators", "rtg+bogus")
    assert out.returncode == 2 and "bogus" in out.stderr
    out = cli("variance", "exact:chain", "--batches", "1")
    assert out.returncode == 2 and "--batches" in out.stderr
    out = cli("variance", "Hopper-v5", "--critic-context-noise", "-0.1")
    assert out.returncode == 2 and "--critic-context-noise" in out.stderr
