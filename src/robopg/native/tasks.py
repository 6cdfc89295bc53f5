"""The Gymnasium v5 MuJoCo tasks as vectorised formulas: observations, rewards, health checks, reset noise.

Each formula is Gymnasium's (``gymnasium/envs/mujoco/*_v5.py``, default constructor arguments) rewritten
over a batch: rows are envs. The order of floating-point operations follows Gymnasium's so that the
results are bit-identical, not merely close: e.g. ``(forward + healthy) - ctrl_cost``, and the control
cost is computed in the dtype of the action as given (float32 actions give a float32 cost in Gymnasium,
since NumPy 2 keeps a Python float times a float32 scalar in float32).

``Fields`` holds what a formula may read, as Gymnasium's ``self.data`` would show it right after
``mj_step``: ``qpos`` and ``qvel`` are the new state; the ``derived`` fields (``site_xpos``,
``qfrc_constraint``...) come from MuJoCo's last evaluation inside that step, exactly as ``self.data``
holds them after ``mj_step`` (one substep behind for Euler, the last stage for RK4).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np


@dataclass
class Fields:
    """Per-env MuJoCo arrays, rows are envs (live views into the batch's state rows and outputs)."""

    qpos: np.ndarray
    qvel: np.ndarray
    derived: dict[str, np.ndarray]
    # per-env MjModel values a formula reads (Task.model_fields), e.g. body_mass [N, nbody]
    model: dict[str, np.ndarray] = field(default_factory=dict)

    def take(self, ids: np.ndarray) -> Fields:
        return Fields(self.qpos[ids], self.qvel[ids], {k: v[ids] for k, v in self.derived.items()},
                      {k: v[ids] for k, v in self.model.items()})


# observe(fields) -> obs [N, obs_dim] float64
Observe = Callable[[Fields], np.ndarray]
# outcome(fields, x_velocity [N], action [N, nu]) -> (reward [N] float64, terminated [N] bool), where x_velocity is
# Gymnasium's (x_after - x_before) / dt of the task's x_position (the step reads x_after once, for this and for
# the next step's x_before)
Outcome = Callable[[Fields, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
# reset_noise(rng, init_qpos, init_qvel) -> (qpos, qvel): one env's draws, in Gymnasium's order
ResetNoise = Callable[[np.random.Generator, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _qpos_x(f: Fields) -> np.ndarray:
    return f.qpos[:, 0]


@dataclass(frozen=True)
class Task:
    env_id: str
    xml_file: str          # in gymnasium/envs/mujoco/assets/
    frame_skip: int
    obs_dim: int
    observe: Observe
    outcome: Outcome
    reset_noise: ResetNoise
    # MjData fields the formulas read besides qpos and qvel; those in POST_CONSTRAINT come from
    # mj_rnePostConstraint, which Gymnasium's MujocoEnv runs after every mj_step
    derived: tuple[str, ...] = ()
    # the x position Gymnasium reads before and after a step for the forward reward
    x_position: Callable[[Fields], np.ndarray] = _qpos_x
    # MjModel fields the formulas read, per env (they may differ by env: robopg.physics), as 'opt.<name>' for
    # MjOption fields
    model_fields: tuple[str, ...] = ()
    # Constructor arguments of the Gymnasium class this task also reproduces: name -> (task, value) -> the
    # task built with that value (ValueError for a value it does not reproduce); any other argument means
    # Gymnasium's env.
    options: Mapping[str, Callable[[Task, Any], Task]] = field(default_factory=dict, compare=False)

    def with_options(self, env_kwargs: Mapping[str, Any] | None) -> Task:
        """This task as ``gym.make(env_id, **env_kwargs)`` builds it; KeyError naming an argument it cannot
        reproduce, ValueError for a value it cannot."""
        task = self
        for name, value in (env_kwargs or {}).items():
            if name not in self.options:
                raise KeyError(name)
            task = self.options[name](task, value)
        return task


# (cacc and cfrc_int would need each env's own gravity in the model that call reads; cfrc_ext does not.)
POST_CONSTRAINT = frozenset({"cfrc_ext"})


def _ctrl_cost(weight: float, action: np.ndarray) -> np.ndarray:
    # Gymnasium: weight * np.sum(np.square(action)), per env, in the action's own dtype. (np.add.reduce is what
    # ndarray.sum calls, without its Python wrapper: these formulas run once a step.)
    return weight * np.add.reduce(np.square(action), axis=1)


def _uniform_uniform(scale: float) -> ResetNoise:
    def noise(rng, qpos0, qvel0):
        qpos = qpos0 + rng.uniform(low=-scale, high=scale, size=qpos0.size)
        qvel = qvel0 + rng.uniform(low=-scale, high=scale, size=qvel0.size)
        return qpos, qvel
    return noise


def _uniform_normal(scale: float) -> ResetNoise:
    def noise(rng, qpos0, qvel0):
        qpos = qpos0 + rng.uniform(low=-scale, high=scale, size=qpos0.size)
        qvel = qvel0 + rng.standard_normal(qvel0.size) * scale
        return qpos, qvel
    return noise


# --- InvertedPendulum-v5 ------------------------------------------------------------------------------

def _pendulum_obs(f: Fields) -> np.ndarray:
    return np.concatenate([f.qpos, f.qvel], axis=1)


def _pendulum_outcome(f, x_velocity, action):
    obs = _pendulum_obs(f)
    terminated = ~np.isfinite(obs).all(axis=1) | (np.abs(obs[:, 1]) > 0.2)
    # Gymnasium: reward = int(not terminated), so the terminating step earns 0.
    return (~terminated).astype(np.float64), terminated


# --- InvertedDoublePendulum-v5 ------------------------------------------------------------------------

def _double_pendulum_obs(f: Fields) -> np.ndarray:
    return np.concatenate([f.qpos[:, :1], np.sin(f.qpos[:, 1:]), np.cos(f.qpos[:, 1:]),
                           np.clip(f.qvel, -10, 10), np.clip(f.derived["qfrc_constraint"], -10, 10)[:, :1]],
                          axis=1)


def _double_pendulum_outcome(f, x_velocity, action):
    tip = f.derived["site_xpos"][:, 0]  # the tip site's position, as Gymnasium reads data.site_xpos[0]
    x, y = tip[:, 0], tip[:, 2]
    terminated = y <= 1
    v1, v2 = f.qvel[:, 1], f.qvel[:, 2]
    dist_penalty = 0.01 * x**2 + (y - 2) ** 2
    vel_penalty = 1e-3 * v1**2 + 5e-3 * v2**2
    alive_bonus = 10.0 * (~terminated)
    return alive_bonus - dist_penalty - vel_penalty, terminated


# --- HalfCheetah-v5 -----------------------------------------------------------------------------------

def _skip_x_obs(f: Fields) -> np.ndarray:
    return np.concatenate([f.qpos[:, 1:], f.qvel], axis=1)


def _skip_x_clipped_vel_obs(f: Fields) -> np.ndarray:
    return np.concatenate([f.qpos[:, 1:], np.clip(f.qvel, -10, 10)], axis=1)


def _cheetah_outcome(f, x_velocity, action):
    reward = 1.0 * x_velocity - _ctrl_cost(0.1, action)
    return reward, np.zeros(len(reward), dtype=bool)


# --- Hopper-v5 and Walker2d-v5 ------------------------------------------------------------------------

def _hopper_healthy(f: Fields) -> np.ndarray:
    z, angle = f.qpos[:, 1], f.qpos[:, 2]
    state = np.concatenate([f.qpos[:, 2:], f.qvel], axis=1)  # state_vector()[2:]
    healthy_state = np.logical_and.reduce((-100.0 < state) & (state < 100.0), axis=1)  # (ndarray.all's ufunc)
    return healthy_state & (0.7 < z) & (z < np.inf) & (-0.2 < angle) & (angle < 0.2)


def _walker_healthy(f: Fields) -> np.ndarray:
    z, angle = f.qpos[:, 1], f.qpos[:, 2]
    return (0.8 < z) & (z < 2.0) & (-1.0 < angle) & (angle < 1.0)


def _walking_outcome(healthy_fn: Callable[[Fields], np.ndarray]) -> Outcome:
    def outcome(f, x_velocity, action):
        healthy = healthy_fn(f)
        reward = (1.0 * x_velocity + healthy * 1.0) - _ctrl_cost(1e-3, action)
        return reward, ~healthy
    return outcome


# --- Ant-v5 -------------------------------------------------------------------------------------------

def _ant_contact_forces(f: Fields) -> np.ndarray:
    return np.clip(f.derived["cfrc_ext"], -1.0, 1.0)  # contact_force_range


def _ant_obs(f: Fields) -> np.ndarray:
    forces = _ant_contact_forces(f)[:, 1:]  # the world body's row is left out, as in v5
    return np.concatenate([f.qpos[:, 2:], f.qvel, forces.reshape(len(forces), -1)], axis=1)


def _ant_obs_without_forces(f: Fields) -> np.ndarray:
    return np.concatenate([f.qpos[:, 2:], f.qvel], axis=1)


def _ant_contact_forces_option(task: Task, include: Any) -> Task:
    # Ant-v5(include_cfrc_ext_in_observation=False): the 78 clipped contact forces leave the observation (as in
    # Ant-v4's default); the contact cost in the reward still reads them.
    if not isinstance(include, (bool, np.bool_)):
        raise ValueError(f"include_cfrc_ext_in_observation must be True or False, got {include!r}")
    return task if include else replace(task, obs_dim=27, observe=_ant_obs_without_forces)


def _ant_x(f: Fields) -> np.ndarray:
    return f.derived["xpos"][:, 1, 0]  # data.body(main_body=1).xpos[0]


def _ant_outcome(f, x_velocity, action):
    z = f.qpos[:, 2]
    state = np.concatenate([f.qpos, f.qvel], axis=1)  # state_vector()
    healthy = np.isfinite(state).all(axis=1) & (0.2 <= z) & (z <= 1.0)
    forces = _ant_contact_forces(f)
    contact_cost = 5e-4 * np.square(forces).reshape(len(forces), -1).sum(axis=1)
    reward = (x_velocity * 1 + healthy * 1.0) - (_ctrl_cost(0.5, action) + contact_cost)
    return reward, ~healthy


# --- Humanoid-v5 and HumanoidStandup-v5 ---------------------------------------------------------------

def _humanoid_obs(f: Fields) -> np.ndarray:
    n, d = len(f.qpos), f.derived
    # Without the world body's row (v5): cinert, cvel, the actuator forces on the joints (not the free
    # joint's 6 dofs), and the external contact forces.
    return np.concatenate([f.qpos[:, 2:], f.qvel, d["cinert"][:, 1:].reshape(n, -1), d["cvel"][:, 1:].reshape(n, -1),
                           d["qfrc_actuator"][:, 6:], d["cfrc_ext"][:, 1:].reshape(n, -1)], axis=1)


def _mass_center_x(f: Fields) -> np.ndarray:
    # Gymnasium's mass_center(model, data)[0]: einsum("b,bj->j", body_mass, xipos) / body_mass.sum(), with
    # each env's own masses.
    mass = f.model["body_mass"]
    return np.einsum("nb,nbj->nj", mass, f.derived["xipos"])[:, 0] / mass.sum(axis=1)


def _square_sum(x: np.ndarray) -> np.ndarray:
    return np.square(x).reshape(len(x), -1).sum(axis=1)


def _humanoid_outcome(f, x_velocity, action):
    z = f.qpos[:, 2]
    healthy = (1.0 < z) & (z < 2.0)
    # The control cost reads data.ctrl (float64), not the action: the action as MuJoCo stores it.
    ctrl_cost = 0.1 * _square_sum(action.astype(np.float64))
    contact_cost = np.clip(5e-7 * _square_sum(f.derived["cfrc_ext"]), -np.inf, 10.0)
    reward = (1.25 * x_velocity + healthy * 5.0) - (ctrl_cost + contact_cost)
    return reward, ~healthy


def _standup_outcome(f, x_velocity, action):
    uph_cost = (f.qpos[:, 2] - 0) / f.model["opt.timestep"]
    quad_ctrl_cost = 0.1 * _square_sum(action.astype(np.float64))
    quad_impact_cost = np.clip(0.5e-6 * _square_sum(f.derived["cfrc_ext"]), -np.inf, 10.0)
    reward = uph_cost - quad_ctrl_cost - quad_impact_cost + 1
    return reward, np.zeros(len(reward), dtype=bool)


_HUMANOID_DERIVED = ("xipos", "cinert", "cvel", "qfrc_actuator", "cfrc_ext")


# --- Swimmer-v5 ---------------------------------------------------------------------------------------

def _skip_xy_obs(f: Fields) -> np.ndarray:
    return np.concatenate([f.qpos[:, 2:], f.qvel], axis=1)


def _swimmer_outcome(f, x_velocity, action):
    return 1.0 * x_velocity - _ctrl_cost(1e-4, action), np.zeros(len(x_velocity), dtype=bool)


# --- Reacher-v5 and Pusher-v5 -------------------------------------------------------------------------
# Body ids in reacher.xml and pusher_v5.xml (tests/test_native.py checks them against the names).
REACHER_FINGERTIP, REACHER_TARGET = 3, 4
PUSHER_TIPS_ARM, PUSHER_OBJECT, PUSHER_GOAL = 10, 11, 12


def _norm(v: np.ndarray) -> np.ndarray:
    # np.linalg.norm of each row, as Gymnasium computes it for one env: sqrt(dot(v, v)), where the dot is BLAS's
    # ddot, whose kernel may fuse multiply-adds (OpenBLAS on Intel Xeon does; a plain sum of squares then differs
    # in the last bit). A stack of 1 x n @ n x 1 matmuls makes NumPy call that same ddot per row.
    v = np.ascontiguousarray(v)
    return np.sqrt(np.matmul(v[:, None, :], v[:, :, None])[:, 0, 0])


def _reacher_vec(f: Fields) -> np.ndarray:
    xpos = f.derived["xpos"]  # get_body_com(name) is data.body(name).xpos
    return xpos[:, REACHER_FINGERTIP] - xpos[:, REACHER_TARGET]


def _reacher_obs(f: Fields) -> np.ndarray:
    theta = f.qpos[:, :2]
    return np.concatenate([np.cos(theta), np.sin(theta), f.qpos[:, 2:], f.qvel[:, :2], _reacher_vec(f)[:, :2]],
                          axis=1)


def _reacher_outcome(f, x_velocity, action):
    reward_dist = -_norm(_reacher_vec(f)) * 1
    reward_ctrl = -np.square(action).sum(axis=1) * 1
    return reward_dist + reward_ctrl, np.zeros(len(reward_dist), dtype=bool)


def _reacher_reset(rng, qpos0, qvel0):
    qpos = rng.uniform(low=-0.1, high=0.1, size=qpos0.size) + qpos0
    while True:
        goal = rng.uniform(low=-0.2, high=0.2, size=2)
        if np.linalg.norm(goal) < 0.2:
            break
    qpos[-2:] = goal
    qvel = qvel0 + rng.uniform(low=-0.005, high=0.005, size=qvel0.size)
    qvel[-2:] = 0
    return qpos, qvel


def _pusher_obs(f: Fields) -> np.ndarray:
    xpos = f.derived["xpos"]
    return np.concatenate([f.qpos[:, :7], f.qvel[:, :7], xpos[:, PUSHER_TIPS_ARM], xpos[:, PUSHER_OBJECT],
                           xpos[:, PUSHER_GOAL]], axis=1)


def _pusher_outcome(f, x_velocity, action):
    xpos = f.derived["xpos"]
    reward_near = -_norm(xpos[:, PUSHER_OBJECT] - xpos[:, PUSHER_TIPS_ARM]) * 0.5
    reward_dist = -_norm(xpos[:, PUSHER_OBJECT] - xpos[:, PUSHER_GOAL]) * 1
    reward_ctrl = -np.square(action).sum(axis=1) * 0.1
    return reward_dist + reward_ctrl + reward_near, np.zeros(len(reward_dist), dtype=bool)


def _pusher_reset(rng, qpos0, qvel0):
    qpos = qpos0.copy()  # Gymnasium writes into init_qpos itself; the entries written are always rewritten
    goal_pos = np.asarray([0, 0])
    while True:
        cylinder_pos = np.concatenate([rng.uniform(low=-0.3, high=0, size=1), rng.uniform(low=-0.2, high=0.2, size=1)])
        if np.linalg.norm(cylinder_pos - goal_pos) > 0.17:
            break
    qpos[-4:-2] = cylinder_pos
    qpos[-2:] = goal_pos
    qvel = qvel0 + rng.uniform(low=-0.005, high=0.005, size=qvel0.size)
    qvel[-4:] = 0
    return qpos, qvel


TASKS: dict[str, Task] = {t.env_id: t for t in (
    Task("InvertedPendulum-v5", "inverted_pendulum.xml", 2, 4, _pendulum_obs, _pendulum_outcome,
         _uniform_uniform(0.01)),
    Task("InvertedDoublePendulum-v5", "inverted_double_pendulum.xml", 5, 9, _double_pendulum_obs,
         _double_pendulum_outcome, _uniform_normal(0.1), derived=("site_xpos", "qfrc_constraint")),
    Task("HalfCheetah-v5", "half_cheetah.xml", 5, 17, _skip_x_obs, _cheetah_outcome, _uniform_normal(0.1)),
    Task("Hopper-v5", "hopper.xml", 4, 11, _skip_x_clipped_vel_obs, _walking_outcome(_hopper_healthy),
         _uniform_uniform(5e-3)),
    Task("Walker2d-v5", "walker2d_v5.xml", 4, 17, _skip_x_clipped_vel_obs, _walking_outcome(_walker_healthy),
         _uniform_uniform(5e-3)),
    Task("Ant-v5", "ant.xml", 5, 105, _ant_obs, _ant_outcome, _uniform_normal(0.1), derived=("xpos", "cfrc_ext"),
         x_position=_ant_x, options={"include_cfrc_ext_in_observation": _ant_contact_forces_option}),
    Task("Humanoid-v5", "humanoid.xml", 5, 348, _humanoid_obs, _humanoid_outcome, _uniform_uniform(1e-2),
         derived=_HUMANOID_DERIVED, x_position=_mass_center_x, model_fields=("body_mass",)),
    Task("HumanoidStandup-v5", "humanoidstandup.xml", 5, 348, _humanoid_obs, _standup_outcome,
         _uniform_uniform(1e-2), derived=_HUMANOID_DERIVED[1:], model_fields=("opt.timestep",)),
    Task("Swimmer-v5", "swimmer.xml", 4, 8, _skip_xy_obs, _swimmer_outcome, _uniform_uniform(0.1)),
    Task("Reacher-v5", "reacher.xml", 2, 10, _reacher_obs, _reacher_outcome, _reacher_reset, derived=("xpos",)),
    Task("Pusher-v5", "pusher_v5.xml", 5, 23, _pusher_obs, _pusher_outcome, _pusher_reset, derived=("xpos",)),
)}
