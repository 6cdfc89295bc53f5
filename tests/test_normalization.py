"""Running normalisation: one moments merge for observations (tensors) and rewards (floats)."""

import math

import numpy as np
import pytest
import torch

from robopg.normalization import ObsNormalizer, RewardScaler, merge_moments


def test_merging_moments_gives_the_moments_of_the_union():
    rng = np.random.default_rng(0)
    a, b = rng.normal(2.0, 3.0, 500), rng.normal(-1.0, 0.5, 70)
    mean, var, count = merge_moments(a.mean(), a.var(), a.size, b.mean(), b.var(), b.size)
    both = np.concatenate([a, b])
    assert count == both.size
    assert np.isclose(mean, both.mean(), rtol=1e-13) and np.isclose(var, both.var(), rtol=1e-12)


def test_obs_normaliser_and_reward_scaler_share_the_merge():
    # Both update from the same formula: fed the same numbers one batch at a time they agree to the bit.
    rng = np.random.default_rng(1)
    norm = ObsNormalizer(1)
    mean, var, count = 0.0, 1.0, 1e-4
    for _ in range(5):
        x = rng.normal(5.0, 2.0, 33)
        norm.update(x[:, None])
        # The batch's own moments as the normaliser computes them (torch and numpy sum differently).
        t = torch.as_tensor(x)
        mean, var, count = merge_moments(mean, var, count, t.mean().item(), t.var(unbiased=False).item(), x.size)
    assert norm.mean.item() == mean and norm.var.item() == var and norm.count.item() == count


def test_reward_scaler_divides_by_the_running_return_std():
    scaler = RewardScaler(num_envs=2, gamma=0.9)
    rewards = np.full((50, 2), 3.0)
    flags = np.zeros((50, 2), bool)
    scaled = scaler.scale(rewards, flags, flags, np.ones((50, 2), bool))
    assert np.allclose(scaled, rewards / np.sqrt(scaler.var + 1e-8))
    assert scaler.var > 0 and abs(scaler.mean - 3.0 * (1 - 0.9 ** 25) / 0.1) < 15.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_frozen_normaliser_equals_forward(dtype):
    # NumPy in, NumPy out, torch's numbers to the bit: in the clip range, clipped, and NaN (kept, as torch's
    # clamp keeps it); float32 observations, for a float32 and a float64 (.double()) normaliser.
    norm = ObsNormalizer(3).to(dtype)
    norm.update(np.random.default_rng(2).normal(4.0, 9.0, (100, 3)))
    obs = np.random.default_rng(3).normal(0.0, 200.0, (20, 3)).astype(np.float32)
    obs[0, 1] = np.nan
    got, want = norm.frozen()(obs), norm(torch.from_numpy(obs)).numpy()
    assert got.dtype == want.dtype and np.array_equal(got, want, equal_nan=True)
    assert np.isnan(got[0, 1]) and (np.abs(got[1:]) == norm.clip).any()


def _reference_scale(scaler: RewardScaler, rewards, terminated, truncated, mask):
    # The plain form of RewardScaler.scale: per step, numpy's mean and var of the active envs' returns.
    for t in range(rewards.shape[0]):
        scaler.ret = scaler.ret * scaler.gamma + rewards[t]
        valid = scaler.ret[mask[t]]
        if valid.size:
            scaler.mean, scaler.var, scaler.count = merge_moments(scaler.mean, scaler.var, scaler.count,
                                                                  valid.mean(), valid.var(), valid.size)
        scaler.ret[terminated[t] | truncated[t]] = 0.0
    return rewards / math.sqrt(scaler.var + 1e-8)


def test_reward_scaler_equals_its_plain_form_to_the_bit():
    # The scaler's loop skips numpy's wrappers for speed (and with one env, numpy); it must still give numpy's
    # numbers exactly, with episode ends, idle envs (mask), a step where no env is active and a non-finite return.
    rng = np.random.default_rng(2)
    for num_envs in (1, 3, 8):
        fast, plain = RewardScaler(num_envs, 0.99), RewardScaler(num_envs, 0.99)
        for round_ in range(3):
            T = 300
            rewards = rng.normal(1.0, 5.0, (T, num_envs)).astype(np.float32)
            terminated, truncated = rng.random((T, num_envs)) < 0.03, rng.random((T, num_envs)) < 0.01
            mask = np.ones((T, num_envs), bool)
            mask[T // 2:, 0] = rng.random(T - T // 2) < 0.5
            mask[7] = False
            if round_ == 2:
                rewards[11, -1] = np.inf  # a non-finite return: NaN statistics from there on, either way
            with np.errstate(invalid="ignore"):  # inf - inf, on purpose
                got = fast.scale(rewards, terminated, truncated, mask)
                want = _reference_scale(plain, rewards, terminated, truncated, mask)
            assert np.array_equal(got, want, equal_nan=True) and np.isnan(got).any() == (round_ == 2)
            assert np.array_equal([fast.mean, fast.var, fast.count], [plain.mean, plain.var, plain.count],
                                  equal_nan=True)
            assert [type(x) for x in (fast.mean, fast.var, fast.count)] == [type(x) for x in (plain.mean, plain.var,
                                                                                               plain.count)]
            assert np.array_equal(fast.ret, plain.ret, equal_nan=True)
