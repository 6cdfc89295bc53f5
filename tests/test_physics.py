"""Per-env physics parameters (robopg.physics): the same factors give the same trajectories on the native and
Gymnasium backends, bit for bit; they really reach the physics; bad input is a clear error before anything
changes; env states and training checkpoints save and restore them."""

import pickle

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from robopg import make_config, physics
from robopg.checkpoint import load as load_checkpoint
from robopg.envs import EnvError, get_vector_state, set_vector_state
from robopg.native import SUPPORTED_IDS, make_native_vector_env
from robopg.trainer import Trainer

# Model fields mj_setConst derives from the parameters: both backends must hold the same values.
CONSTANTS = ("body_subtreemass", "body_invweight0", "dof_invweight0", "dof_M0", "actuator_acc0",
             "actuator_length0", "tendon_invweight0")


def _gym_vec(env_id, num_envs, max_episode_steps=None):
    kw = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
    return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync",
                        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP}, **kw)


def _random_factors(model, n, rng, low=0.6, high=1.5):
    return {name: rng.uniform(low, high, (n, *shape)) for name, shape in physics.param_shapes(model).items()}


def _gym_qpos_qvel(ref):
    return (np.array([e.unwrapped.data.qpos for e in ref.envs]), np.array([e.unwrapped.data.qvel for e in ref.envs]))


def _assert_same_models(nat, ref):
    for i, env in enumerate(ref.envs):
        mine, theirs = nat._batch.get_model(i), env.unwrapped.model
        for field in ("body_mass", "body_inertia", "geom_friction", "dof_damping", "dof_armature",
                      "actuator_gear", *CONSTANTS):
            np.testing.assert_array_equal(getattr(mine, field), getattr(theirs, field), err_msg=field)
        np.testing.assert_array_equal(mine.opt.gravity, theirs.opt.gravity)


def _step_both_exactly(ref, nat, action):
    g, n = ref.step(action), nat.step(action)
    qpos, qvel = _gym_qpos_qvel(ref)
    np.testing.assert_array_equal(nat.qpos, qpos)   # the physics state, bit for bit
    np.testing.assert_array_equal(nat.qvel, qvel)
    np.testing.assert_array_equal(n[1], g[1])       # rewards, bit for bit
    np.testing.assert_array_equal(n[2], g[2])
    np.testing.assert_array_equal(n[3], g[3])
    # Observations: 1e-9, as in test_native.py (sin/cos of Reacher and InvertedDoublePendulum may differ by an
    # ulp between NumPy builds); bit-identical on the pinned stack.
    np.testing.assert_allclose(n[0], g[0], rtol=0, atol=1e-9)
    return g, n


@pytest.mark.parametrize("env_id", SUPPORTED_IDS)
def test_same_factors_give_the_same_trajectories_on_both_backends(env_id):
    n, limit = 3, 25
    rng = np.random.default_rng(sum(map(ord, env_id)))
    ref, nat = _gym_vec(env_id, n, limit), make_native_vector_env(env_id, n, threads=2, max_episode_steps=limit)
    factors = _random_factors(nat.model, n, rng)
    physics.set_physics(ref, factors)
    physics.set_physics(nat, factors)
    for name, f in physics.get_physics(ref).items():
        np.testing.assert_array_equal(physics.get_physics(nat)[name], f)
        np.testing.assert_array_equal(f, factors[name])
    _assert_same_models(nat, ref)
    ref.reset(seed=5)
    nat.reset(seed=5)
    low, high = nat.single_action_space.low, nat.single_action_space.high
    ends = 0
    for t in range(70):
        if t == 40:
            # Mid-episode, some envs only, some parameters only: still the same, from the next step on.
            change = {"body_mass": rng.uniform(0.5, 2.0, (2, nat.model.nbody)), "gravity": rng.uniform(0.5, 1.5, 2),
                      "geom_friction": rng.uniform(0.2, 2.0, 2)}
            physics.set_physics(ref, change, ids=[2, 0])
            physics.set_physics(nat, change, ids=[2, 0])
            _assert_same_models(nat, ref)
        action = (rng.uniform(low, high, (n, low.size)) * 1.2).astype(np.float32)
        g, _ = _step_both_exactly(ref, nat, action)
        ends += int((g[2] | g[3]).sum())
    assert ends > 0  # resets under edited physics were compared too


