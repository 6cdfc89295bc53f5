"""A faulty robot reported as a faulty robot: exceptions from one sub-env's ``step``/``reset`` named with the
env id and index, and with ``--on-env-error reset`` turned into a dropped episode instead of a stopped run."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from ..errors import EnvFailure

ERROR_KEY = "robopg_env_error"  # info key of a step whose env failed (and was reset): its episode is dropped
RESET_TRIES = 3


class EnvGuard(gym.Wrapper):
    """The outermost wrapper of sub-env ``index``. ``on_error='stop'``: an exception in ``step`` or ``reset``
    becomes EnvFailure naming the env. ``'reset'``: a failing ``step`` ends the episode as a truncation whose
    info carries ``ERROR_KEY`` (the sampler drops that episode; the vector env resets the env), and a failing
    ``reset`` is retried a few times before the run stops."""

    def __init__(self, env: gym.Env, index: int, on_error: str = "stop"):
        super().__init__(env)
        self.index, self.on_error = index, on_error
        self._last_obs = None
        self._t = 0

    def _where(self, what: str, e: BaseException) -> str:
        env_id = self.env.spec.id if self.env.spec else type(self.env.unwrapped).__name__
        return f"env {env_id}, env index {self.index}, {what}: {type(e).__name__}: {e}"

    def reset(self, **kwargs):
        for attempt in range(RESET_TRIES if self.on_error == "reset" else 1):
            try:
                obs, info = self.env.reset(**kwargs)
                break
            except Exception as e:  # noqa: BLE001 - any exception of a user's env is the env's failure
                if attempt + 1 >= (RESET_TRIES if self.on_error == "reset" else 1):
                    raise EnvFailure(self._where("reset", e)) from e
        self._last_obs, self._t = obs, 0
        return obs, info

    def step(self, action):
        self._t += 1
        try:
            obs, reward, terminated, truncated, info = self.env.step(action)
        except Exception as e:  # noqa: BLE001
            message = self._where(f"episode step {self._t}", e)
            if self.on_error != "reset":
                raise EnvFailure(message) from e
            # The observation is a placeholder: the sampler drops this step with the rest of the episode.
            last = self._last_obs if self._last_obs is not None else np.zeros(self.observation_space.shape,
                                                                                self.observation_space.dtype)
            return last, 0.0, False, True, {ERROR_KEY: message}
        self._last_obs = obs
        return obs, reward, terminated, truncated, info
