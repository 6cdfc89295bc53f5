"""Domain randomisation (robopg.randomization): draws that depend on neither the backend nor the order envs finish,
the same trajectories on both backends for the same draws, bit-exact resume, nothing changed without it, and
bad input answered with exit 2 naming the option."""

import numpy as np
import pytest
import torch

import robopg
from robopg import make_config
from robopg.config import ConfigError, parse_delay, parse_randomize, parse_start
from robopg.envs import make_vector_env
from robopg.metrics import read_csv
from robopg.physics import get_physics
from robopg.policies import make_policy
from robopg.randomization import Randomizer, make_randomizer
from robopg.rollout_worker import RolloutWorker
from robopg.sampler import Sampler
from robopg.trainer import TrainingInterrupted

from .conftest import tiny
from .test_training import _numbers, _same, interrupt_at

SPEC = "mass=0.7:1.3,friction=0.5:1.5:log,damping=0.8:1.2,gear=0.85:1.15"


def test_parse_specs():
    assert parse_randomize("mass=0.7:1.3, friction=0.5:2:log") == {
        "body_mass": (0.7, 1.3, "uniform"), "geom_friction": (0.5, 2.0, "log")}
    assert parse_randomize("") == {}
    assert parse_start("mass=1.5, friction=0.8") == [{"body_mass": 1.5, "geom_friction": 0.8}]
    assert parse_start("mass=1.5;mass=0.5,friction=2") == [{"body_mass": 1.5}, {"body_mass": 0.5, "geom_friction": 2}]
    assert parse_start("") == []
    for bad in ("weight=1.5", "mass", "mass=0", "mass=x", "mass=1.5:2", "mass=1,mass=2"):
        with pytest.raises(ValueError):
            parse_start(bad)
    assert parse_delay("0") == (0, 0) and parse_delay("0:2") == (0, 2) and parse_delay("3") == (3, 3)
    for bad in ("weight=1:2", "mass=1.3:0.7", "mass=0:1", "mass=-1:1", "mass=1", "mass=a:b", "mass=1:2:cubic",
                "mass=1:2,mass=1:3", "mass=1:inf"):
        with pytest.raises(ValueError):
            parse_randomize(bad)
    for bad in ("-1", "2:1", "x", "1:2:3"):
        with pytest.raises(ValueError):
            parse_delay(bad)


def test_draws_depend_on_neither_order_nor_grouping():
    venv = make_vector_env("Hopper-v5", 4, backend="native")
    a = Randomizer(SPEC, 0, 0, "0:2", 4, seed=7)
    b = Randomizer(SPEC, 0, 0, "0:2", 4, seed=7)
    a.start(venv, np.array([0, 1, 2, 3]))
    a.start(venv, np.array([2]))
    b.start(venv, np.array([3]))
    b.start(venv, np.array([2, 0, 1]))
    b.start(venv, np.array([2]))
    np.testing.assert_array_equal(a.factors, b.factors)
    np.testing.assert_array_equal(a.delay, b.delay)
    assert (a.factors[:, 0] >= 0.7).all() and (a.factors[:, 0] <= 1.3).all()
    assert (a.factors[:, 1] >= 0.5).all() and (a.factors[:, 1] <= 1.5).all()
    assert len(np.unique(a.factors[:, 0])) == 4          # each env its own draw
    # The factors reach the physics, as a (num_envs,) factor: every body's mass scaled alike.
    np.testing.assert_array_equal(get_physics(venv)["body_mass"], np.repeat(b.factors[:, :1], venv.model.nbody, 1))
    # Env index i of a run draws the same whichever sampler (Ray worker) holds it.
    c = Randomizer(SPEC, 0, 0, "0:2", 2, seed=7, first_env_index=2)
    c.start(venv, np.array([0, 1]))
    first = Randomizer(SPEC, 0, 0, "0:2", 4, seed=7)
    first.start(venv, np.arange(4))
    np.testing.assert_array_equal(c.factors, first.factors[2:])
    c.reseed(8)
    c.start(venv, np.array([0, 1]))
    assert not np.array_equal(c.factors, first.factors[2:])


