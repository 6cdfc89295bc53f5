"""Estimators on hand-computed batches. Layout [T, N]; the arithmetic is in the comments."""

import numpy as np
import pytest

from robopg import estimators as est

F, T_ = False, True


def col(*xs):
    return np.array(xs, dtype=float)[:, None]


def flags(*xs):
    return np.array(xs, dtype=bool)[:, None]


def test_reward_to_go_discounts_and_stops_at_termination():
    r = col(1, 2, 3, 4)
    term = flags(F, T_, F, F)
    trunc = flags(F, F, F, T_)
    g = est.reward_to_go(r, term, trunc, None, gamma=0.5)
    # episode 1: G1 = 2, G0 = 1 + .5*2 = 2 ; episode 2 (cut, no value fn): G3 = 4, G2 = 3 + .5*4 = 5
    np.testing.assert_allclose(g[:, 0], [2, 2, 5, 4])


def test_truncation_bootstraps_from_next_value_termination_does_not():
    r = col(1, 1, 1, 1)
    term = flags(F, T_, F, F)
    trunc = flags(F, F, F, T_)
    nv = col(100, 100, 100, 10)  # V(s_{t+1}); ignored except at the truncation
    g = est.reward_to_go(r, term, trunc, nv, gamma=0.9)
    # terminated at t=1: G1 = 1, G0 = 1.9 ; truncated at t=3: G3 = 1 + .9*10 = 10, G2 = 1 + .9*10 = 10
    np.testing.assert_allclose(g[:, 0], [1.9, 1.0, 10.0, 10.0])


def test_termination_wins_over_truncation_on_the_same_step():
    r = col(1, 1)
    term = flags(F, T_)
    trunc = flags(F, T_)
    nv = col(0, 50)  # V(s_1) = 0 within the episode; 50 would be V of the final state, if it were not terminal
    g = est.reward_to_go(r, term, trunc, nv, gamma=1.0)
    np.testing.assert_allclose(g[:, 0], [2, 1])
    a = est.gae(r, col(0, 0), nv, term, trunc, 1.0, 1.0)
    np.testing.assert_allclose(a[:, 0], [2, 1])


def test_interleaved_envs_never_leak_returns():
    # env 0 ends at t=0, env 1 runs on; env 1's rewards must not reach env 0's first episode and back.
    r = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
    term = np.array([[T_, F], [F, F], [F, T_]])
    trunc = np.array([[F, F], [F, F], [T_, F]])
    g = est.reward_to_go(r, term, trunc, None, gamma=1.0)
    np.testing.assert_allclose(g, [[1, 60], [5, 50], [3, 30]])
    ids = est.episode_ids(term, trunc)
    np.testing.assert_array_equal(ids, [[0, 2], [1, 2], [1, 2]])


def test_whole_episode_return_is_reinforce_weight():
    r = col(1, 2, 3, 4, 5)
    term = flags(F, T_, F, F, T_)
    trunc = flags(F, F, F, F, F)
    g = est.reward_to_go(r, term, trunc, None, gamma=1.0)
    psi = est.whole_episode_return(g, term, trunc)
    # episode returns: 1+2 = 3 (twice), 3+4+5 = 12 (three times)
    np.testing.assert_allclose(psi[:, 0], [3, 3, 12, 12, 12])


def test_gae_hand_computed():
    r = col(1, 1, 1)
    v = col(0.5, 0.5, 0.5)
    nv = col(0.5, 0.5, 2.0)
    term = flags(F, F, F)
    trunc = flags(F, F, T_)
    gamma, lam = 0.9, 0.5
    # deltas: 1 + .9*.5 - .5 = .95 (t=0,1), 1 + .9*2 - .5 = 2.3 (t=2, truncation bootstraps V=2)
    # A2 = 2.3; A1 = .95 + .45*2.3 = 1.985; A0 = .95 + .45*1.985 = 1.84325
    a = est.gae(r, v, nv, term, trunc, gamma, lam)
    np.testing.assert_allclose(a[:, 0], [1.84325, 1.985, 2.3])