@pytest.mark.parametrize("env_id", ["Humanoid-v5", "Hopper-v5", "Reacher-v5"])
def test_nominal_factors_are_the_nominal_model(env_id):
    # Setting every factor to 1 (which expands the batch's fields and runs mj_setConst) changes no bit.
    n = 2
    plain, ones = make_native_vector_env(env_id, n, threads=1), make_native_vector_env(env_id, n, threads=1)
    ref = _gym_vec(env_id, n)
    all_ones = {name: np.ones(n) for name in physics.PARAMS}
    ones.set_physics(all_ones)
    physics.set_physics(ref, all_ones)
    _assert_same_models(plain, ref)
    heavier = make_native_vector_env(env_id, 1, threads=1)
    heavier.set_physics({"body_mass": np.full(1, 2.0), "actuator_gear": np.full(1, 3.0)})
    scaled = heavier._batch.get_model(0)
    np.testing.assert_array_equal(scaled.body_mass, 2.0 * plain.model.body_mass)
    np.testing.assert_array_equal(scaled.body_inertia, 2.0 * plain.model.body_inertia)  # inertia follows mass
    np.testing.assert_array_equal(scaled.actuator_gear, 3.0 * plain.model.actuator_gear)
    for e in ref.envs:
        fresh = gym.make(env_id).unwrapped.model
        for field in CONSTANTS:
            np.testing.assert_array_equal(getattr(e.unwrapped.model, field), getattr(fresh, field))
    for env in (plain, ones, ref):
        env.reset(seed=1)
    rng = np.random.default_rng(0)
    for _ in range(30):
        a = rng.uniform(-1, 1, (n, plain.model.nu)).astype(np.float32)
        p, o = plain.step(a), ref.step(a)
        _step_native = ones.step(a)
        np.testing.assert_array_equal(_step_native[0], p[0])
        np.testing.assert_array_equal(_step_native[1], p[1])
        np.testing.assert_array_equal(o[1], p[1])


@pytest.mark.parametrize("backend", ["native", "gymnasium"])
def test_a_heavier_torso_changes_the_trajectory(backend):
    # Two envs with the same reset draws and actions; env 1's torso is 1.5x as heavy. Were the mass not to
    # reach the physics, the two trajectories would be identical.
    n = 2
    venv = make_native_vector_env("Humanoid-v5", n, threads=1) if backend == "native" else _gym_vec("Humanoid-v5", n)
    torso = mujoco.mj_name2id(gym.make("Humanoid-v5").unwrapped.model, mujoco.mjtObj.mjOBJ_BODY, "torso")
    mass = np.ones((n, 14))
    mass[1, torso] = 1.5
    physics.set_physics(venv, {"body_mass": mass})
    obs, _ = venv.reset(seed=[3, 3])
    np.testing.assert_array_equal(obs[0, :45], obs[1, :45])  # the same start (qpos, qvel)
    assert obs[0, 45 + 10 * 0] != obs[1, 45]  # cinert holds the torso's mass
    rng = np.random.default_rng(1)
    rewards = []
    for _ in range(10):
        a = np.repeat(rng.uniform(-0.4, 0.4, (1, 17)), n, axis=0).astype(np.float32)
        obs, r, term, trunc, _ = venv.step(a)
        assert not (term | trunc).any()
        rewards.append(r)
    rewards = np.array(rewards)
    qpos = venv.qpos if backend == "native" else _gym_qpos_qvel(venv)[0]
    assert np.abs(qpos[0] - qpos[1]).max() > 1e-3
    assert (rewards[:, 0] != rewards[:, 1]).all()


@pytest.mark.parametrize("name,factor", [("geom_friction", 0.1), ("dof_damping", 3.0), ("dof_armature", 3.0),
                                         ("actuator_gear", 1.5), ("gravity", 0.5), ("body_mass", 2.0)])
