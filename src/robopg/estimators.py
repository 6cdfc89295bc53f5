"""The policy-gradient weights Psi_t, as pure functions of a batch.

Every estimator differs only in the weights passed to one loss, -mean(log pi(a_t|s_t) * Psi_t)
(see ``robopg.losses``). All arrays are laid out ``[T, N]``: T time steps of N environments stepped side
by side. Episode ends travel as two flags, never as a bare ``done``:

- ``terminated[t, n]``: the episode ended in a terminal state at step t; nothing follows, V(s_{t+1}) = 0.
- ``truncated[t, n]``: the episode was cut after step t (a time limit, or the end of the batch) although
  the task goes on; its tail is estimated by ``next_values[t, n]`` = V(s_{t+1}) when a value function
  exists (zeros otherwise, which makes the cut episode's return the plain sum of what was observed).

A step may carry both flags (the robot fell on the last step of the time limit): termination wins, there
is nothing to bootstrap. Steps with ``mask == False`` (an env idle at the end of a whole-episode batch)
hold no transition; they always follow an episode end, so no recursion crosses them into valid data.
"""

from __future__ import annotations

import numpy as np


def reward_to_go(rewards: np.ndarray, terminated: np.ndarray, truncated: np.ndarray,
                 next_values: np.ndarray | None, gamma: float) -> np.ndarray:
    """G_t = r_t + gamma * G_{t+1} within an episode; at a truncation G_t = r_t + gamma * V(s_{t+1}).

    Shapes: all ``[T, N]``; returns ``[T, N]`` float64.
    """
    T = rewards.shape[0]
    out = np.empty(rewards.shape, dtype=np.float64)
    carry = np.zeros(rewards.shape[1:], dtype=np.float64)
    bootstrap = np.zeros(rewards.shape) if next_values is None else next_values
    for t in range(T - 1, -1, -1):
        # The carry from t+1 belongs to the same episode only if the episode did not end at t.
        tail = np.where(terminated[t], 0.0, np.where(truncated[t], bootstrap[t], carry))
        carry = rewards[t] + gamma * tail
        out[t] = carry
    return out


def episode_starts(terminated: np.ndarray, truncated: np.ndarray) -> np.ndarray:
    """``[T, N]`` bool: True where a step begins an episode (its own, or the batch's first step)."""
    starts = np.zeros(terminated.shape, dtype=bool)
    starts[0] = True
    starts[1:] = terminated[:-1] | truncated[:-1]
    return starts


def episode_ids(terminated: np.ndarray, truncated: np.ndarray) -> np.ndarray:
    """``[T, N]`` int: an id per episode in the batch, unique across envs (column-major numbering)."""
    starts = episode_starts(terminated, truncated)
    per_column = np.cumsum(starts, axis=0) - 1  # 0, 0, 1, 1, 1, ... within each env
    offsets = np.concatenate([[0], np.cumsum(starts.sum(axis=0))[:-1]])
    return per_column + offsets[None, :]


def whole_episode_return(returns: np.ndarray, terminated: np.ndarray, truncated: np.ndarray) -> np.ndarray:
    """REINFORCE's Psi_t = R(tau): every step gets the (discounted) return of its episode from its first
    step in the batch, i.e. ``returns`` (a reward-to-go) read at the episode's start."""
    starts = episode_starts(terminated, truncated)
    out = np.empty_like(returns)
    current = returns[0]
    for t in range(returns.shape[0]):
        current = np.where(starts[t], returns[t], current)
        out[t] = current
    return out


def gae(rewards: np.ndarray, values: np.ndarray, next_values: np.ndarray, terminated: np.ndarray,
        truncated: np.ndarray, gamma: float, lam: float) -> np.ndarray:
    """Generalised advantage estimation (Schulman et al., 2016).

    delta_t = r_t + gamma * (1 - terminated_t) * V(s_{t+1}) - V(s_t);  A_t = delta_t + gamma*lam*A_{t+1},
    with the sum stopped at any episode end. ``next_values[t]`` must be V of the true next state (the final
    observation at a time limit), so a truncation bootstraps and a termination does not.
    lam = 1 gives reward_to_go(...) - values; lam = 0 gives the one-step TD error.
    """
    T = rewards.shape[0]
    out = np.empty(rewards.shape, dtype=np.float64)
    deltas = rewards + gamma * np.where(terminated, 0.0, next_values) - values
    ended, decay = terminated | truncated, gamma * lam
    if rewards.shape[1:] == (1,):
        # One env: the same float64 operations on Python floats, ~8x cheaper than T NumPy calls on 1-element
        # arrays (2,048 a batch).
        carry, column, ends = 0.0, deltas[:, 0].tolist(), ended[:, 0].tolist()
        for t in range(T - 1, -1, -1):
            carry = column[t] + decay * (0.0 if ends[t] else carry)
            column[t] = carry
        out[:, 0] = column
        return out
    carry = np.zeros(rewards.shape[1:], dtype=np.float64)
    for t in range(T - 1, -1, -1):
        carry = deltas[t] + decay * np.where(ended[t], 0.0, carry)
        out[t] = carry
    return out