def test_ramp_shrinks_the_same_draws_towards_the_nominal_robot():
    venv = make_vector_env("Hopper-v5", 4, backend="native")
    full = Randomizer(SPEC, 0, 0, "0:2", 4, seed=7)
    ramped = Randomizer(SPEC, 0, 0, "0:2", 4, seed=7, ramp_steps=1000)
    log = np.array([dist == "log" for _, _, dist in full.ranges.values()])

    def start_both():
        for r in (full, ramped):
            r.start(venv, np.arange(4))

    start_both()
    np.testing.assert_array_equal(ramped.factors, 1.0)         # step 0: the nominal robot
    np.testing.assert_array_equal(ramped.delay, full.delay)     # delays are not ramped
    ramped.advance(250)
    start_both()
    shrunk = np.where(log, np.exp(0.25 * np.log(full.factors)), 1.0 + 0.25 * (full.factors - 1.0))
    np.testing.assert_allclose(ramped.factors, shrunk, rtol=1e-12)
    assert np.abs(ramped.factors - 1).max() > 0.01              # a quarter of the range, not nothing
    ramped.advance(5000)                                        # past the ramp: today's draws, to the bit
    start_both()
    np.testing.assert_array_equal(ramped.factors, full.factors)


def _opening_after_1000_steps(delay, start=""):
    """Three randomisers of 4 Hopper envs (seed 7): open from the start; opening at env step 1000 at once; and
    widening over 1000 steps from there; with ``start_all(steps)``, which advances the late two to the run's env
    step ``steps`` and starts an episode in every env of all three."""
    venv = make_vector_env("Hopper-v5", 4, backend="native")
    full = Randomizer(SPEC, 0, 0, delay, 4, seed=7)
    late = Randomizer(SPEC, 0, 0, delay, 4, seed=7, after_steps=1000, start=start)
    late_ramped = Randomizer(SPEC, 0, 0, delay, 4, seed=7, ramp_steps=1000, after_steps=1000, start=start)

    def start_all(steps):
        for r in (late, late_ramped):
            r.advance(steps)
        for r in (full, late, late_ramped):
            r.start(venv, np.arange(4))

    return venv, full, late, late_ramped, start_all


def test_randomize_after_holds_the_nominal_robot_then_opens_the_ranges():
    venv, full, late, late_ramped, start_all = _opening_after_1000_steps("0:2")
    log = np.array([dist == "log" for _, _, dist in full.ranges.values()])
    start_all(0)
    start_all(999)                                              # the same draws made, the nominal robot kept
    for r in (late, late_ramped):
        np.testing.assert_array_equal(r.factors, 1.0)
        np.testing.assert_array_equal(r.delay, full.delay)      # delays are not held back
    start_all(1000)                                             # opened at once: the draws without it, to the bit
    np.testing.assert_array_equal(late.factors, full.factors)
    np.testing.assert_array_equal(late_ramped.factors, 1.0)     # ...or widening over the ramp from here
    start_all(1250)
    shrunk = np.where(log, np.exp(0.25 * np.log(full.factors)), 1.0 + 0.25 * (full.factors - 1.0))
    np.testing.assert_allclose(late_ramped.factors, shrunk, rtol=1e-12)
    np.testing.assert_array_equal(late.factors, full.factors)


def test_randomize_start_is_the_robot_before_the_ranges_open_and_the_ramp_widens_from_it():
    # damping and gear: the nominal 1
    venv, full, late, late_ramped, start_all = _opening_after_1000_steps("0", start="mass=1.25,friction=0.8")
    log = np.array([dist == "log" for _, _, dist in full.ranges.values()])
    robot = np.array([1.25, 0.8, 1.0, 1.0])
    start_all(0)
    for r in (late, late_ramped):
        np.testing.assert_allclose(r.factors, np.broadcast_to(robot, (4, 4)), rtol=1e-15)
    mass = get_physics(venv)["body_mass"]                         # the start robot is what the envs run
    nominal = make_vector_env("Hopper-v5", 1, backend="native")
    np.testing.assert_allclose(mass, 1.25 * np.broadcast_to(get_physics(nominal)["body_mass"], mass.shape))
    start_all(1000)
    np.testing.assert_array_equal(late.factors, full.factors)     # opened at once: the draws without it, to the bit
    start_all(1250)                                               # a quarter of the way from the start robot
    at = np.where(log, np.log(robot), robot)
    x = np.where(log, np.log(full.factors), full.factors)
    shrunk = np.where(log, np.exp(at + 0.25 * (x - at)), at + 0.25 * (x - at))
    np.testing.assert_allclose(late_ramped.factors, shrunk, rtol=1e-12)
    start_all(2000)
    np.testing.assert_array_equal(late_ramped.factors, full.factors)