def test_every_parameter_reaches_the_physics(name, factor):
    # Hopper: its foot touches the floor (friction), its joints have damping and armature. Env 1 differs from
    # env 0 in one parameter only; the same reset draws and actions; native and Gymnasium agree.
    n = 2
    nat, ref = make_native_vector_env("Hopper-v5", n, threads=1), _gym_vec("Hopper-v5", n)
    factors = {name: np.array([1.0, factor])}
    nat.set_physics(factors)
    physics.set_physics(ref, factors)
    nat.reset(seed=[8, 8])
    ref.reset(seed=[8, 8])
    rng = np.random.default_rng(2)
    for _ in range(40):
        a = np.repeat(rng.uniform(-1, 1, (1, 3)), n, axis=0).astype(np.float32)
        _step_both_exactly(ref, nat, a)
    assert np.abs(nat.qpos[0] - nat.qpos[1]).max() > 1e-4, name


BAD = [
    ({"body_masss": np.ones(3)}, "unknown physics parameter 'body_masss'"),
    ({"body_mass": np.ones((3, 2))}, "'body_mass' must have shape"),
    ({"body_mass": np.ones(2)}, "'body_mass' must have shape"),
    ({"geom_friction": np.ones((3, 4))}, "'geom_friction' must have shape"),
    ({"body_mass": -np.ones(3)}, "'body_mass'.*> 0"),
    ({"body_mass": np.zeros(3)}, "'body_mass'.*> 0"),
    ({"geom_friction": np.array([1.0, -0.5, 1.0])}, "'geom_friction'.*>= 0"),
    ({"dof_damping": np.array([1.0, np.nan, 1.0])}, "'dof_damping'.*NaN"),
    ({"gravity": np.array([1.0, np.inf, 1.0])}, "'gravity'.*NaN or inf"),
    ({"actuator_gear": np.array(["a", "b", "c"])}, "'actuator_gear' must be numbers"),
    ([("body_mass", np.ones(3))], "must be a dict"),
]


@pytest.mark.parametrize("backend", ["native", "gymnasium"])
@pytest.mark.parametrize("params,message", BAD)
def test_bad_parameters_are_a_clear_error_and_change_nothing(backend, params, message):
    venv = make_native_vector_env("Hopper-v5", 3, threads=1) if backend == "native" else _gym_vec("Hopper-v5", 3)
    venv.reset(seed=0)
    before = physics.get_physics(venv)
    if isinstance(params, dict):
        params = {"gravity": np.full(3, 0.5), **params}  # a valid parameter beside the bad one is not set either
    with pytest.raises(EnvError, match=message):
        physics.set_physics(venv, params)
    for name, f in physics.get_physics(venv).items():
        np.testing.assert_array_equal(f, before[name])
    if backend == "gymnasium":
        assert all(e.unwrapped.model.opt.gravity[2] == -9.81 for e in venv.envs)
    else:
        assert not nat_expanded(venv)


def nat_expanded(nat):
    return nat._expanded


@pytest.mark.parametrize("ids", [[3], [0, 0], [[0, 1]], np.array([True, False])])
def test_bad_env_ids_are_an_error(ids):
    nat = make_native_vector_env("Hopper-v5", 3, threads=1)
    with pytest.raises(EnvError, match="ids|mask"):
        nat.set_physics({"gravity": np.ones(1)}, ids=ids)


def test_physics_needs_mujoco_sub_envs():
    venv = _gym_vec("CartPole-v1", 2)
    with pytest.raises(EnvError, match="MuJoCo"):
        physics.set_physics(venv, {"gravity": np.ones(2)})


