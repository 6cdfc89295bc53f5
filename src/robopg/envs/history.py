"""Observation history: the policy (and value function) see the last K observations and actions, not just now.

A memoryless policy cannot tell a light robot from a heavy one by one observation; from how the robot answered its
last few actions it can. ``--obs-history K`` turns every observation into one flat vector::

    [o_t, o_{t-1}, ..., o_{t-K}, a_{t-1}, ..., a_{t-K}]

newest first, where ``a`` is the action the env received (discrete actions one-hot). Before an episode's start
the slots hold zeros, so the first observation of every episode is ``[o_0, 0, ..., 0]``. It is an env wrapper, not
a policy feature, so training, ``eval``, ``robustness``, videos, exports and Ray workers all build the same input
from the same config; a deployed policy must be fed the same layout (``robopg export`` records it).

The vector wrapper keeps SAME_STEP autoreset's contract: an ending step returns the next episode's first
(stacked) observation, and ``info["final_obs"]`` holds the ended episode's last one, stacked with its own history.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from ..errors import EnvError
from .passthrough import PhysicsWrapper


def action_width(space: gym.Space) -> int:
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    if isinstance(space, gym.spaces.Box):
        return int(np.prod(space.shape))
    raise EnvError(f"--obs-history: needs a Box or Discrete action space, got {type(space).__name__}")


def history_space(obs_space: gym.Space, act_space: gym.Space, k: int) -> gym.spaces.Box:
    """The stacked observation's space: unbounded, ``(k + 1) * obs_dim + k * action width`` floats."""
    if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
        raise EnvError(f"--obs-history: needs flat Box observations, got {obs_space}")
    dim = (k + 1) * obs_space.shape[0] + k * action_width(act_space)
    return gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)


class History:
    """The history buffers of ``n`` envs: observations ``[n, k + 1, obs_dim]`` and actions ``[n, k, width]``,
    newest first."""

    def __init__(self, n: int, k: int, obs_dim: int, act_space: gym.Space):
        self.k = k
        self.discrete = isinstance(act_space, gym.spaces.Discrete)
        self.obs = np.zeros((n, k + 1, obs_dim), np.float32)
        self.actions = np.zeros((n, k, action_width(act_space)), np.float32)

    def restart(self, ids, obs: np.ndarray) -> None:
        """Envs ``ids`` begin episodes with observations ``obs`` (``[len(ids), obs_dim]``)."""
        self.obs[ids] = 0.0
        self.obs[ids, 0] = obs
        self.actions[ids] = 0.0

    def push(self, action: np.ndarray, obs: np.ndarray) -> None:
        """Every env took ``action`` and now observes ``obs``."""
        self.obs[:, 1:] = self.obs[:, :-1]
        self.obs[:, 0] = obs
        if self.k:
            self.actions[:, 1:] = self.actions[:, :-1]
            self.actions[:, 0] = self._encode(action)

    def _encode(self, action: np.ndarray) -> np.ndarray:
        if self.discrete:
            return np.eye(self.actions.shape[2], dtype=np.float32)[np.asarray(action, dtype=np.int64).reshape(-1)]
        return np.asarray(action, dtype=np.float32).reshape(len(self.actions), -1)

    def stacked(self) -> np.ndarray:
        n = len(self.obs)
        return np.concatenate([self.obs.reshape(n, -1), self.actions.reshape(n, -1)], axis=1)

    def state_dict(self) -> dict:
        return {"obs": self.obs.copy(), "actions": self.actions.copy()}

    def load_state_dict(self, state: dict) -> None:
        if state["obs"].shape != self.obs.shape or state["actions"].shape != self.actions.shape:
            raise ValueError("saved observation history does not match this run's --obs-history and env count")
        self.obs[:], self.actions[:] = state["obs"], state["actions"]


class ObservationHistory(PhysicsWrapper):
    """A SAME_STEP vector env whose observations carry their last ``k`` observations and actions."""

    def __init__(self, venv: gym.vector.VectorEnv, k: int):
        super().__init__(venv)
        self.k = k
        self.single_observation_space = history_space(venv.single_observation_space, venv.single_action_space, k)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, venv.num_envs)
        self.history = History(venv.num_envs, k, venv.single_observation_space.shape[0], venv.single_action_space)

    def reset(self, *, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.history.restart(slice(None), np.asarray(obs, dtype=np.float32))
        return self.history.stacked(), info

    def step(self, actions):
        obs, reward, terminated, truncated, info = self.env.step(actions)
        obs = np.asarray(obs, dtype=np.float32)
        ended = np.asarray(terminated) | np.asarray(truncated)
        h = self.history
        if not ended.any():
            h.push(actions, obs)
            return h.stacked(), reward, terminated, truncated, info
        # The ended episodes' last observation joins their own history (for the value bootstrap); then their
        # buffers restart from the next episode's first observation, which SAME_STEP returns in ``obs``.
        ids = np.flatnonzero(ended)
        has_final = np.asarray(info.get("_final_obs", np.zeros_like(ended)))
        last = obs.copy()
        for i in ids:
            if has_final[i]:
                last[i] = info["final_obs"][i]
        h.push(actions, last)
        final = np.empty(self.num_envs, dtype=object)
        stacked_last = h.stacked()
        for i in ids:
            final[i] = stacked_last[i] if has_final[i] else None
        h.restart(ids, obs[ids])
        info = dict(info, final_obs=final)
        return h.stacked(), reward, terminated, truncated, info

    # --- exact state: the envs' and the history's (physics passes through, PhysicsWrapper) --------------
    def get_state(self) -> Any:
        inner = super().get_state()
        return None if inner is None else {"envs": inner, "history": self.history.state_dict()}

    def set_state(self, state: Any) -> None:
        super().set_state(state["envs"])
        self.history.load_state_dict(state["history"])


class ObservationHistoryEnv(gym.Wrapper):
    """One env's ``ObservationHistory`` (videos and exports run a single Gymnasium env)."""

    def __init__(self, env: gym.Env, k: int):
        super().__init__(env)
        self.observation_space = history_space(env.observation_space, env.action_space, k)
        self.history = History(1, k, env.observation_space.shape[0], env.action_space)

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.history.restart(slice(None), np.asarray(obs, dtype=np.float32)[None])
        return self.history.stacked()[0], info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.history.push(np.asarray(action)[None], np.asarray(obs, dtype=np.float32)[None])
        return self.history.stacked()[0], reward, terminated, truncated, info