def test_run_randomised_after_its_first_steps_resumes_to_the_same_numbers(tmp_path):
    kw = dict(randomize="mass=0.5:1.5,friction=0.5:2:log", randomize_after=1200, critic_obs="privileged",
              steps=2400, batch_size=400, checkpoint_every=100)
    contexts = []
    full = robopg.train(tiny("Hopper-v5", **kw), tmp_path / "full",
                        callbacks=[lambda t, ro, row: contexts.append((t.env_steps - ro.num_steps, ro.context))])
    for steps, context in contexts:
        if steps < 1200:  # a privileged critic's context: log factors, 0 at the nominal robot
            np.testing.assert_array_equal(context, 0.0)
    assert np.abs(contexts[-1][1]).max() > 0.1
    resumes_and_matters(full, kw, "randomize_after", 0, tmp_path, cut_at=2)


def test_several_start_robots_each_start_one_of_them_until_the_ranges_open():
    venv = make_vector_env("Hopper-v5", 8, backend="native")
    two = Randomizer(SPEC, 0, 0, "0", 8, seed=3, after_steps=1000, start="mass=1.25;friction=0.8,gear=0.9")
    robots = np.array([[1.25, 1.0, 1.0, 1.0], [1.0, 0.8, 1.0, 0.9]])
    seen = np.zeros(2, dtype=int)
    for _ in range(20):
        two.start(venv, np.arange(8))
        which = [int(np.flatnonzero(np.abs(robots - row).max(1) < 1e-12)[0]) for row in two.factors]
        seen += np.bincount(which, minlength=2)
    assert seen.min() > 40                                        # 160 starts, each robot about half of them
    fresh = [Randomizer(SPEC, 0, 0, "0", 8, seed=3, after_steps=a, start="mass=1.25;friction=0.8") for a in (0, 0)]
    fresh[1].start_at = fresh[1].start_at[:1]                     # at full width the start robots cost no draw
    for r in fresh:
        r.start(venv, np.arange(8))
    np.testing.assert_array_equal(fresh[0].factors, fresh[1].factors)


def test_a_start_robot_with_at_steps_joins_the_draw_from_that_env_step_on():
    venv = make_vector_env("Hopper-v5", 8, backend="native")
    staged = Randomizer(SPEC, 0, 0, "0", 8, seed=3, after_steps=1000, start="mass=1.25;friction=0.8,gear=0.9@500")
    alone = Randomizer(SPEC, 0, 0, "0", 8, seed=3, after_steps=1000, start="mass=1.25")
    robots = np.array([[1.25, 1.0, 1.0, 1.0], [1.0, 0.8, 1.0, 0.9]])
    for env_steps in (0, 499):                                   # before it joins: the first robot alone, and
        for r in (staged, alone):                                # no draw spent on choosing (the same streams)
            r.advance(env_steps)
            r.start(venv, np.arange(8))
        np.testing.assert_array_equal(staged.factors, alone.factors)
        np.testing.assert_array_equal(staged.factors, np.broadcast_to(robots[0], (8, 4)))
    seen = np.zeros(2, dtype=int)
    staged.advance(500)
    for _ in range(20):
        staged.start(venv, np.arange(8))
        seen += np.bincount([int(np.flatnonzero(np.abs(robots - row).max(1) < 1e-12)[0]) for row in staged.factors],
                            minlength=2)
    assert seen.min() > 40                                        # 160 starts, each robot about half of them
    # Every robot from step 0 ('@0' or no '@'): the list without a schedule, to the bit.
    plain, at0 = (Randomizer(SPEC, 0, 0, "0", 8, seed=3, after_steps=1000, start=s)
                  for s in ("mass=1.25;friction=0.8", "mass=1.25@0;friction=0.8@0"))
    for r in (plain, at0):
        r.start(venv, np.arange(8))
    np.testing.assert_array_equal(plain.factors, at0.factors)


