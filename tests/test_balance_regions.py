"""--balance-regions: the policy gradient's weights scaled per region of the --randomize ranges, so that each region
in a batch carries the same share of the gradient.

What it estimates, on an exact problem: with a hidden per-episode context c (two corridors of different episode
lengths, one drawn four times as often), the balanced estimate (1/n) sum_steps m_b(c) grad log pi Psi, with
m_b = n / (B n_b), is an average over the contexts of each one's gradient per step of its episodes,
(1/B) sum_c grad J_c / E[L_c] (a ratio of batch sums, whose O(1/K) bias is far under the test's bound here), where
the plain mean over steps estimates sum_c p_c grad J_c / E[L]. Both are checked against those exact quantities
within a Bonferroni bound from their standard errors; each fails against the other's, which shows the check has
power. --balance-power P between the two: region b's share of the gradient goes as n_b^(1 - P)."""

import numpy as np
import pytest

import robopg
from robopg import estimators as est
from robopg import exact
from robopg.config import Config, parse_balance
from robopg.randomization import regions
from robopg.stats import bias_test

from .conftest import tiny
from .test_training import _numbers, _same

ALPHA = 1e-3


def test_each_region_present_holds_the_same_share_and_the_mean_multiplier_is_one():
    rng = np.random.default_rng(0)
    psi = rng.normal(size=(6, 40))
    mask = rng.random((6, 40)) < 0.8
    region = np.broadcast_to(rng.choice([0, 2, 5], size=40, p=[0.7, 0.2, 0.1]), (6, 40))
    out = est.balance(psi, mask, region)
    multiplier = out[mask] / psi[mask]
    shares = [multiplier[region[mask] == b].sum() for b in (0, 2, 5)]
    np.testing.assert_allclose(shares, mask.sum() / 3)
    assert multiplier.mean() == pytest.approx(1.0)
    for b in (0, 2, 5):  # every step of a region weighs the same
        assert np.ptp(multiplier[region[mask] == b]) < 1e-12
    assert np.array_equal(out[~mask], psi[~mask])  # steps outside the batch are left as they are
    assert np.array_equal(est.balance(psi, mask, np.zeros_like(region)), psi)  # one region: nothing to balance
    counts = np.array([(region[mask] == b).sum() for b in (0, 2, 5)])
    half = est.balance(psi, mask, region, 0.5)[mask] / psi[mask]  # shares as the square roots of the counts
    shares = np.array([half[region[mask] == b].sum() for b in (0, 2, 5)])
    np.testing.assert_allclose(shares / shares.sum(), np.sqrt(counts) / np.sqrt(counts).sum())
    assert half.mean() == pytest.approx(1.0)
    assert np.array_equal(est.balance(psi, mask, region, 0.0), psi)


def test_regions_cut_each_range_in_its_draw_space_and_combine_parameters():
    config = Config(env_id="Hopper-v5", randomize="mass=0.4:1.8:log,friction=0.5:1.5",
                    balance_regions="mass=3,friction=2")
    factors = np.array([[0.4, 0.5], [0.65, 0.99], [0.67, 1.01], [1.0, 1.5], [1.1, 0.6], [1.8, 1.4],
                        [0.3, 1.0], [2.0, 2.0]])  # the last two: start robots outside the ranges
    # log space: the mass parts end at 0.4 * 4.5^(1/3) = 0.66 and 0.4 * 4.5^(2/3) = 1.09
    mass = [0, 0, 1, 1, 2, 2, 0, 2]
    friction = [0, 0, 1, 1, 0, 1, 1, 1]  # 1.0 opens the upper half
    got = regions(config, np.log(factors).astype(np.float32), config.balance_regions)
    assert got.tolist() == [2 * m + f for m, f in zip(mass, friction)]
    assert regions(Config(env_id="Hopper-v5", randomize="mass=0.5:1.5"), np.zeros((3, 1)), "") is None


