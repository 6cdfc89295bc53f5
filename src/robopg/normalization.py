"""Running normalisation: observations (inside the policy, so checkpoints are complete) and rewards (by the
running std of the discounted return). Both keep their statistics with one merge, ``merge_moments``."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn


def merge_moments(mean, var, count, batch_mean, batch_var, n):
    """Mean, variance and count of two samples' union from each one's (Chan et al.'s parallel update).

    Works on floats and on tensors alike, with the same operations in the same order, so the observation
    normaliser (float64 tensors) and the reward scaler (floats) share one formula.
    """
    delta = batch_mean - mean
    total = count + n
    new_mean = mean + delta * n / total
    m2 = var * count + batch_var * n + delta ** 2 * count * n / total
    return new_mean, m2 / total, total


class ObsNormalizer(nn.Module):
    """Running mean and variance of observations, applied as (obs - mean) / std clipped to +-clip.

    Statistics change only through ``update`` (called after each policy update), never while sampling, so
    a batch's log-probabilities are those of the policy that produced it. They are kept in float64; the
    shift and scale applied to observations are cached in the module's compute dtype and device (float32
    unless the module is moved with ``.to()``/``.double()``), recomputed whenever the statistics or the
    dtype change.
    """

    def __init__(self, dim: int, enabled: bool = True, clip: float = 10.0):
        super().__init__()
        self.enabled = enabled
        self.clip = clip
        self.register_buffer("mean", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("var", torch.ones(dim, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(1e-4, dtype=torch.float64))
        self._dtype, self._device = torch.float32, self.mean.device
        self._refresh()

    def _refresh(self) -> None:
        self._shift = self.mean.to(self._device, self._dtype)
        self._scale = (1.0 / torch.sqrt(self.var + 1e-8)).to(self._device, self._dtype)

    def _apply(self, fn, recurse=True):
        # .to(), .double(), .float(), .cuda() go through here: move the cached constants with the module.
        super()._apply(fn, recurse)
        probe = fn(torch.zeros(0, dtype=self._dtype, device=self._device))
        self._dtype, self._device = probe.dtype, probe.device
        self._refresh()
        return self

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._refresh()

    @torch.no_grad()
    def update(self, obs: np.ndarray | torch.Tensor) -> None:
        if not self.enabled:
            return
        x = torch.as_tensor(np.asarray(obs), dtype=torch.float64).reshape(-1, self.mean.numel())
        mean, var, count = merge_moments(self.mean, self.var, self.count, x.mean(0), x.var(0, unbiased=False),
                                         x.shape[0])
        self.mean.copy_(mean)
        self.var.copy_(var)
        self.count.copy_(count)
        self._refresh()

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return obs
        return ((obs - self._shift) * self._scale).clamp(-self.clip, self.clip)

    def frozen(self) -> Callable[[np.ndarray], np.ndarray]:
        """``forward`` on NumPy observations with the statistics as they are now, for the many calls of one
        sampled batch. The same elementwise float operations in the same dtypes (so the same numbers:
        ``tests/test_normalization.py``), in NumPy, whose calls cost a fraction of torch's at one env's size."""
        if not self.enabled:
            return lambda obs: obs
        shift, scale, clip = self._shift.cpu().numpy(), self._scale.cpu().numpy(), self.clip

        def normalize(obs: np.ndarray) -> np.ndarray:
            x = obs - shift
            x *= scale
            return np.minimum(np.maximum(x, -clip, out=x), clip, out=x)  # torch's clamp, NaN kept

        return normalize


class RewardScaler:
    """Divides rewards by the running std of the discounted return (as SB3's VecNormalize does), so the
    value function sees targets of order one whatever the robot's reward scale."""

    def __init__(self, num_envs: int, gamma: float):
        self.gamma = gamma
        self.ret = np.zeros(num_envs)
        self.mean, self.var, self.count = 0.0, 1.0, 1e-4

    def scale(self, rewards: np.ndarray, terminated: np.ndarray, truncated: np.ndarray,
              mask: np.ndarray) -> np.ndarray:
        """``rewards`` [T, N] divided by the running std, after updating it with this batch's returns."""
        # One merge per step, so the loop runs T times (2,048 with one env): it calls the ufuncs that
        # ndarray.mean and .var call, in their order (the same numbers), without their Python wrappers, and
        # skips the masking where every env is active and the reset where no episode ended (~3x faster).
        ended = terminated | truncated
        if rewards.shape[1] == 1:
            self._merge_one_env(rewards[:, 0].tolist(), ended[:, 0].tolist(), mask[:, 0].tolist())
            return rewards / math.sqrt(self.var + 1e-8)
        full, any_ended = mask.all(axis=1), ended.any(axis=1)
        ret, mean, var, count = self.ret, self.mean, self.var, self.count
        total = np.add.reduce
        for t in range(rewards.shape[0]):
            ret = ret * self.gamma + rewards[t]
            valid = ret if full[t] else ret[mask[t]]
            n = valid.size
            if n:
                batch_mean = total(valid) / n
                deviation = valid - batch_mean
                mean, var, count = merge_moments(mean, var, count, batch_mean, total(deviation * deviation) / n, n)
            if any_ended[t]:
                ret[ended[t]] = 0.0
        self.ret, self.mean, self.var, self.count = ret, mean, var, count
        return rewards / math.sqrt(self.var + 1e-8)

    def _merge_one_env(self, rewards: list[float], ended: list[bool], active: list[bool]) -> None:
        """``scale``'s loop for one env on Python floats: the same float64 operations (a sample of one: its mean
        is the return, its variance (r - r)^2, 0 or NaN as NumPy gives), ~5x cheaper than NumPy calls on
        1-element arrays; the statistics keep NumPy's types."""
        r, mean, var, count, merged = float(self.ret[0]), self.mean, self.var, self.count, False
        for reward, end, is_active in zip(rewards, ended, active):
            r = r * self.gamma + reward
            if is_active:
                deviation = r - r
                mean, var, count = merge_moments(mean, var, count, r, deviation * deviation, 1)
                merged = True
            if end:
                r = 0.0
        self.ret = np.array([r])
        if merged:
            self.mean, self.var, self.count = np.float64(mean), np.float64(var), count

    def state_dict(self) -> dict:
        return {"ret": torch.as_tensor(self.ret), "mean": self.mean, "var": self.var, "count": self.count}

    def load_state_dict(self, s: dict) -> None:
        self.ret = s["ret"].numpy().copy()
        self.mean, self.var, self.count = s["mean"], s["var"], s["count"]
