"""A Gymnasium ``VectorEnv`` stepping all its robots in one batched MuJoCo call per control step.

MuJoCo 4's ``mujoco.batch.Batch`` keeps every env as one ``mjSTATE_INTEGRATION`` row (qpos, qvel,
controls, solver warm start...) and advances them all on a C thread pool; its results are bit-identical
to a loop of ``mj_step`` over one ``MjData`` per env at any thread count. Everything Python does per step
is a handful of whole-batch NumPy operations (``tasks.py``); only envs that finish an episode are visited
one by one, to draw their reset noise from their own generator, as Gymnasium does (and, for Ant, Humanoid and
HumanoidStandup, every env for the one C call that gives their contact forces). Per-env physics parameters
are the batch's per-simulation model fields (``Batch.expand``, ``set_const``), expanded on first use.
"""

from __future__ import annotations

import os
from pathlib import Path

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from mujoco.batch import Batch

from .. import physics
from ..errors import EnvError
from .tasks import POST_CONSTRAINT, Fields, Task

ASSETS = Path(gym.__file__).parent / "envs" / "mujoco" / "assets"


def available_cores() -> int:
    """Cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class NativeVectorEnv(VectorEnv):
    """``num_envs`` copies of a Gymnasium v5 MuJoCo task, in SAME_STEP autoreset mode.

    ``step`` returns, on the step an episode ends, the reset observation; the true final observation is
    ``info["final_obs"][i]`` (a ``[num_envs, obs_dim]`` array, rows valid where ``info["_final_obs"]``).
    No other info is reported. Observations and rewards are float64, as Gymnasium's.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, task: Task, num_envs: int, threads: int = 0, max_episode_steps: int | None = None):
        if not isinstance(num_envs, (int, np.integer)) or num_envs <= 0:
            raise EnvError(f"num_envs must be a positive integer, got {num_envs}")
        if max_episode_steps is not None and max_episode_steps <= 0:
            raise EnvError(f"max_episode_steps must be positive, got {max_episode_steps}")
        self.task = task
        self.num_envs = int(num_envs)
        # A thread beyond one per env would have nothing to step.
        self.threads = min(int(threads) if threads > 0 else available_cores(), self.num_envs)
        self.spec = gym.spec(task.env_id)
        # As gym.make(id, max_episode_steps=...): the registered time limit unless overridden.
        self.max_episode_steps = int(max_episode_steps or self.spec.max_episode_steps)

        self.model = mujoco.MjModel.from_xml_path(str(ASSETS / task.xml_file))
        # Fields of mj_rnePostConstraint are computed per env from that env's own MjData, which only a
        # persistent batch keeps (its contacts and constraint forces).
        self._post = [name for name in task.derived if name in POST_CONSTRAINT]
        self._batch = Batch(self.model, self.num_envs, nthread=self.threads, persistent=bool(self._post))
        self._init_qpos = self.model.qpos0.copy()   # MujocoEnv.init_qpos: data.qpos of a fresh MjData
        self._init_qvel = np.zeros(self.model.nv)
        self._dt = self.model.opt.timestep * task.frame_skip

        b = self._batch
        data = mujoco.MjData(self.model)
        mujoco.mj_resetData(self.model, data)
        self._reset_row = np.empty(b.nstate)
        mujoco.mj_getState(self.model, data, self._reset_row, mujoco.mjtState.mjSTATE_INTEGRATION)
        self._ctrl = b.bind("ctrl")
        derived = {name: np.zeros((self.num_envs, *getattr(data, name).shape)) if name in self._post
                   else b.bind(name) for name in task.derived}
        # Per-env model values the formulas read (they follow set_physics).
        model_values = {name: np.repeat(np.asarray(physics.read_field(self.model, name))[None], self.num_envs, 0)
                        for name in task.model_fields}
        self._fields = Fields(b.bind("qpos"), b.bind("qvel"), derived, model_values)
        self._scratch = data  # an MjData to copy one env into, for mj_rnePostConstraint
        # Per-env physics parameters (robopg.physics): factors of the nominal model, and the batch's
        # per-simulation fields, expanded on first use (until then every env runs the shared model).
        self._nominal = physics.nominal_fields(self.model)
        self._factors = {name: np.ones((self.num_envs, *shape))
                         for name, shape in physics.param_shapes(self.model).items()}
        self._expanded: dict[str, np.ndarray] = {}
        # The forward reward's x position as the next step will read it "before": kept, not re-read at the
        # step, because for Ant it is a derived field one substep behind the state (as after mj_step).
        self._x_before = np.zeros(self.num_envs)
        self._steps = np.zeros(self.num_envs, dtype=np.int64)
        self._rngs: list[np.random.Generator | None] = [None] * self.num_envs

        low, high = self.model.actuator_ctrlrange.copy().astype(np.float32).T
        self.single_action_space = gym.spaces.Box(low=low, high=high, dtype=np.float32)
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (task.obs_dim,), np.float64)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self._action_shape = (self.num_envs, self.model.nu)

    def __repr__(self) -> str:
        return f"NativeVectorEnv({self.task.env_id}, num_envs={self.num_envs}, threads={self.threads})"

    @property
    def qpos(self) -> np.ndarray:
        """Every env's joint positions now, ``[num_envs, nq]`` (a copy)."""
        return self._fields.qpos.copy()

    @property
    def qvel(self) -> np.ndarray:
        """Every env's joint velocities now, ``[num_envs, nv]`` (a copy)."""
        return self._fields.qvel.copy()

    def set_joint_state(self, qpos: np.ndarray, qvel: np.ndarray) -> None:
        """Every env's joint positions and velocities (``[num_envs, nq]``, ``[num_envs, nv]``), as
        Gymnasium's ``MujocoEnv.set_state`` sets one env's: the rest of the state is kept."""
        qpos, qvel = np.asarray(qpos, dtype=np.float64), np.asarray(qvel, dtype=np.float64)
        f = self._fields
        if qpos.shape != f.qpos.shape or qvel.shape != f.qvel.shape:
            raise EnvError(f"set_joint_state: expected qpos {f.qpos.shape} and qvel {f.qvel.shape}, got "
                           f"{qpos.shape} and {qvel.shape}")
        f.qpos[:], f.qvel[:] = qpos, qvel
        if self.task.derived:
            self._batch.forward()  # as set_state's mj_forward
        self._x_before[:] = self.task.x_position(f)

    # --- per-env physics parameters (robopg.physics) ------------------------------------------------
    def set_physics(self, params: dict, ids=None) -> None:
        """Give envs ``ids`` (all by default; indices or a bool mask) the physics factors ``params``: name ->
        ``(len(ids),)`` or ``(len(ids), *shape)`` (see ``robopg.physics``). Parameters not named keep their
        factors. Everything is checked before anything changes. Takes effect from the next step (set, then
        reset, to start episodes with them); costs one ``mj_setConst`` per env when mass, armature, gear or
        gravity change."""
        ids = physics.check_ids(ids, self.num_envs)
        checked = physics.check_params(params, self.model, len(ids))
        if not len(ids) or not checked:
            return
        if len(ids) > 1 and (np.diff(ids) < 0).any():
            order = np.argsort(ids)  # the batch takes its ids sorted
            ids, checked = ids[order], {name: f[order] for name, f in checked.items()}
        f = self._fields
        for name, factors in checked.items():
            self._factors[name][ids] = factors
            for field in physics.FIELDS[name]:
                values = self._expand(field)
                values[ids] = physics.scaled(name, field, self._nominal[field], factors)
                if field in f.model:
                    f.model[field][ids] = values[ids]
        if "body_mass" in checked and "body_mass" in self.task.model_fields:
            # Gymnasium's next step starts its forward reward from the centre of mass with the new masses.
            self._x_before[ids] = self.task.x_position(f)[ids]
        if physics.SETCONST.intersection(checked):
            self._batch.set_const(ids)

    def get_physics(self) -> dict[str, np.ndarray]:
        """Every env's physics factors, name -> ``(num_envs, *shape)`` (ones where nominal; copies)."""
        return {name: f.copy() for name, f in self._factors.items()}

    def _expand(self, field: str) -> np.ndarray:
        if field not in self._expanded:
            self._expanded[field] = self._batch.expand(field)
        return self._expanded[field]

    def _restore_physics(self, saved: dict | None) -> None:
        """Set the factors of a saved state (None: nominal), changing only those that differ; all of them are
        checked before any is set."""
        saved = saved or {}
        targets = {name: np.asarray(saved[name]) if name in saved else np.ones_like(current)
                   for name, current in self._factors.items()}
        physics.check_params(targets, self.model, self.num_envs, "saved environment state")
        for name, target in targets.items():
            differ = np.flatnonzero((target != self._factors[name]).reshape(self.num_envs, -1).any(axis=1))
            if len(differ):
                self.set_physics({name: target[differ]}, differ)

    # --- the Gymnasium VectorEnv API ----------------------------------------------------------------
    def reset(self, *, seed: int | list[int | None] | None = None, options: dict | None = None):
        super().reset(seed=seed if isinstance(seed, int) else None)
        seeds = self._per_env_seeds(seed)
        mask = (options or {}).get("reset_mask")
        ids = np.arange(self.num_envs) if mask is None else self._check_mask(mask)
        for i in ids:
            if seeds[i] is not None or self._rngs[i] is None:
                self._rngs[i], _ = seeding.np_random(seeds[i])
        obs = np.zeros((self.num_envs, self.task.obs_dim))
        if mask is not None:
            obs[:] = self.task.observe(self._fields)
        obs[ids] = self._reset_envs(ids)
        return obs, {}

    def step(self, actions):
        action = self._check_actions(actions)
        task, f = self.task, self._fields
        self._ctrl[:] = action
        self._batch.step(nstep=task.frame_skip)
        if self._post:
            self._post_constraint()
        obs = task.observe(f)
        x = task.x_position(f)
        reward, terminated = task.outcome(f, (x - self._x_before) / self._dt, action)
        self._x_before[:] = x
        self._steps += 1
        truncated = self._steps >= self.max_episode_steps
        ended = terminated | truncated
        info = {}
        if ended.any():
            ids = np.flatnonzero(ended)
            final_obs = np.zeros_like(obs)
            final_obs[ids] = obs[ids]
            obs[ids] = self._reset_envs(ids)
            info = {"final_obs": final_obs, "_final_obs": ended}
        return obs, reward, terminated, truncated, info

    def close_extras(self, **kwargs) -> None:
        self._batch = None

    # --- exact state, for resume ------------------------------------------------------------------
    def get_state(self) -> dict:
        """Everything the next steps depend on: the integration state of every env (qpos, qvel,
        controls, solver warm start...), the episode step counters, each env's noise generator and the x
        position the next forward reward starts from. (Post-constraint fields are recomputed by every step
        before anything reads them.)"""
        return {"env_id": self.task.env_id, "num_envs": self.num_envs,
                "state": self._batch.state.copy(), "steps": self._steps.copy(),
                "rngs": [None if r is None else r.bit_generator.state for r in self._rngs],
                "x_before": self._x_before.copy(), "physics": self.get_physics()}

    def set_state(self, saved: dict) -> None:
        if (not isinstance(saved, dict) or saved.get("env_id") != self.task.env_id
                or saved.get("num_envs") != self.num_envs
                or np.shape(saved.get("state")) != self._batch.state.shape):
            raise EnvError(f"saved environment state does not match this native {self.task.env_id} vector env "
                           f"with {self.num_envs} envs")
        # States saved before physics parameters existed are of nominal envs.
        self._restore_physics(saved.get("physics"))
        self._batch.state[:] = saved["state"]
        self._steps[:] = saved["steps"]
        # States saved before x_before was kept are of tasks whose x position is qpos[0], in the state.
        self._x_before[:] = saved.get("x_before", self.task.x_position(self._fields))
        for i, rng_state in enumerate(saved["rngs"]):
            if rng_state is None:
                self._rngs[i] = None
            else:
                self._rngs[i] = np.random.Generator(np.random.PCG64())
                self._rngs[i].bit_generator.state = rng_state

    # --- internals --------------------------------------------------------------------------------
    def _reset_envs(self, ids: np.ndarray) -> np.ndarray:
        """MujocoEnv.reset for the envs ``ids``: mj_resetData, the task's noise, set_state (mj_forward);
        returns their observations."""
        # The state row of a freshly reset MjData (what mj_resetData leaves), written with NumPy: cheaper
        # than a batch reset call, which matters when short episodes end every few steps.
        self._batch.state[ids] = self._reset_row
        f = self._fields
        for i in ids:
            f.qpos[i], f.qvel[i] = self.task.reset_noise(self._rngs[i], self._init_qpos, self._init_qvel)
        if self.task.derived:
            # Gymnasium's set_state runs mj_forward, and its reset observation may read what it computes.
            self._batch.forward(ids)
        for name in self._post:
            f.derived[name][ids] = 0.0  # mj_resetData cleared them, and mj_forward does not compute them
        self._steps[ids] = 0
        reset = f.take(ids)
        self._x_before[ids] = self.task.x_position(reset)
        return self.task.observe(reset)

    def _post_constraint(self) -> None:
        """What Gymnasium's ``mj_rnePostConstraint`` after ``mj_step`` gives each env (Ant's contact forces):
        one C call per env on a copy of its MjData (~5% of Ant's physics time, measured), bit-identical."""
        scratch, model, get_data = self._scratch, self.model, self._batch.get_data
        outs = [(self._fields.derived[name], name) for name in self._post]
        for i in range(self.num_envs):
            get_data(i, scratch)
            # The shared model serves every env: cfrc_ext reads the contact forces and frames in the env's
            # MjData, not the model's parameters (its per-env gravity reaches only cacc and cfrc_int, which no
            # formula reads; tests/test_physics.py compares Humanoid's cfrc_ext under per-env physics).
            mujoco.mj_rnePostConstraint(model, scratch)
            for out, name in outs:
                out[i] = getattr(scratch, name)

    def _per_env_seeds(self, seed) -> list[int | None]:
        if seed is None:
            return [None] * self.num_envs
        if isinstance(seed, (int, np.integer)):
            return [int(seed) + i for i in range(self.num_envs)]
        seeds = list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(f"{len(seeds)} seeds given for {self.num_envs} envs")
        return seeds

    def _check_mask(self, mask) -> np.ndarray:
        mask = np.asarray(mask)
        if mask.shape != (self.num_envs,) or mask.dtype != np.bool_ or not mask.any():
            raise ValueError(f"options['reset_mask'] must be a bool array of shape ({self.num_envs},) with at "
                             "least one True")
        return np.flatnonzero(mask)

    def _check_actions(self, actions) -> np.ndarray:
        action = actions if isinstance(actions, np.ndarray) else np.asarray(actions)
        if action.shape != self._action_shape:
            raise EnvError(f"{self.task.env_id}: actions must have shape {self._action_shape} "
                           f"(num_envs, action dim), got {action.shape}")
        if action.dtype.kind not in "fiu":
            raise EnvError(f"{self.task.env_id}: actions must be numbers, got dtype {action.dtype}")
        if not np.isfinite(action).all():
            bad = np.flatnonzero(~np.isfinite(action).all(axis=1))
            raise EnvError(f"{self.task.env_id}: non-finite actions (NaN or inf) for envs {bad.tolist()}; "
                           "the physics was not stepped")
        return action