@pytest.mark.parametrize("power", [1.0, 0.5])
def test_the_balanced_estimate_is_each_contexts_gradient_per_step_averaged_over_the_contexts(power):
    # the light corridor in four episodes of five: the batch's steps are mostly its
    mdp = exact.HiddenContextMDP(exact.hidden_context_chain(5).mdps, np.array([0.8, 0.2]))
    theta = np.random.default_rng(1).normal(0, 0.5, size=(6, 2))
    grads = np.array([m.gradient(theta).reshape(-1) for m in mdp.mdps])
    lengths = np.array([m.visitation(theta).sum() for m in mdp.mdps])  # each context's E[episode length]
    assert abs(lengths[0] - lengths[1]) > 1.0  # the corridors' episodes differ in length, or both targets agree
    # Region b's steps in a batch of K episodes: n_b ~ K p_b E[L_b]. The multipliers settle at
    # n n_b^-power / sum_k n_k^(1 - power), the estimate at
    # sum_b (p_b L_b)^-power p_b grad J_b / sum_k (p_k L_k)^(1 - power); with power 1, (1/B) sum_b grad J_b / L_b.
    steps = mdp.probs * lengths
    balanced_truth = (steps ** -power * mdp.probs) @ grads / (steps ** (1 - power)).sum()
    plain_truth = (mdp.probs @ grads) / (mdp.probs @ lengths)
    rng = np.random.default_rng(7)
    balanced, plain = [], []
    for _ in range(40):  # batches of K episodes
        ep, contexts = mdp.sample(theta, 2_000, rng)
        psi = est.reward_to_go(ep.rewards, ep.terminated, ep.truncated, None, mdp.gamma)
        region = np.broadcast_to(contexts, ep.mask.shape)
        n = ep.mask.sum()
        plain.append(mdp.episode_gradients(theta, ep, np.where(ep.mask, psi, 0.0)).sum(0).reshape(-1) / n)
        weighted = est.balance(np.where(ep.mask, psi, 0.0), ep.mask, region, power)
        balanced.append(mdp.episode_gradients(theta, ep, weighted).sum(0).reshape(-1) / n)
    balanced, plain = np.array(balanced), np.array(plain)
    assert bias_test(balanced, balanced_truth, ALPHA).passed
    assert bias_test(plain, plain_truth, ALPHA).passed
    assert not bias_test(balanced, plain_truth, ALPHA).passed
    assert not bias_test(plain, balanced_truth, ALPHA).passed


def _losses(rows):
    return [row["policy_loss"] for row in rows]


def test_a_balanced_run_resumes_to_the_same_numbers_and_differs_from_one_without(tmp_path):
    from robopg.errors import TrainingInterrupted

    from .test_training import interrupt_at

    kw = dict(steps=2048, batch_size=512, checkpoint_every=100, randomize="mass=0.5:1.5,friction=0.5:1.5",
              balance_regions="mass=2,friction=2")
    full = robopg.train(tiny("Hopper-v5", **kw), tmp_path / "full")
    with pytest.raises(TrainingInterrupted):
        robopg.train(tiny("Hopper-v5", **kw), tmp_path / "cut", callbacks=[interrupt_at(2)])
    _same(_numbers(full.run_dir), _numbers(robopg.resume(tmp_path / "cut").run_dir))
    assert robopg.api.load_config(full.run_dir).balance_regions == "mass=2,friction=2"
    plain = robopg.train(tiny("Hopper-v5", **{**kw, "balance_regions": ""}), tmp_path / "plain")
    assert _losses(_numbers(plain.run_dir)) != _losses(_numbers(full.run_dir))


def test_balance_from_weighs_the_plain_mean_before_its_step_and_resumes_across_it(tmp_path):
    from robopg.errors import TrainingInterrupted

    from .test_training import interrupt_at

    kw = dict(steps=2048, batch_size=512, checkpoint_every=100, randomize="mass=0.5:1.5,friction=0.5:1.5")
    plain = _numbers(robopg.train(tiny("Hopper-v5", **kw), tmp_path / "plain").run_dir)
    kw.update(balance_regions="mass=2,friction=2", balance_from=1024)
    late = _numbers(robopg.train(tiny("Hopper-v5", **kw), tmp_path / "late").run_dir)
    early = _numbers(robopg.train(tiny("Hopper-v5", **{**kw, "balance_from": 0}), tmp_path / "early").run_dir)
    # The first two batches (1,024 steps) as without the option, to the bit; then balanced.
    _same(late[:2], plain[:2])
    assert _losses(late[2:]) != _losses(plain[2:]) and _losses(late[:1]) != _losses(early[:1])
    with pytest.raises(TrainingInterrupted):  # stopped before the step, resumed after it
        robopg.train(tiny("Hopper-v5", **kw), tmp_path / "cut", callbacks=[interrupt_at(1)])
    _same(late, _numbers(robopg.resume(tmp_path / "cut").run_dir))


