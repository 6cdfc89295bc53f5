"""The statistics robopg reports, in one module.

Gradient estimates (tolerances derived from the sample itself):
``bias_test``: does the Monte-Carlo mean of d-dimensional estimates match a known gradient? Each
coordinate's error is compared with its standard error; a Bonferroni correction over the d coordinates
keeps the chance of a false alarm at ``alpha`` overall.
``variance_test``: is one estimator's total variance (trace of its covariance) lower than another's, on
the same trajectories (paired), with confidence?

Returns over seeds, as Agarwal et al. (2021), "Deep RL at the Edge of the Statistical Precipice",
recommend: the interquartile mean (IQM) with a percentile interval from a *stratified* bootstrap, which
resamples runs within each task, so every resample keeps each task's number of runs. ``scores`` is always a
list with one 1-D array of per-run scores per task; with one task the stratified bootstrap is the ordinary
bootstrap over seeds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


# --- gradient estimates ---------------------------------------------------------------------------------
def bonferroni_z(alpha: float, d: int) -> float:
    """The two-sided critical |z| for ``d`` simultaneous tests at overall level ``alpha``."""
    return float(stats.norm.ppf(1 - alpha / (2 * d)))


@dataclass
class BiasResult:
    max_abs_z: float       # largest |mean - truth| / standard error over coordinates
    critical_z: float      # two-sided Bonferroni threshold at alpha
    bias_norm: float       # ||mean - truth||
    bias_norm_upper: float  # one-sided upper confidence bound on ||mean - truth||  (norm of |err| + z*SE)
    passed: bool           # True: no coordinate's error is significant


def bias_test(samples: np.ndarray, truth: np.ndarray, alpha: float = 1e-3,
              truth_se: np.ndarray | None = None) -> BiasResult:
    """``samples``: [M, d] independent estimates; ``truth``: [d], exact, or a reference estimate whose own
    standard error ``truth_se`` [d] widens each coordinate's."""
    samples = np.asarray(samples, dtype=np.float64)
    m, d = samples.shape
    mean = samples.mean(0)
    se = samples.std(0, ddof=1) / np.sqrt(m)
    if truth_se is not None:
        se = np.sqrt(se ** 2 + truth_se ** 2)
    err = mean - np.asarray(truth).reshape(-1)
    # Coordinates whose estimates never vary (a state never visited) must match exactly.
    z = np.where(se > 0, np.abs(err) / np.where(se > 0, se, 1.0), np.where(np.abs(err) > 1e-12, np.inf, 0.0))
    crit = bonferroni_z(alpha, d)
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


# --- returns over seeds ---------------------------------------------------------------------------------
def iqm(x: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    """Interquartile mean: the mean of the middle 50% (``scipy.stats.trim_mean(x, 0.25)``).

    With fewer than 4 values nothing is trimmed (``int(0.25 * n) == 0``): it is the plain mean.
    """
    return stats.trim_mean(x, 0.25, axis=axis)


def mean(x: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    return np.mean(x, axis=axis)


def _as_tasks(scores: Sequence[np.ndarray]) -> list[np.ndarray]:
    tasks = [np.asarray(s, dtype=np.float64).reshape(-1) for s in scores]
    if not tasks or any(t.size == 0 for t in tasks):
        raise ValueError("every task needs at least one score")
    if any(not np.isfinite(t).all() for t in tasks):
        raise ValueError("scores must be finite")
    return tasks


def stratified_bootstrap(scores: Sequence[np.ndarray], statistic: Callable = iqm, reps: int = 2000,
                         rng: np.random.Generator | None = None) -> np.ndarray:
    """``reps`` values of ``statistic`` over resamples drawn with replacement within each task.

    ``statistic(x, axis=1)`` receives the resamples as one ``[reps, total_runs]`` array (tasks side by
    side), which is how rliable aggregates several tasks: the IQM of all runs of all tasks together.
    """
    tasks = _as_tasks(scores)
    rng = rng if rng is not None else np.random.default_rng(0)
    columns = [t[rng.integers(0, t.size, size=(reps, t.size))] for t in tasks]
    return np.asarray(statistic(np.concatenate(columns, axis=1), axis=1), dtype=np.float64)


@dataclass
class Interval:
    point: float            # the statistic on the runs themselves
    low: float | None       # None when there are too few runs for an interval (one run in every task)
    high: float | None
    n: int                  # runs, all tasks together

    def to_dict(self) -> dict:
        return {"point": self.point, "low": self.low, "high": self.high, "n": self.n}


def interval(scores: Sequence[np.ndarray], statistic: Callable = iqm, reps: int = 2000,
             confidence: float = 0.95, seed: int = 0) -> Interval:
    """Point estimate and percentile-bootstrap interval (stratified over tasks)."""
    tasks = _as_tasks(scores)
    point = float(statistic(np.concatenate(tasks)))
    n = sum(t.size for t in tasks)
    if all(t.size < 2 for t in tasks):
        return Interval(point, None, None, n)
    boot = stratified_bootstrap(tasks, statistic, reps, np.random.default_rng(seed))
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(boot, [tail, 100 - tail])
    return Interval(point, float(low), float(high), n)


def curve_band(curves: np.ndarray, reps: int = 2000, confidence: float = 0.95,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds and its percentile-bootstrap band, per column of ``curves`` ``[runs, grid]``.

    Columns where any run has no data (NaN) give NaN: the mean of the runs that happen to remain would
    jump where a run stops, so the curve ends where the shortest run ends instead.
    """
    curves = np.asarray(curves, dtype=np.float64)
    n, g = curves.shape
    complete = np.isfinite(curves).all(axis=0)
    mean_curve = np.full(g, np.nan)
    low = np.full(g, np.nan)
    high = np.full(g, np.nan)
    if n == 0 or not complete.any():
        return mean_curve, low, high
    data = curves[:, complete]
    mean_curve[complete] = data.mean(axis=0)
    if n < 2:
        return mean_curve, low, high
    rng = np.random.default_rng(seed)
    # One set of resampled seeds for every grid point, so each bootstrap curve is a curve of real runs.
    idx = rng.integers(0, n, size=(reps, n))
    boot = data[idx].mean(axis=1)  # [reps, points]
    tail = 100 * (1 - confidence) / 2
    low[complete], high[complete] = np.percentile(boot, [tail, 100 - tail], axis=0)
    return mean_curve, low, high