def test_gae_lambda_one_is_reward_to_go_minus_values():
    rng = np.random.default_rng(0)
    T, N = 30, 4
    r = rng.normal(size=(T, N))
    v = rng.normal(size=(T, N))
    nv = np.vstack([v[1:], rng.normal(size=(1, N))])
    term = rng.random((T, N)) < 0.1
    trunc = (rng.random((T, N)) < 0.05) & ~term
    trunc[-1] |= ~term[-1]
    nv = np.where(term | trunc, rng.normal(size=(T, N)), nv)  # final observations differ from reset ones
    a = est.gae(r, v, nv, term, trunc, 0.97, 1.0)
    g = est.reward_to_go(r, term, trunc, nv, 0.97)
    np.testing.assert_allclose(a, g - v, atol=1e-12)


def test_gae_of_one_env_is_that_column_of_many_to_the_bit():
    # One env runs a Python-float loop, several envs a NumPy one: each env's advantages must not depend on which.
    rng = np.random.default_rng(1)
    T, N = 200, 3
    r, v = rng.normal(size=(T, N)).astype(np.float32), rng.normal(size=(T, N))
    nv = rng.normal(size=(T, N))
    term = rng.random((T, N)) < 0.05
    trunc = (rng.random((T, N)) < 0.03) & ~term
    together = est.gae(r, v, nv, term, trunc, 0.99, 0.95)
    for i in range(N):
        alone = est.gae(r[:, i:i + 1], v[:, i:i + 1], nv[:, i:i + 1], term[:, i:i + 1], trunc[:, i:i + 1], 0.99, 0.95)
        assert alone.dtype == together.dtype and np.array_equal(alone[:, 0], together[:, i])


def test_gae_lambda_zero_is_td_error():
    r = col(1, 2)
    v = col(3, 4)
    nv = col(4, 5)
    a = est.gae(r, v, nv, flags(F, F), flags(F, T_), 0.5, 0.0)
    np.testing.assert_allclose(a[:, 0], [1 + 2 - 3, 2 + 2.5 - 4])


def test_leave_one_out_mean_excludes_own_episode():
    psi = col(1, 1, 4, 4, 4)
    term = flags(F, T_, F, F, T_)
    trunc = flags(F, F, F, F, F)
    ids = est.episode_ids(term, trunc)
    b = est.leave_one_out_mean(psi, ids, np.ones_like(psi, dtype=bool))
    # steps of episode 0 see the mean of episode 1's steps (4); episode 1's see episode 0's (1)
    np.testing.assert_allclose(b[:, 0], [4, 4, 1, 1, 1])


def test_masked_steps_are_ignored():
    psi = np.array([[1.0, 5.0], [99.0, 7.0]])
    mask = np.array([[T_, T_], [F, T_]])
    term = np.array([[T_, F], [F, T_]])
    trunc = np.zeros_like(term)
    ids = est.episode_ids(term, trunc)
    b = est.leave_one_out_mean(psi, ids, mask)
    assert b[0, 0] == pytest.approx(6.0)  # mean of env 1's steps, the masked 99 left out
    n = est.normalize(psi, mask)
    assert n[mask].mean() == pytest.approx(0.0, abs=1e-12)
    assert n[mask].std() == pytest.approx(1.0, rel=1e-6)


def test_weights_composition():
    r = col(1, 2, 3)
    term = flags(F, F, T_)
    trunc = flags(F, F, F)
    m = np.ones_like(r, dtype=bool)
    v = col(1, 1, 1)
    psi, targets = est.weights("rtg", "value", r, term, trunc, m, 1.0, values=v, next_values=v)
    np.testing.assert_allclose(psi[:, 0], [5, 4, 2])
    np.testing.assert_allclose(targets[:, 0], [6, 5, 3])
    psi, _ = est.weights("reinforce", "none", r, term, trunc, m, 1.0)
    np.testing.assert_allclose(psi[:, 0], [6, 6, 6])
    psi, targets = est.weights("gae", "value", r, term, trunc, m, 1.0, 1.0, values=v, next_values=v)
    np.testing.assert_allclose(psi[:, 0], [5, 4, 2])
    with pytest.raises(ValueError):
        est.weights("gae", "value", r, term, trunc, m, 1.0)