def leave_one_out_mean(psi: np.ndarray, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The 'mean' baseline: for each step, the mean of Psi over the *other* episodes of the batch.

    A plain batch mean includes the step's own episode and so correlates with its actions, a bias of order
    1/(episodes per batch). Leaving the episode out keeps b independent of it: exactly unbiased.
    A batch with a single episode has no other episode to learn from: its baseline is 0.
    """
    ids_valid = ids[mask]
    if ids_valid.size == 0:
        return np.zeros(psi.shape)
    n_ep = int(ids.max()) + 1
    sums = np.bincount(ids_valid, weights=psi[mask], minlength=n_ep)
    counts = np.bincount(ids_valid, minlength=n_ep).astype(np.float64)
    total, n = sums.sum(), counts.sum()
    others = n - counts[ids]
    return np.where(others > 0, (total - sums[ids]) / np.maximum(others, 1.0), 0.0)


def normalize(psi: np.ndarray, mask: np.ndarray, center: bool = True, eps: float = 1e-8) -> np.ndarray:
    """Zero mean (if ``center``), unit variance over the valid steps (the heuristic of most PG codes)."""
    valid = psi[mask]
    if valid.size < 2:
        return psi - valid.mean() if valid.size and center else psi
    return (psi - (valid.mean() if center else 0.0)) / (valid.std() + eps)


def balance(psi: np.ndarray, mask: np.ndarray, region: np.ndarray, power: float = 1.0) -> np.ndarray:
    """Psi scaled per region: a step of region b (n_b of the n valid steps) is multiplied by
    n n_b^-power / sum_k n_k^(1 - power), so region b's share of the total weight goes as n_b^(1 - power): with
    power 1 every region present holds the same share, with 0 nothing changes. The mean multiplier over the valid
    steps is 1, so the gradient's scale is kept; within a region every step weighs the same, as before."""
    present, counts = np.unique(region[mask], return_counts=True)
    if present.size < 2 or power == 0:
        return psi
    multiplier = np.zeros(int(present.max()) + 1)
    multiplier[present] = mask.sum() * counts ** -power / (counts ** (1.0 - power)).sum()
    return np.where(mask, psi * multiplier[np.where(mask, region, present[0])], psi)


def weights(estimator: str, baseline: str, rewards: np.ndarray, terminated: np.ndarray,
            truncated: np.ndarray, mask: np.ndarray, gamma: float, lam: float = 1.0,
            values: np.ndarray | None = None, next_values: np.ndarray | None = None,
            ) -> tuple[np.ndarray, np.ndarray]:
    """Psi for ``estimator`` minus ``baseline``; also the reward-to-go targets for fitting V.

    Returns ``(psi, value_targets)``, both ``[T, N]``. ``values``/``next_values`` are V(s_t) and V(s_{t+1})
    and are required for ``baseline='value'`` and ``estimator='gae'``.
    """
    if (baseline == "value" or estimator == "gae") and (values is None or next_values is None):
        raise ValueError(f"{estimator} with baseline {baseline} needs values and next_values")
    if estimator == "gae":
        advantages = gae(rewards, values, next_values, terminated, truncated, gamma, lam)
        # The lambda-return targets V toward what GAE assumes it estimates.
        return advantages, advantages + values
    boot = next_values if baseline == "value" else None
    returns = reward_to_go(rewards, terminated, truncated, boot, gamma)
    if estimator == "rtg":
        psi = returns
    elif estimator == "reinforce":
        psi = whole_episode_return(returns, terminated, truncated)
    else:
        raise ValueError(f"unknown estimator {estimator!r}")
    if baseline == "value":
        psi = psi - values
    elif baseline == "mean":
        psi = psi - leave_one_out_mean(psi, episode_ids(terminated, truncated), mask)
    elif baseline not in ("none", "optimal"):  # optimal: one constant per parameter, see robopg.gradients
        raise ValueError(f"unknown baseline {baseline!r}")
    return psi, returns
