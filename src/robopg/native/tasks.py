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

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass
class Fields:
    """Per-env MuJoCo arrays, rows are envs (live views into the batch's state rows and outputs)."""

    qpos: np.ndarray
    qvel: np.ndarray
    derived: dict[str, np.ndarray]

    def take(self, ids: np.ndarray) -> Fields:
        return Fields(self.qpos[ids], self.qvel[ids], {k: v[ids] for k, v in self.derived.items()})


# observe(fields) -> obs [N, obs_dim] float64
Observe = Callable[[Fields], np.ndarray]
# outcome(fields, x_before [N], action [N, nu], dt) -> (reward [N] float64, terminated [N] bool)
Outcome = Callable[[Fields, np.ndarray, np.ndarray, float], tuple[np.ndarray, np.ndarray]]
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


POST_CONSTRAINT = frozenset({"cfrc_ext"})


def _ctrl_cost(weight: float, action: np.ndarray) -> np.ndarray:
    # Gymnasium: weight * np.sum(np.square(action)), per env, in the action's own dtype.
    return weight * np.square(action).sum(axis=1)


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


def _pendulum_outcome(f, x_before, action, dt):
    obs = _pendulum_obs(f)
    terminated = ~np.isfinite(obs).all(axis=1) | (np.abs(obs[:, 1]) > 0.2)
    # Gymnasium: reward = int(not terminated), so the terminating step earns 0.
    return (~terminated).astype(np.float64), terminated


# --- InvertedDoublePendulum-v5 ------------------------------------------------------------------------

def _double_pendulum_obs(f: Fields) -> np.ndarray:
    return np.concatenate([f.qpos[:, :1], np.sin(f.qpos[:, 1:]), np.cos(f.qpos[:, 1:]),
                           np.clip(f.qvel, -10, 10), np.clip(f.derived["qfrc_constraint"], -10, 10)[:, :1]],
                          axis=1)


def _double_pendulum_outcome(f, x_before, action, dt):
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


def _cheetah_outcome(f, x_before, action, dt):
    x_velocity = (f.qpos[:, 0] - x_before) / dt
    reward = 1.0 * x_velocity - _ctrl_cost(0.1, action)
    return reward, np.zeros(len(reward), dtype=bool)


# --- Hopper-v5 and Walker2d-v5 ------------------------------------------------------------------------

def _hopper_healthy(f: Fields) -> np.ndarray:
    z, angle = f.qpos[:, 1], f.qpos[:, 2]
    state = np.concatenate([f.qpos[:, 2:], f.qvel], axis=1)  # state_vector()[2:]
    healthy_state = ((-100.0 < state) & (state < 100.0)).all(axis=1)
    return healthy_state & (0.7 < z) & (z < np.inf) & (-0.2 < angle) & (angle < 0.2)


def _walker_healthy(f: Fields) -> np.ndarray:
    z, angle = f.qpos[:, 1], f.qpos[:, 2]
    return (0.8 < z) & (z < 2.0) & (-1.0 < angle) & (angle < 1.0)


def _walking_outcome(healthy_fn: Callable[[Fields], np.ndarray]) -> Outcome:
    def outcome(f, x_before, action, dt):
        x_velocity = (f.qpos[:, 0] - x_before) / dt
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


def _ant_x(f: Fields) -> np.ndarray:
    return f.derived["xpos"][:, 1, 0]  # data.body(main_body=1).xpos[0]


def _ant_outcome(f, x_before, action, dt):
    x_velocity = (_ant_x(f) - x_before) / dt
    z = f.qpos[:, 2]
    state = np.concatenate([f.qpos, f.qvel], axis=1)  # state_vector()
    healthy = np.isfinite(state).all(axis=1) & (0.2 <= z) & (z <= 1.0)
    forces = _ant_contact_forces(f)
    contact_cost = 5e-4 * np.square(forces).reshape(len(forces), -1).sum(axis=1)
    reward = (x_velocity * 1 + healthy * 1.0) - (_ctrl_cost(0.5, action) + contact_cost)
    return reward, ~healthy


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
         x_position=_ant_x),
)}