def test_apart_the_nominal_robots_keep_their_weights_and_the_drawn_ones_are_balanced():
    from robopg.algorithms.weights import compute_weights
    from robopg.sampler import Rollout

    rng = np.random.default_rng(3)
    T, N = 5, 12
    context = np.log(rng.choice([0.5, 1.2], size=(1, N, 1)).repeat(T, 0)).astype(np.float32)
    context[:, :5] = 0.0  # five envs run the nominal robot
    context[:, 5:7] = np.log(0.9)  # drawn robots of the middle part, where the nominal one would count
    mask = rng.random((T, N)) < 0.9
    rollout = Rollout(obs=rng.normal(size=(T, N, 3)).astype(np.float32), actions=rng.normal(size=(T, N, 1)),
                      rewards=rng.normal(size=(T, N)), next_obs=rng.normal(size=(T, N, 3)).astype(np.float32),
                      terminated=np.zeros((T, N), bool), truncated=np.zeros((T, N), bool), mask=mask,
                      episode_returns=[], episode_lengths=[], context=context)
    kw = dict(env_id="Hopper-v5", randomize="mass=0.4:1.6", randomize_nominal=0.5, baseline="mean", estimator="rtg",
              normalize_advantages=False)
    plain = compute_weights(Config(**kw), rollout, None, None).psi.numpy()
    apart = compute_weights(Config(**kw, balance_regions="mass=3", balance_nominal="apart"), rollout, None,
                            None).psi.numpy()
    steps = np.broadcast_to(np.arange(N), (T, N))[mask]
    multiplier = apart / plain
    np.testing.assert_array_equal(multiplier[steps < 5], 1.0)  # the nominal robots' steps: as they were
    drawn = multiplier[steps >= 5]
    assert drawn.mean() == pytest.approx(1.0)  # the drawn robots keep their total weight, shared evenly
    part = regions(Config(**kw, balance_regions="mass=3"), context, "mass=3")[mask][steps >= 5]
    shares = [drawn[part == b].sum() for b in np.unique(part)]
    np.testing.assert_allclose(shares, shares[0])
    assert len(shares) == 3


def test_parse_balance_reads_names_and_counts():
    assert parse_balance("mass=3, friction=2") == {"body_mass": 3, "geom_friction": 2}
    assert parse_balance("") == {}


@pytest.mark.parametrize("args, why", [
    (["--balance-regions", "mass=1"], "mass=1"),
    (["--balance-regions", "mass=two"], "mass=two"),
    (["--balance-regions", "mass"], "NAME=BINS"),
    (["--balance-regions", "friction=3"], "friction"),
    (["--balance-regions", "weight=3"], "weight"),
    (["--balance-regions", "mass=2,mass=3"], "twice"),
    (["--balance-power", "0.5"], "--balance-regions"),
    (["--balance-from", "512"], "--balance-regions"),
    (["--balance-nominal", "apart"], "--balance-regions"),
    (["--balance-regions", "mass=2", "--balance-nominal", "apart"], "--randomize-nominal"),
    (["--balance-regions", "mass=2", "--balance-from", "1024"], "before --steps"),
    (["--balance-regions", "mass=2", "--balance-power", "1.5"], "[0, 1]"),
])
def test_bad_balance_exits_2_naming_the_option(cli, tmp_path, args, why):
    out = cli("train", "Hopper-v5", "--randomize", "mass=0.5:1.5", "--steps", "1024", "--batch-size", "512", *args,
              "--run-dir", tmp_path / "r")
    assert out.returncode == 2, out.stderr
    line, = out.stderr.strip().splitlines()
    assert any(o in line for o in ("--balance-regions", "--balance-power", "--balance-from", "--balance-nominal"))
    assert why in line
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "r").exists()
