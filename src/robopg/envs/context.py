"""The true physics on every observation, for evaluating a policy trained with ``--policy-obs privileged``.

Such a policy (the teacher of ``--distill-from``) reads ``[o, c]``: its observation, then the log of each
randomised physics factor of the robot it drives (``Randomizer.context``, in the order ``--randomize`` names
them). While training, the sampler appends c itself, from the draws it makes. Evaluation has no draws: its
robots get their factors from ``set_physics`` (a robustness grid's cells) or none (the nominal robot), so this
wrapper reads them back from the env. A factor is one number per env and parameter (the randomiser and the grid
scale every element of a field alike): its first element is read.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from .passthrough import PhysicsWrapper


def context_space(space: gym.spaces.Box, width: int) -> gym.spaces.Box:
    return gym.spaces.Box(-np.inf, np.inf, (space.shape[0] + width,), np.float32)


class PhysicsContext(PhysicsWrapper):
    """A SAME_STEP vector env whose observations end with the log of their env's factors of ``names``."""

    def __init__(self, venv: gym.vector.VectorEnv, names: tuple[str, ...]):
        super().__init__(venv)
        self.names = tuple(names)
        self.single_observation_space = context_space(venv.single_observation_space, len(self.names))
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, venv.num_envs)
        self._context: np.ndarray | None = None  # read from the physics when it last changed through this wrapper

    def context(self) -> np.ndarray:
        if self._context is None:
            factors, n = self.get_physics(), self.num_envs
            self._context = np.stack([np.log(factors[name].reshape(n, -1)[:, 0]) for name in self.names],
                                     1).astype(np.float32)
        return self._context

    def _with(self, obs) -> np.ndarray:
        return np.concatenate([np.asarray(obs, dtype=np.float32), self.context()], 1)

    def reset(self, *, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        return self._with(obs), info

    def step(self, actions):
        obs, reward, terminated, truncated, info = self.env.step(actions)
        if "final_obs" in info:  # an ended episode's last observation: the same robot's
            has_final, ctx = info["_final_obs"], self.context()
            final = np.empty(self.num_envs, dtype=object)
            for i in np.flatnonzero(has_final):
                final[i] = np.concatenate([np.asarray(info["final_obs"][i], dtype=np.float32), ctx[i]])
            info = dict(info, final_obs=final)
        return self._with(obs), reward, terminated, truncated, info

    # --- the physics and the state can change the factors: read them again ----------------------------
    def set_physics(self, params, ids=None) -> None:
        self._context = None
        super().set_physics(params, ids)

    def set_state(self, state: Any) -> None:
        self._context = None
        super().set_state(state)
