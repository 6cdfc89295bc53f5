"""robopg.stats: IQM, stratified bootstrap intervals, and the Bonferroni-corrected bias test."""

import itertools

import numpy as np
import pytest
from scipy import stats

from robopg import stats as robopg_stats


def test_iqm_is_the_25_percent_trimmed_mean():
    x = np.array([7.0, 1.0, 100.0, 3.0, 5.0, 2.0, 6.0, 4.0])
    assert robopg_stats.iqm(x) == pytest.approx(4.5)  # sorted 1..7,100: the middle four are 3, 4, 5, 6
    rng = np.random.default_rng(3)
    for n in (1, 3, 4, 5, 10, 17):
        y = rng.normal(size=n)
        assert robopg_stats.iqm(y) == pytest.approx(stats.trim_mean(y, 0.25))


def test_bootstrap_interval_matches_the_exact_bootstrap_distribution():
    """With 6 seeds the bootstrap distribution is enumerable: all 6^6 equally likely resamples."""
    scores = np.array([310.0, 455.0, 520.0, 610.0, 790.0, 1000.0])
    every = np.array(list(itertools.product(range(6), repeat=6)))
    exact = stats.trim_mean(scores[every], 0.25, axis=1)
    exact_lo, exact_hi = np.percentile(exact, [2.5, 97.5])
    iv = robopg_stats.interval([scores], robopg_stats.iqm, reps=20_000, seed=1)
    assert iv.point == pytest.approx(stats.trim_mean(scores, 0.25)) and iv.n == 6
    spread = scores.max() - scores.min()
    assert abs(iv.low - exact_lo) < 0.02 * spread and abs(iv.high - exact_hi) < 0.02 * spread
    # scipy's percentile bootstrap of the same statistic agrees too (for one task it is the same method).
    ref = stats.bootstrap((scores,), lambda x, axis: stats.trim_mean(x, 0.25, axis=axis), n_resamples=20_000,
                          method="percentile", rng=np.random.default_rng(2)).confidence_interval
    assert abs(iv.low - ref.low) < 0.02 * spread and abs(iv.high - ref.high) < 0.02 * spread
    # Same seed, same interval: a comparison is reproducible.
    assert robopg_stats.interval([scores], reps=20_000, seed=1) == iv


def test_stratified_bootstrap_resamples_within_each_task():
    a, b = np.zeros(3), np.full(5, 100.0)
    # Resampling within tasks keeps 3 runs of a and 5 of b in every resample: the mean cannot move.
    boot = robopg_stats.stratified_bootstrap([a, b], robopg_stats.mean, reps=500)
    assert np.allclose(boot, 500.0 / 8)
    # Pooled (one task), the share of each changes from resample to resample.
    pooled = robopg_stats.stratified_bootstrap([np.concatenate([a, b])], robopg_stats.mean, reps=500)
    assert pooled.std() > 5
    iv = robopg_stats.interval([a, b], robopg_stats.mean)
    assert iv.low == pytest.approx(62.5) and iv.high == pytest.approx(62.5) and iv.n == 8
    assert robopg_stats.interval([np.array([5.0])]).low is None  # one run: no interval to claim


def test_bias_test_catches_a_shifted_mean_and_passes_the_true_one():
    rng = np.random.default_rng(0)
    truth = np.array([1.0, -2.0, 0.5])
    samples = truth + rng.normal(size=(400, 3))
    assert robopg_stats.bias_test(samples, truth, alpha=1e-3).passed
    assert not robopg_stats.bias_test(samples + [0.0, 0.0, 0.5], truth, alpha=1e-3).passed


def test_reference_standard_error_widens_the_bias_bound():
    rng = np.random.default_rng(1)
    samples = rng.normal(size=(100, 2))
    plain = robopg_stats.bias_test(samples, np.zeros(2))
    wider = robopg_stats.bias_test(samples, np.zeros(2), truth_se=np.full(2, 0.5))
    assert wider.bias_norm_upper > plain.bias_norm_upper and wider.max_abs_z < plain.max_abs_z


def test_bonferroni_z_grows_with_the_number_of_tests():
    assert robopg_stats.bonferroni_z(0.05, 1) == pytest.approx(1.959964, abs=1e-6)
    assert robopg_stats.bonferroni_z(0.05, 100) > robopg_stats.bonferroni_z(0.05, 10)
