"""Environments: ids and backends, SAME_STEP vector envs, and exact state capture for resume."""

import gymnasium as gym
import numpy as np
import pytest

from robopg.envs import (
    EnvError,
    check_env_id,
    get_env_state,
    make_vector_env,
    native_ids,
    resolve_backend,
    set_env_state,
)


def test_mujoco_state_roundtrip_is_bit_exact():
    env = gym.make("Hopper-v5")
    env.reset(seed=1)
    rng = np.random.default_rng(0)
    for _ in range(37):
        env.step(rng.uniform(-1, 1, 3))
    blob = get_env_state(env)
    actions = rng.uniform(-1, 1, (50, 3))
    ref = [env.step(a) for a in actions]
    other = gym.make("Hopper-v5")
    other.reset(seed=99)
    set_env_state(other, blob)
    for a, (o, r, te, tr, _) in zip(actions, ref):
        o2, r2, te2, tr2, _ = other.step(a)
        np.testing.assert_array_equal(o, o2)
        assert (r, te, tr) == (r2, te2, tr2)


def test_unknown_id_names_close_matches():
    with pytest.raises(EnvError, match="Hopper-v5"):
        check_env_id("Hoper-v5")


def test_native_backend_refuses_ids_it_does_not_reproduce():
    with pytest.raises(EnvError, match="--env-backend gymnasium"):
        resolve_backend("CartPole-v1", "native")
    assert "Hopper-v5" in native_ids()


def test_vector_envs_are_same_step():
    venv = make_vector_env("CartPole-v1", 2)
    try:
        assert venv.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    finally:
        venv.close()