def test_run_with_a_start_schedule_resumes_to_the_same_numbers(tmp_path):
    kw = dict(randomize="mass=0.5:1.5,friction=0.5:2:log", randomize_after=1200,
              randomize_start="mass=1.4;mass=0.6@400", critic_obs="privileged", steps=2400, batch_size=400,
              checkpoint_every=100)
    contexts = []
    full = robopg.train(tiny("Hopper-v5", **kw), tmp_path / "full",
                        callbacks=[lambda t, ro, row: contexts.append((t.env_steps - ro.num_steps, ro.context))])
    masses = {steps: set(np.round(np.exp(c[..., 0][np.abs(c[..., 1]) < 1e-7].astype(float)), 4).tolist())
              for steps, c in contexts}
    assert masses[0] == {1.4}                                     # the heavy robot alone before step 400...
    assert masses[400] == {1.4, 0.6} or masses[800] == {1.4, 0.6}  # ...then either (new episodes draw one)
    resumes_and_matters(full, kw, "randomize_start", "mass=1.4", tmp_path, cut_at=2)


def test_run_that_starts_on_another_robot_resumes_to_the_same_numbers(tmp_path):
    kw = dict(randomize="mass=0.5:1.5,friction=0.5:2:log", randomize_after=1200, randomize_start="mass=1.4",
              critic_obs="privileged", steps=2400, batch_size=400, checkpoint_every=100)
    contexts = []
    full = robopg.train(tiny("Hopper-v5", **kw), tmp_path / "full",
                        callbacks=[lambda t, ro, row: contexts.append((t.env_steps - ro.num_steps, ro.context))])
    for steps, context in contexts:
        if steps < 1200:  # the critic's context: log factors, the start robot's until the ranges open
            np.testing.assert_allclose(context[..., 0], np.float32(np.log(1.4)))
            np.testing.assert_array_equal(context[..., 1], 0.0)
    resumes_and_matters(full, kw, "randomize_start", "", tmp_path, cut_at=2)


def ramp_bound_holds(contexts, ramp_steps, after=0):
    """``contexts``: (env steps before the iteration, its rollout's context) per iteration, for --randomize
    "mass=0.5:1.5,friction=0.5:2:log" (ramped over ``ramp_steps`` from env step ``after``). Every episode in it
    started at a width no larger than the iteration's; returns each iteration's largest mass deviation from 1."""
    spread = []
    for steps, context in contexts:
        w = min(1.0, max(0, steps - after) / ramp_steps)
        factors = np.exp(context.astype(np.float64)).reshape(-1, 2)
        assert (np.abs(factors[:, 0] - 1) <= 0.5 * w + 1e-6).all(), (steps, w)
        assert (np.abs(context[..., 1]) <= w * np.log(2) + 1e-6).all(), (steps, w)
        spread.append(np.abs(factors[:, 0] - 1).max())
    assert spread[0] == 0.0
    return spread


@pytest.mark.parametrize("backend", ["native", "gymnasium"])
def test_ramped_run_widens_with_env_steps_and_resumes_to_the_same_numbers(tmp_path, backend):
    kw = dict(randomize="mass=0.5:1.5,friction=0.5:2:log", randomize_ramp=1600, critic_obs="privileged",
              env_backend=backend, steps=2400, batch_size=400, checkpoint_every=100)
    contexts = []
    full = robopg.train(tiny("Hopper-v5", **kw), tmp_path / "full",
                        callbacks=[lambda t, ro, row: contexts.append((t.env_steps - ro.num_steps, ro.context))])
    spread = ramp_bound_holds(contexts, 1600)
    assert spread[-1] > 0.25  # beyond the half-width range of env step 800
    resumes_and_matters(full, kw, "randomize_ramp", 0, tmp_path, cut_at=2)


