"""Statistical checks on samples of gradient estimates, with tolerances derived from the sample itself.

``bias_test``: does the Monte-Carlo mean of d-dimensional estimates match a known gradient? Each
coordinate's error is compared with its standard error; a Bonferroni correction over the d coordinates
keeps the chance of a false alarm at ``alpha`` overall.
``variance_test``: is one estimator's total variance (trace of its covariance) lower than another's, on
the same trajectories (paired), with confidence?
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass
class BiasResult:
    max_abs_z: float       # largest |mean - truth| / standard error over coordinates
    critical_z: float      # two-sided Bonferroni threshold at alpha
    bias_norm: float       # ||mean - truth||
    bias_norm_upper: float  # one-sided upper confidence bound on ||mean - truth||  (norm of |err| + z*SE)
    passed: bool           # True: no coordinate's error is significant


def bias_test(samples: np.ndarray, truth: np.ndarray, alpha: float = 1e-3) -> BiasResult:
    """``samples``: [M, d] independent estimates; ``truth``: [d]."""
    samples = np.asarray(samples, dtype=np.float64)
    m, d = samples.shape
    mean = samples.mean(0)
    se = samples.std(0, ddof=1) / np.sqrt(m)
    err = mean - np.asarray(truth).reshape(-1)
    # Coordinates whose estimates never vary (a state never visited) must match exactly.
    z = np.where(se > 0, np.abs(err) / np.where(se > 0, se, 1.0), np.where(np.abs(err) > 1e-12, np.inf, 0.0))
    crit = float(stats.norm.ppf(1 - alpha / (2 * d)))
    upper = float(np.linalg.norm(np.abs(err) + crit * se))
    return BiasResult(float(z.max()), crit, float(np.linalg.norm(err)), upper, bool(z.max() <= crit))


@dataclass
class VarianceComparison:
    total_var_a: float
    total_var_b: float
    ratio: float       # a / b
    z: float           # standardised difference (a - b) / SE: > critical means a's variance is larger
    a_larger: bool     # a's total variance exceeds b's with confidence 1 - alpha (one-sided)


def total_variance(samples: np.ndarray) -> float:
    """Trace of the covariance of [M, d] samples."""
    return float(samples.var(0, ddof=1).sum())


def variance_test(a: np.ndarray, b: np.ndarray, alpha: float = 1e-3) -> VarianceComparison:
    """Paired comparison of total variance: a[i] and b[i] are computed from the same trajectories.

    tr Cov(a) - tr Cov(b) = E[||a - Ea||^2 - ||b - Eb||^2]; the per-sample differences D_i have a mean whose
    standard error follows from their spread (the centring with sample means changes it by O(1/M)).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    da = ((a - a.mean(0)) ** 2).sum(1)
    db = ((b - b.mean(0)) ** 2).sum(1)
    diff = da - db
    se = diff.std(ddof=1) / np.sqrt(len(diff))
    z = float(diff.mean() / se) if se > 0 else (np.inf if diff.mean() > 0 else -np.inf)
    va, vb = total_variance(a), total_variance(b)
    return VarianceComparison(va, vb, va / vb if vb > 0 else np.inf, z, bool(z > stats.norm.ppf(1 - alpha)))
