"""The native backend is Gymnasium v5, only faster: the same observations, rewards, episode ends, time
limits, reset distributions (the same draws, seed for seed) and SAME_STEP autoreset; exact save/restore;
clear errors on bad actions and unsupported ids."""

import os
import pickle
import time

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import robopg
from robopg.envs import EnvError, make_vector_env, resolve_backend
from robopg.native import SUPPORTED_IDS, make_native_vector_env

TASKS = ["InvertedPendulum-v5", "InvertedDoublePendulum-v5", "HalfCheetah-v5", "Hopper-v5", "Walker2d-v5",
         "Ant-v5", "Humanoid-v5", "HumanoidStandup-v5", "Swimmer-v5", "Reacher-v5", "Pusher-v5"]
# Tasks that never terminate (Gymnasium v5 returns terminated=False always): only time limits end them.
NEVER_TERMINATE = {"HalfCheetah-v5", "HumanoidStandup-v5", "Swimmer-v5", "Reacher-v5", "Pusher-v5"}

# Per task: a time limit short enough that some envs reach it before they fall (None: the registered
# 1000 steps, which HalfCheetah, never terminating, reaches), and how many control steps to compare.
EPISODES = {"InvertedPendulum-v5": (15, 300), "InvertedDoublePendulum-v5": (6, 300), "Hopper-v5": (50, 300),
            "Walker2d-v5": (50, 300), "HalfCheetah-v5": (None, 1010), "Ant-v5": (60, 300),
            "Humanoid-v5": (22, 200), "HumanoidStandup-v5": (80, 200), "Swimmer-v5": (100, 250),
            "Reacher-v5": (None, 120), "Pusher-v5": (None, 220)}
# Each env gets its own action scale: 0 (falls slowly, reaches the time limit), small, large, and beyond
# the control range (MuJoCo clamps ctrl; the control cost sees the raw action, as in Gymnasium).
SCALES = np.array([0.0, 0.05, 0.5, 1.3])


# Constructor arguments the native tasks also reproduce (Task.options), each run through the same checks.
OPTIONS = [("Ant-v5", {"include_cfrc_ext_in_observation": False})]


def _gym_vec(env_id, num_envs, max_episode_steps=None, env_kwargs=None):
    kw = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
    return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync",
                        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP}, **kw, **(env_kwargs or {}))