def resumes_and_matters(full, kw, option, off, tmp_path, cut_at):
    """``full`` (trained with ``kw``) is what the same run gives when cut at iteration ``cut_at`` and resumed;
    ``option`` set to ``off`` gives other numbers; config.yaml records the option."""
    with pytest.raises(TrainingInterrupted):
        robopg.train(tiny("Hopper-v5", **kw), tmp_path / "cut", callbacks=[interrupt_at(cut_at)])
    _same(_numbers(full.run_dir), _numbers(robopg.resume(tmp_path / "cut").run_dir))
    other = robopg.train(tiny("Hopper-v5", **{**kw, option: off}), tmp_path / "off")
    assert _numbers(other.run_dir) != _numbers(full.run_dir)
    assert getattr(robopg.api.load_config(full.run_dir), option) == kw[option]


def test_nominal_fraction_of_starts_is_the_nominal_robot_and_costs_no_draw_without_it():
    # --randomize-nominal P: each start is the nominal robot with probability P (one uniform draw), else drawn.
    spec, p, starts = "mass=0.5:1.5,friction=0.5:2:log", 0.3, 4000
    mixed, plain = (Randomizer(spec, 0.0, 0.0, "0", 1, seed=7, nominal=q) for q in (p, 0.0))
    default = Randomizer(spec, 0.0, 0.0, "0", 1, seed=7)  # as before the option existed
    venv = make_vector_env("Hopper-v5", 1, backend="native")
    venv.reset(seed=0)
    rows, plain_rows = [], []
    for _ in range(starts):
        for r, out in ((mixed, rows), (plain, plain_rows)):
            r.start(venv, np.array([0]))
            out.append(r.factors[0].copy())
        default.start(venv, np.array([0]))
        np.testing.assert_array_equal(default.factors[0], plain_rows[-1])
    rows = np.array(rows)
    at_nominal = (rows == 1.0).all(axis=1)
    # Binomial count: within 4 standard deviations of starts * p (a false alarm about once in 16,000 runs).
    assert abs(at_nominal.sum() - starts * p) <= 4 * np.sqrt(starts * p * (1 - p)), at_nominal.sum()
    drawn = rows[~at_nominal]
    assert ((drawn[:, 0] >= 0.5) & (drawn[:, 0] <= 1.5) & (drawn[:, 1] >= 0.5) & (drawn[:, 1] <= 2.0)).all()
    assert not (np.array(plain_rows) == 1.0).all(axis=1).any()
    venv.close()
    # Both backends still agree to the bit, and the nominal starts show in the context (log-factors 0).
    native = same_on_both_backends(randomize_nominal=0.5)
    assert any((r.context == 0).all(axis=-1).any() for r in native)


@pytest.mark.parametrize("args", [["--randomize-nominal", "0.2"], ["--obs-noise", "0.1", "--randomize-nominal", "0.2"],
                                  ["--randomize", "mass=0.5:1.5", "--randomize-nominal", "1.5"]])
def test_randomize_nominal_needs_physics_ranges_and_a_fraction(cli, tmp_path, args):
    out = cli("train", "Hopper-v5", *args, "--run-dir", tmp_path / "r")
    assert out.returncode == 2 and "--randomize-nominal" in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert not (tmp_path / "r").exists()


def test_run_with_nominal_starts_resumes_to_the_same_numbers(tmp_path):
    kw = dict(randomize="mass=0.5:1.5,friction=0.5:1.5", randomize_nominal=0.4, critic_obs="privileged",
              steps=2400, batch_size=400, checkpoint_every=100)
    full = robopg.train(tiny("Hopper-v5", **kw), tmp_path / "full")
    resumes_and_matters(full, kw, "randomize_nominal", 0.0, tmp_path, cut_at=3)