@pytest.mark.parametrize("env_id", ["Humanoid-v5", "Hopper-v5"])
def test_native_state_restores_the_parameters(env_id):
    n, rng = 3, np.random.default_rng(4)
    a = make_native_vector_env(env_id, n, threads=1, max_episode_steps=30)
    factors = _random_factors(a.model, n, rng)
    a.set_physics(factors)
    a.reset(seed=2)
    actions = rng.uniform(-0.4, 0.4, (80, n, a.model.nu)).astype(np.float32)
    for act in actions[:10]:
        a.step(act)
    blob = pickle.dumps(a.get_state())
    expected = [a.step(act) for act in actions[10:]]
    b = make_native_vector_env(env_id, n, threads=2, max_episode_steps=30)  # nominal physics
    b.reset(seed=9)
    b.set_state(pickle.loads(blob))
    for name, f in b.get_physics().items():
        np.testing.assert_array_equal(f, factors[name])
    for act, e in zip(actions[10:], expected):
        got = b.step(act)
        for x, y in zip(got[:4], e[:4]):
            np.testing.assert_array_equal(x, y)
    # A state saved before physics parameters existed (no "physics") is of nominal envs.
    old = pickle.loads(blob)
    del old["physics"]
    b.set_state(old)
    for f in b.get_physics().values():
        np.testing.assert_array_equal(f, 1.0)
    c = make_native_vector_env(env_id, n, threads=1, max_episode_steps=30)
    c.set_state(old)
    np.testing.assert_array_equal(b.step(actions[0])[0], c.step(actions[0])[0])


def test_gymnasium_state_restores_the_parameters():
    n, rng = 3, np.random.default_rng(5)
    a = _gym_vec("Humanoid-v5", n, 30)
    factors = _random_factors(a.envs[0].unwrapped.model, n, rng)
    physics.set_physics(a, factors)
    a.reset(seed=2)
    actions = rng.uniform(-0.4, 0.4, (60, n, 17)).astype(np.float32)
    for act in actions[:10]:
        a.step(act)
    blob = pickle.dumps(get_vector_state(a))
    expected = [a.step(act) for act in actions[10:]]
    b = _gym_vec("Humanoid-v5", n, 30)
    physics.set_physics(b, {"gravity": np.full(n, 2.0)})  # other parameters, to be replaced
    b.reset(seed=7)
    set_vector_state(b, pickle.loads(blob))
    for name, f in physics.get_physics(b).items():
        np.testing.assert_array_equal(f, factors[name])
    for ea, eb in zip(a.envs, b.envs):
        for field in ("body_mass", "body_inertia", "geom_friction", "actuator_gear", *CONSTANTS):
            np.testing.assert_array_equal(getattr(eb.unwrapped.model, field), getattr(ea.unwrapped.model, field))
    for act, e in zip(actions[10:], expected):
        got = b.step(act)
        for x, y in zip(got[:4], e[:4]):
            np.testing.assert_array_equal(x, y)
    # A nominal env's state restores the nominal model into an edited env.
    fresh = _gym_vec("Humanoid-v5", n, 30)
    fresh.reset(seed=2)
    set_vector_state(b, get_vector_state(fresh))
    for eb, ef in zip(b.envs, fresh.envs):
        for field in ("body_mass", "geom_friction", *CONSTANTS):
            np.testing.assert_array_equal(getattr(eb.unwrapped.model, field), getattr(ef.unwrapped.model, field))
        np.testing.assert_array_equal(eb.unwrapped.model.opt.gravity, ef.unwrapped.model.opt.gravity)


@pytest.mark.parametrize("backend", ["native", "gymnasium"])
def test_training_checkpoint_restores_the_parameters(backend, tmp_path):
    config = make_config("Hopper-v5", num_envs=4, batch_size=256, steps=10_000, tensorboard=False, env_backend=backend)
    factors = {"body_mass": np.linspace(0.8, 1.2, 4), "geom_friction": np.full(4, 0.7), "gravity": np.full(4, 0.9)}
    first = Trainer(config, tmp_path / "a")
    physics.set_physics(first.venv, factors)
    first.step()
    first.save_checkpoint()
    expected = first.sampler.collect()
    first.close()
    second = Trainer(config, tmp_path / "b")
    second.load_checkpoint(load_checkpoint(tmp_path / "a" / "checkpoints" / "latest.pt"))
    got = physics.get_physics(second.venv)
    np.testing.assert_array_equal(got["body_mass"], np.repeat(factors["body_mass"][:, None], 5, axis=1))
    np.testing.assert_array_equal(got["gravity"], 0.9)
    np.testing.assert_array_equal(got["dof_damping"], 1.0)
    rollout = second.sampler.collect()
    np.testing.assert_array_equal(rollout.rewards, expected.rewards)
    second.close()
