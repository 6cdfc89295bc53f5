"""Worst-case focus for domain randomisation (``--randomize-focus RHO``): more episodes start on the robots the
policy does worst on.

Uniform randomisation spends its episodes evenly over the physics ranges, so a corner where the policy fails (on
Hopper: the light robot on an ordinary floor, docs/robustness.md) gets a few percent of the batch and little of the
gradient. Here the ranges are cut into cells, ``--randomize-bins`` per parameter (in log space for log-uniform
ranges), and the learner keeps each cell's score: a running mean of the returns of the episodes that ran in it.
Each iteration it ranks the cells, worst first, and every episode start draws its cell from

    p(c) = (1 - RHO) / C + RHO * (1 / rank(c)) / (1 + 1/2 + ... + 1/C),

then its factors uniformly within the cell. RHO = 0 is uniform randomisation over the whole ranges (the cells cover
them evenly); with RHO = 1 the worst cell gets 1 / (1 + ... + 1/C) of the episodes (30% of 16 cells). Cells that
have no score yet rank first, so every cell is visited early. This is the rank-based prioritisation of Prioritized
Level Replay (Jiang et al., 2021) with the return as the score, in the spirit of EPOpt's (Rajeswaran et al., 2017)
training on the worst episodes, except that no episode is discarded: every one still enters the gradient, which
is then the gradient of the return under the focused distribution of robots.

The learner computes the probabilities from the finished episodes of the batches so far, in the order the rollout
lists them, and holds them fixed for a whole iteration: they depend neither on the order envs finish nor on how
the envs are split between Ray workers (the learner sends them with the weights), and a checkpoint keeps the scores.
"""

from __future__ import annotations

import numpy as np
import torch

from .config import parse_randomize

SCORE_RATE = 0.1  # each finished episode moves its cell's score this fraction of the way to its return


class Cells:
    """The grid of cells over ``--randomize``'s physics ranges: ``bins`` per parameter, in the order the spec
    names them; cell ``c`` is ``np.unravel_index(c, (bins,) * params)``."""

    def __init__(self, spec: str, bins: int):
        ranges = parse_randomize(spec)
        self.bins, self.params = int(bins), len(ranges)
        self.count = self.bins ** self.params
        self.log = np.array([r[2] == "log" for r in ranges.values()])
        lo = np.array([r[0] for r in ranges.values()], dtype=float)
        hi = np.array([r[1] for r in ranges.values()], dtype=float)
        # Edges in the space each parameter is drawn in: [params, bins + 1].
        self._lo = np.where(self.log, np.log(lo), lo)
        self._hi = np.where(self.log, np.log(hi), hi)
        self.edges = self._lo[:, None] + (self._hi - self._lo)[:, None] * np.arange(self.bins + 1) / self.bins

    def bounds(self, cell: int) -> tuple[np.ndarray, np.ndarray]:
        """The cell's low and high edge per parameter, in draw space (log for log-uniform ranges)."""
        k = np.array(np.unravel_index(cell, (self.bins,) * self.params))
        rows = np.arange(self.params)
        return self.edges[rows, k], self.edges[rows, k + 1]

    def of(self, factors: np.ndarray) -> np.ndarray:
        """The cell of each row of ``factors`` ``[E, params]`` (factors outside the ranges go to the edge cells)."""
        x = np.where(self.log, np.log(factors), factors)
        k = np.floor((x - self._lo) / (self._hi - self._lo) * self.bins).astype(np.int64)
        k = np.clip(k, 0, self.bins - 1)
        return np.ravel_multi_index(tuple(k.T), (self.bins,) * self.params)


class Focus:
    """The learner's cell scores and the probabilities the next iteration's episode starts draw cells from."""

    def __init__(self, spec: str, bins: int, rho: float):
        self.cells = Cells(spec, bins)
        self.rho = float(rho)
        self.score = np.full(self.cells.count, np.nan)  # nan: no episode has run in the cell yet
        self.episodes = np.zeros(self.cells.count, dtype=np.int64)

    def update(self, factors: np.ndarray | None, returns: list[float]) -> None:
        """Fold in a batch's finished episodes: ``factors`` ``[E, params]`` (their physics factors) and their
        returns, in the rollout's order."""
        if factors is None or not len(returns):
            return
        for cell, ret in zip(self.cells.of(np.asarray(factors)), returns):
            old = self.score[cell]
            self.score[cell] = ret if self.episodes[cell] == 0 else old + SCORE_RATE * (ret - old)
            self.episodes[cell] += 1

    def probabilities(self) -> np.ndarray:
        """``[C]``: each cell's probability for the next iteration's episode starts."""
        n = self.cells.count
        # Worst first: unvisited cells (score -inf here), then by score; ties by cell index (a stable sort).
        order = np.argsort(np.where(np.isnan(self.score), -np.inf, self.score), kind="stable")
        rank = np.empty(n)
        rank[order] = np.arange(1, n + 1)
        weight = 1.0 / rank
        return (1.0 - self.rho) / n + self.rho * weight / weight.sum()

    def stats(self) -> dict[str, float]:
        """For metrics.csv: the worst and best visited cell's score, and the worst cell's probability."""
        seen = self.score[~np.isnan(self.score)]
        return {"focus_score_min": float(seen.min()) if len(seen) else np.nan,
                "focus_score_max": float(seen.max()) if len(seen) else np.nan,
                "focus_p_max": float(self.probabilities().max())}

    def state_dict(self) -> dict:
        # Tensors: a checkpoint is loaded with torch.load(weights_only=True), which takes no numpy arrays.
        return {"score": torch.from_numpy(self.score.copy()), "episodes": torch.from_numpy(self.episodes.copy())}

    def load_state_dict(self, state: dict) -> None:
        if tuple(state["score"].shape) != self.score.shape:
            raise ValueError("saved --randomize-focus scores do not match this run's --randomize and --randomize-bins")
        self.score[:] = state["score"].numpy()
        self.episodes[:] = state["episodes"].numpy()


def make_focus(config) -> Focus | None:
    """The config's focus, or None without --randomize-focus."""
    if not config.randomize_focus:
        return None
    return Focus(config.randomize, config.randomize_bins, config.randomize_focus)