def test_action_delay_and_noise():
    r = Randomizer("", 0.0, 0.0, "1", 2, seed=0)
    low, high = np.full(1, -1.0, np.float32), np.full(1, 1.0, np.float32)
    a0, a1 = np.array([[0.5], [0.25]], np.float32), np.array([[-0.5], [0.75]], np.float32)
    np.testing.assert_array_equal(r.act(a0, low, high), 0.0)          # first step of an episode: at rest
    np.testing.assert_array_equal(r.act(a1, low, high), a0)           # then one step late
    r.start(None, np.array([1]))                                        # env 1 starts a new episode
    np.testing.assert_array_equal(r.act(a0, low, high), [[-0.5], [0.0]])
    noisy = Randomizer("", 0.0, 10.0, "0", 2, seed=0).act(a0, low, high)
    assert noisy.dtype == np.float32 and (np.abs(noisy) <= 1).all() and not np.array_equal(noisy, a0)


def _rollouts(backend, batches=3, **kw):
    torch.manual_seed(0)
    c = make_config("Hopper-v5", randomize=SPEC, num_envs=4, batch_size=256, env_backend=backend, **kw)
    venv = make_vector_env("Hopper-v5", 4, backend=backend, obs_history=c.obs_history)
    policy = make_policy(c, venv.single_observation_space, venv.single_action_space)
    sampler = Sampler(venv, policy, 256, "steps", 3, "Hopper-v5", randomizer=make_randomizer(c, 4, 3, venv=venv))
    out = [sampler.collect() for _ in range(batches)]
    sampler.close()
    return out


def same_on_both_backends(**kw):
    """The rollouts of both backends, checked equal to the bit; returns the native ones."""
    native, gym = _rollouts("native", **kw), _rollouts("gymnasium", **kw)
    for n, g in zip(native, gym):
        for name in ("obs", "actions", "rewards", "terminated", "truncated", "next_obs", "context"):
            np.testing.assert_array_equal(getattr(n, name), getattr(g, name), err_msg=name)
    assert sum(len(n.episode_returns) for n in native) > 10  # many episode starts, each with new draws
    return native


def test_same_draws_same_trajectories_on_both_backends():
    native = same_on_both_backends(obs_noise=0.01, action_noise=0.05, action_delay="0:1")
    assert native[-1].context.shape == (64, 4, 5)  # 4 factors and the delay


def test_privileged_needs_randomize_and_no_randomize_means_no_randomizer():
    assert make_randomizer(make_config("Hopper-v5"), 4, 0) is None
    with pytest.raises(ConfigError, match="--critic-obs"):
        make_config("Hopper-v5", critic_obs="privileged").validate()
    make_config("Hopper-v5", critic_obs="privileged", randomize="mass=0.9:1.1").validate()


@pytest.mark.parametrize("backend", ["native", "gymnasium"])
def test_randomised_run_resumes_to_the_same_numbers(tmp_path, backend):
    kw = dict(randomize=SPEC, obs_noise=0.01, action_noise=0.02, action_delay="0:1", critic_obs="privileged",
              env_backend=backend, steps=2400, batch_size=400, checkpoint_every=100, normalize_rewards=True)
    full = robopg.train(tiny("Hopper-v5", **kw), tmp_path / "full")
    with pytest.raises(TrainingInterrupted):
        robopg.train(tiny("Hopper-v5", **kw), tmp_path / "cut", callbacks=[interrupt_at(3)])
    assert len(read_csv(tmp_path / "cut" / "metrics.csv")) == 3
    resumed = robopg.resume(tmp_path / "cut")
    _same(_numbers(full.run_dir), _numbers(resumed.run_dir))
    nominal = robopg.train(tiny("Hopper-v5", env_backend=backend, steps=2400, batch_size=400), tmp_path / "nom")
    assert _numbers(nominal.run_dir) != _numbers(full.run_dir)
    assert robopg.api.load_config(full.run_dir).randomize == SPEC  # recorded in config.yaml


def test_ray_worker_randomises_its_own_envs():
    # In-process workers (Ray runs each in its own process; here one at a time, as they share torch's RNG).
    c = tiny("Hopper-v5", randomize="mass=0.5:1.5", workers=2, envs_per_worker=2, batch_size=64)
    weights = None

    def run(index):
        nonlocal weights
        w = RolloutWorker(c.to_dict(), None, index, 32)
        weights = weights or w.policy.state_dict()
        rollout = w.collect(weights, 0)[0]
        w.close()
        assert rollout.rewards.shape == (16, 2)
        return w.sampler.randomizer.factors.copy()

    first, second, again = run(0), run(1), run(1)
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(again, second)  # deterministic per worker


