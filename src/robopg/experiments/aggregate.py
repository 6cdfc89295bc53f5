"""Aggregate statistics over seeds, as Agarwal et al. (2021), "Deep RL at the Edge of the Statistical
Precipice", recommend: the interquartile mean (IQM) with a percentile interval from a *stratified*
bootstrap, which resamples runs within each task, so every resample keeps each task's number of runs.

``scores`` is always a list with one 1-D array of per-run scores per task. A comparison of one robot has a
single task, where the stratified bootstrap is the ordinary bootstrap over seeds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


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