def _step_both(ref, nat, action):
    """Step Gymnasium and native with the same action; their results must agree to 1e-9."""
    g, n = ref.step(action), nat.step(action)
    np.testing.assert_allclose(n[0], g[0], rtol=0, atol=1e-9)
    np.testing.assert_allclose(n[1], g[1], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(n[2], g[2])
    np.testing.assert_array_equal(n[3], g[3])
    return g, n

def test_the_tasks_are_supported_and_auto_picks_native():
    assert set(TASKS) <= set(SUPPORTED_IDS)
    for env_id in SUPPORTED_IDS:
        assert resolve_backend(env_id, "auto") == "native"
    assert resolve_backend("CartPole-v1", "auto") == "gymnasium"
    assert resolve_backend("Hopper-v5", "gymnasium") == "gymnasium"
    for env_id, env_kwargs in OPTIONS:
        assert resolve_backend(env_id, "auto", env_kwargs) == "native"
        assert resolve_backend(env_id, "native", env_kwargs) == "native"
    # any other argument is Gymnasium's: auto picks it, native names the argument
    assert resolve_backend("Ant-v5", "auto", {"ctrl_cost_weight": 0.1}) == "gymnasium"
    assert resolve_backend("Hopper-v5", "auto", {"forward_reward_weight": 2}) == "gymnasium"
    with pytest.raises(EnvError, match="does not take 'ctrl_cost_weight'.*include_cfrc_ext_in_observation"):
        resolve_backend("Ant-v5", "native", {"ctrl_cost_weight": 0.1, "include_cfrc_ext_in_observation": False})
    with pytest.raises(EnvError, match="include_cfrc_ext_in_observation must be True or False"):
        make_native_vector_env("Ant-v5", 1, env_kwargs={"include_cfrc_ext_in_observation": "no"})
    assert resolve_backend("Ant-v5", "auto", {"include_cfrc_ext_in_observation": "no"}) == "gymnasium"


@pytest.mark.parametrize("env_id,env_kwargs", [(e, None) for e in TASKS] + OPTIONS)
def test_native_steps_like_gymnasium(env_id, env_kwargs):
    # Bound: 1e-9 absolute. On the pinned stack the two are bit-identical (both run the same mj_step on the
    # same states, and tasks.py keeps Gymnasium's order of operations); the bound leaves room for a NumPy
    # whose SIMD sin/cos differ by an ulp between a 2-element and an [N, 2] array (IDP's observation).
    limit, steps = EPISODES[env_id]
    n = len(SCALES)
    ref = _gym_vec(env_id, n, limit, env_kwargs)
    nat = make_native_vector_env(env_id, n, threads=2, max_episode_steps=limit, env_kwargs=env_kwargs)
    assert nat.single_observation_space == ref.single_observation_space
    assert nat.single_action_space == ref.single_action_space
    obs_g, _ = ref.reset(seed=7)
    obs_n, _ = nat.reset(seed=7)
    np.testing.assert_allclose(obs_n, obs_g, rtol=0, atol=1e-9)  # the same reset draws, seed for seed
    low, high = nat.single_action_space.low, nat.single_action_space.high
    rng = np.random.default_rng(0)
    terminations = truncations = 0
    for _ in range(steps):
        action = (rng.uniform(low, high, (n, low.size)) * SCALES[:, None]).astype(np.float32)
        (og, rg, tg, ug, ig), (on, rn, tn, un, info_n) = _step_both(ref, nat, action)
        ended = tg | ug
        assert ("_final_obs" in info_n) == ended.any()
        if ended.any():
            np.testing.assert_array_equal(info_n["_final_obs"], ig["_final_obs"])
            for i in np.flatnonzero(ended):
                np.testing.assert_allclose(info_n["final_obs"][i], ig["final_obs"][i], rtol=0, atol=1e-9)
        terminations += int(tg.sum())
        truncations += int(ug.sum())
    if env_id not in NEVER_TERMINATE:
        assert terminations > 0
    else:
        assert terminations == 0
    assert truncations > 0
    ref.close()
    nat.close()


@pytest.mark.parametrize("env_id", TASKS)
def test_native_steps_like_gymnasium_from_extreme_states(env_id):
    # Random episodes never reach some branches of the formulas: velocities clipped at +-10 in the
    # observations, Hopper's |state| < 100 health check, the cart of InvertedDoublePendulum pressing
    # against its slider limit (its constraint force is in the observation). Start both backends there.
    n = 4
    ref, nat = _gym_vec(env_id, n), make_native_vector_env(env_id, n, threads=1)
    ref.reset(seed=3)
    nat.reset(seed=3)
    rng = np.random.default_rng(4)
    qpos = nat.qpos
    qvel = nat.qvel + rng.normal(0, 12, nat.qvel.shape)
    if env_id == "InvertedDoublePendulum-v5":
        qpos[:, 0] = [0.97, -0.97, 0.99, -0.99]
        qvel[:, 0] = [4.0, -4.0, 1.0, -1.0]   # driving the cart into the limits
    if env_id == "Hopper-v5":
        qvel[0] = 0.0
        qvel[0, 0] = 150.0                   # sliding fast, upright: unhealthy by the state range alone
    for i in range(n):
        ref.envs[i].unwrapped.set_state(qpos[i], qvel[i])
    nat.set_joint_state(qpos, qvel)
    low, high = nat.single_action_space.low, nat.single_action_space.high
    seen = []
    for _ in range(40):
        action = rng.uniform(low, high, (n, low.size)).astype(np.float32)
        (og, rg, tg, ug, ig), (on, rn, tn, un, info_n) = _step_both(ref, nat, action)
        seen += [on, info_n["final_obs"][info_n["_final_obs"]]] if info_n else [on]
    seen = np.concatenate(seen)
    if env_id == "InvertedDoublePendulum-v5":
        assert (seen[:, 8] != 0).any()           # the slider limit's force reached the observation
    if env_id in ("InvertedDoublePendulum-v5", "Hopper-v5", "Walker2d-v5"):
        assert (np.abs(seen) == 10.0).any()       # some velocity was clipped
    if env_id == "Ant-v5":
        forces = seen[:, 27:]
        assert (np.abs(forces) == 1.0).any() and ((forces != 0) & (np.abs(forces) < 1)).any()  # clipped, and not
    if env_id in ("Humanoid-v5", "HumanoidStandup-v5"):
        assert (seen[:, -78:] != 0).any()        # contact forces (cfrc_ext) reached the observation
        assert (seen[:, -95:-78] != 0).any()     # and the actuator forces


def test_float64_actions_give_the_same_rewards_as_gymnasium():
    # The control cost follows the action's dtype in Gymnasium; float64 actions must match too.
    ref, nat = _gym_vec("HalfCheetah-v5", 2), make_native_vector_env("HalfCheetah-v5", 2, threads=1)
    ref.reset(seed=1)
    nat.reset(seed=1)
    rng = np.random.default_rng(3)
    for _ in range(20):
        a = rng.uniform(-1, 1, (2, 6))
        _, rg, *_ = ref.step(a)
        _, rn, *_ = nat.step(a)
        np.testing.assert_allclose(rn, rg, rtol=0, atol=1e-12)


@pytest.mark.parametrize("env_id", TASKS)
def test_reset_distribution_matches_gymnasium(env_id):
    # Different seeds on each side, so this compares distributions, not draws: per coordinate, the means
    # agree within 5 standard errors and the stds within 5 standard errors of a std (2n samples each).
    n, rounds = 200, 5
    nat = make_native_vector_env(env_id, n, threads=1)
    native = []
    for r in range(rounds):
        nat.reset(seed=1000 + r * n)
        native.append(np.concatenate([nat.qpos, nat.qvel], axis=1))
    native = np.concatenate(native)
    env = gym.make(env_id).unwrapped
    ref = []
    for s in range(n * rounds):
        env.reset(seed=500_000 + s)
        ref.append(np.concatenate([env.data.qpos, env.data.qvel]))
    ref = np.array(ref)
    m = len(ref)
    assert native.shape == ref.shape
    se_mean = np.sqrt(native.var(0) / m + ref.var(0) / m)
    assert (np.abs(native.mean(0) - ref.mean(0)) <= 5 * se_mean + 1e-12).all()
    se_std = np.sqrt(native.var(0) / (2 * m) + ref.var(0) / (2 * m))
    assert (np.abs(native.std(0) - ref.std(0)) <= 5 * se_std + 1e-12).all()
    # The same coordinates are noised (Reacher's target velocity and Pusher's goal are not).
    np.testing.assert_array_equal(native.std(0) > 0, ref.std(0) > 0)
    assert (native.std(0) > 0).mean() > 0.4  # Pusher: 9 of 22


def test_same_step_autoreset_returns_reset_obs_and_final_obs():
    env = make_vector_env("InvertedPendulum-v5", 3, backend="native", threads=1)
    assert env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    env.reset(seed=0)
    push = np.full((3, 1), 3.0, dtype=np.float32)
    for _ in range(100):
        obs, reward, terminated, truncated, info = env.step(push)
        if terminated.any():
            break
    else:
        pytest.fail("pushing at full force never toppled the pendulum")
    for i in range(3):
        if terminated[i]:
            assert info["_final_obs"][i]
            assert abs(info["final_obs"][i][1]) > 0.2       # the final observation is the fallen pole
            assert np.abs(obs[i]).max() <= 0.01            # the returned observation is a fresh reset
            assert reward[i] == 0.0                        # v5: the terminating step earns nothing
        else:
            assert not info["_final_obs"][i] and reward[i] == 1.0


def test_reset_mask_and_seed_lists():
    env = make_native_vector_env("Hopper-v5", 3, threads=1)
    obs0, _ = env.reset(seed=[4, 5, 6])
    again, _ = make_native_vector_env("Hopper-v5", 3, threads=1).reset(seed=4)
    np.testing.assert_array_equal(obs0, again)  # an int seed s means seeds s, s+1, s+2
    moved, *_ = env.step(np.ones((3, 3), np.float32))
    obs1, _ = env.reset(options={"reset_mask": np.array([False, True, False])})
    np.testing.assert_array_equal(obs1[[0, 2]], moved[[0, 2]])
    assert not np.array_equal(obs1[1], moved[1])
    with pytest.raises(ValueError):
        env.reset(seed=[1, 2])


@pytest.mark.parametrize("bad,why", [
    (np.zeros((3, 4), np.float32), "shape"),
    (np.zeros(3, np.float32), "shape"),
    (np.zeros((2, 3), np.float32), "shape"),
    (np.array([[0, 0, 0], [0, np.nan, 0], [0, 0, 0]], np.float32), "non-finite"),
    (np.array([[0, 0, np.inf], [0, 0, 0], [0, 0, 0]], np.float64), "non-finite"),
    (np.array([["a", "b", "c"]] * 3), "numbers"),
])
def test_bad_actions_are_a_clear_error_and_do_not_step(bad, why):
    env = make_native_vector_env("Hopper-v5", 3, threads=1)
    env.reset(seed=0)
    before = env.get_state()
    with pytest.raises(EnvError, match=why):
        env.step(bad)
    after = env.get_state()
    np.testing.assert_array_equal(before["state"], after["state"])
    np.testing.assert_array_equal(before["steps"], after["steps"])


def test_unsupported_id_under_native_backend_exits_2(cli, tmp_path):
    out = cli("train", "CartPole-v1", "--env-backend", "native", "--run-dir", tmp_path / "r")
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert "--env-backend gymnasium" in out.stderr
    for env_id in SUPPORTED_IDS:
        assert env_id in out.stderr
    assert not (tmp_path / "r").exists()
    with pytest.raises(EnvError, match="gymnasium"):
        make_native_vector_env("Humanoid-v4", 2)


@pytest.mark.parametrize("env_id", ["Hopper-v5", "InvertedDoublePendulum-v5", "HalfCheetah-v5", "Ant-v5",
                                    "Humanoid-v5", "Reacher-v5", "Pusher-v5"])
def test_saved_state_restores_exactly(env_id):
    # Through a pickle, into an env that has run elsewhere since: the continuation is bit-identical,
    # including the time-limit counters (a 50-step limit) and the resets drawn from the saved generators.
    n, limit = 4, 50
    rng = np.random.default_rng(2)
    actions = rng.uniform(-1, 1, (300, n, make_native_vector_env(env_id, 1).model.nu)).astype(np.float32)
    a = make_native_vector_env(env_id, n, threads=1, max_episode_steps=limit)
    a.reset(seed=11)
    for act in actions[:37]:
        a.step(act)
    blob = pickle.dumps(a.get_state())
    expected = [a.step(act) for act in actions[37:]]
    b = make_native_vector_env(env_id, n, threads=2, max_episode_steps=limit)
    b.reset(seed=99)
    b.step(actions[0])
    b.set_state(pickle.loads(blob))
    ended = 0
    for act, (oe, re, te, ue, _) in zip(actions[37:], expected):
        ob, rb, tb, ub, _ = b.step(act)
        np.testing.assert_array_equal(ob, oe)
        np.testing.assert_array_equal(rb, re)
        np.testing.assert_array_equal(tb, te)
        np.testing.assert_array_equal(ub, ue)
        ended += int((te | ue).sum())
    assert ended > 0  # resets after the restore were compared too
    with pytest.raises(EnvError):
        make_native_vector_env(env_id, n + 1).set_state(pickle.loads(blob))


def test_idle_step_threads_leave_the_cores_to_torch():
    # Env stepping and torch alternate in the training loop; that only avoids oversubscription if
    # MuJoCo's thread pool sleeps (rather than spins) between calls.
    env = make_native_vector_env("HalfCheetah-v5", 8, threads=2)
    env.reset(seed=0)
    for _ in range(20):
        env.step(np.zeros((8, 6), np.float32))
    t0 = os.times()
    time.sleep(0.5)
    t1 = os.times()
    assert (t1.user + t1.system) - (t0.user + t0.system) < 0.1


def test_policy_trained_on_native_evaluates_the_same_on_gymnasium(tmp_path):
    # Trained only part way, so that returns vary from episode to episode and a difference between the
    # backends would show.
    config = robopg.make_config("InvertedPendulum-v5", tensorboard=False, env_backend="native", steps=24_000)
    run = robopg.train(config, tmp_path / "run")
    assert robopg.load_config(run.run_dir).env_backend == "native"
    policy = robopg.load(run.run_dir)
    native = robopg.evaluate(policy, "InvertedPendulum-v5", episodes=16, seed=10_000, backend="native")
    same_seed = robopg.evaluate(policy, "InvertedPendulum-v5", episodes=16, seed=10_000, backend="gymnasium")
    other_seed = robopg.evaluate(policy, "InvertedPendulum-v5", episodes=16, seed=20_000, backend="gymnasium")
    assert native["mean_return"] > 30, native  # it learned something (an untrained policy gets ~5-10)
    assert native["std_return"] > 0
    # The same seeds give the same reset draws, physics and policy actions: the same episodes.
    assert abs(native["mean_return"] - same_seed["mean_return"]) <= 1e-9 * native["mean_return"]
    # Other episodes: the same return within noise (3 standard errors of the difference of two means).
    se = np.sqrt((native["std_return"] ** 2 + other_seed["std_return"] ** 2) / 16)
    assert abs(native["mean_return"] - other_seed["mean_return"]) <= 3 * se, (native, other_seed)


def test_body_ids_of_reacher_and_pusher_formulas():
    from robopg.native import tasks

    reacher = make_native_vector_env("Reacher-v5", 1).model
    assert (reacher.body("fingertip").id, reacher.body("target").id) == (tasks.REACHER_FINGERTIP, tasks.REACHER_TARGET)
    pusher = make_native_vector_env("Pusher-v5", 1).model
    assert (pusher.body("tips_arm").id, pusher.body("object").id, pusher.body("goal").id) == (
        tasks.PUSHER_TIPS_ARM, tasks.PUSHER_OBJECT, tasks.PUSHER_GOAL)


@pytest.mark.parametrize("env_id", ["Humanoid-v5", "Reacher-v5", "Pusher-v5"])
def test_policy_evaluates_the_same_on_both_backends(env_id, tmp_path):
    # A briefly trained policy (its actions depend on the observations), 8 seeded episodes per backend.
    config = robopg.make_config(env_id, tensorboard=False, env_backend="native", steps=1024, num_envs=4,
                                batch_size=512)
    policy = robopg.load(robopg.train(config, tmp_path / "run").run_dir)
    native = robopg.evaluate(policy, env_id, episodes=8, seed=123, backend="native")
    gymnasium = robopg.evaluate(policy, env_id, episodes=8, seed=123, backend="gymnasium")
    assert native["episodes"] == gymnasium["episodes"] == 8
    assert native["std_return"] > 0
    assert abs(native["mean_return"] - gymnasium["mean_return"]) <= 1e-9 * abs(native["mean_return"])