def test_ray_worker_mixes_in_the_nominal_robot():
    # A worker builds its randomiser from the run's config: --randomize-nominal 1 makes every start nominal.
    c = tiny("Hopper-v5", randomize="mass=0.5:1.5", randomize_nominal=1.0, workers=2, envs_per_worker=2,
             batch_size=64)
    w = RolloutWorker(c.to_dict(), None, 1, 32)
    w.collect(w.policy.state_dict(), 0)
    w.close()
    assert w.sampler.randomizer.nominal == 1.0 and (w.sampler.randomizer.factors == 1.0).all()


@pytest.mark.parametrize("args,option", [
    (["--randomize", "weight=0.5:1.5"], "--randomize"),
    (["--randomize", "mass=1.5:0.5"], "--randomize"),
    (["--randomize", "mass=0:1"], "--randomize"),
    (["--randomize", "mass=-0.5:1"], "--randomize"),
    (["--action-delay", "-1"], "--action-delay"),
    (["--obs-noise", "-0.1"], "--obs-noise"),
    (["--critic-obs", "privileged"], "--critic-obs"),
    (["--critic-obs", "blind"], "--critic-obs"),
    (["--randomize-ramp", "1000"], "--randomize-ramp"),
    (["--randomize", "mass=0.5:1.5", "--critic-context-noise", "0.1"], "--critic-context-noise"),
    (["--randomize", "mass=0.5:1.5", "--critic-obs", "blind", "--critic-context-noise", "0.1"],
     "--critic-context-noise"),
    (["--randomize", "mass=0.5:1.5", "--critic-obs", "privileged", "--critic-context-noise", "-0.1"],
     "--critic-context-noise"),
    (["--randomize", "mass=0.5:1.5", "--randomize-ramp", "-5"], "--randomize-ramp"),
    (["--randomize", "mass=0.5:1.5", "--randomize-after", "-5"], "--randomize-after"),
    (["--obs-noise", "0.1", "--randomize-after", "1000"], "--randomize-after"),
    (["--randomize", "mass=0.5:1.5", "--steps", "1000", "--randomize-after", "1000"], "--randomize-after"),
    (["--randomize", "mass=0.5:1.5", "--randomize-start", "mass=1.5"], "--randomize-start"),
    (["--randomize", "mass=0.5:1.5", "--randomize-after", "500", "--randomize-start", "friction=1.5"],
     "--randomize-start"),
    (["--randomize", "mass=0.5:1.5", "--randomize-after", "500", "--randomize-start", "mass=-1"],
     "--randomize-start"),
    (["--randomize", "mass=0.5:1.5", "--randomize-after", "500", "--randomize-start", "mass"], "--randomize-start"),
    (["--randomize", "mass=0.5:1.5", "--randomize-after", "500", "--randomize-start", "mass=1.5;mass=0.5@x"],
     "--randomize-start"),
    (["--randomize", "mass=0.5:1.5", "--randomize-after", "500", "--randomize-start", "mass=1.5@-1"],
     "--randomize-start"),
    (["--randomize", "mass=0.5:1.5", "--randomize-after", "500", "--randomize-start", "mass=1.5@100"],
     "--randomize-start"),
    (["--randomize", "mass=0.5:1.5", "--randomize-after", "500", "--randomize-start", "mass=1.5;mass=0.5@500"],
     "--randomize-start"),
])
def test_bad_input_exits_2_naming_the_option(cli, tmp_path, args, option):
    out = cli("train", "Hopper-v5", *args, "--run-dir", tmp_path / "r")
    assert out.returncode == 2, out.stderr
    assert option in out.stderr and "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_randomize_on_an_env_without_physics_exits_2(cli, tmp_path):
    out = cli("train", "CartPole-v1", "--randomize", "mass=0.5:1.5", "--run-dir", tmp_path / "r")
    assert out.returncode == 2 and "--randomize" in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert not (tmp_path / "r").exists()
