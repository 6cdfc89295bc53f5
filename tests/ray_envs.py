"""Envs for the Ray tests. Ray workers import this module by name (``tests.ray_envs``), so it stays light."""

import os
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

EPISODE_LENGTH = 20


class CountingEnv(gym.Env):
    """Episodes of exactly EPISODE_LENGTH steps (the TimeLimit ends them), reward 1 per step.

    The observation is (step in episode / EPISODE_LENGTH, episode id), the id drawn at reset from the env's
    seeded RNG: a batch can be checked for whole, unduplicated episodes from its observations alone.

    ``only_in_pid``: the env cannot be made anywhere else (a worker that fails to start).

    Fault injection: when ``fault_file`` exists, the first env of any worker to reach its ``at_step``-th
    step claims it (an atomic rename, so exactly one env, once), writes its process id next to it and
    stalls: a test then kills that process, or the learner's --worker-timeout does.
    """

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float64)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, fault_file: str = "", at_step: int = 0, stall_s: float = 120.0, only_in_pid: int = 0):
        if only_in_pid and os.getpid() != only_in_pid:
            raise RuntimeError(f"this env can only be made in process {only_in_pid}")
        self.fault_file, self.at_step, self.stall_s = fault_file, at_step, stall_s
        self.steps_taken = 0

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self.episode_id = self.np_random.uniform()
        return self._obs(), {}

    def _obs(self):
        return np.array([self.t / EPISODE_LENGTH, self.episode_id])

    def step(self, action):
        self.steps_taken += 1
        if self.fault_file and self.steps_taken == self.at_step:
            self._maybe_stall()
        self.t += 1
        return self._obs(), 1.0, False, False, {}

    def _maybe_stall(self) -> None:
        try:
            os.rename(self.fault_file, self.fault_file + ".taken")
        except FileNotFoundError:
            return
        tmp = Path(self.fault_file + ".pid.tmp")
        tmp.write_text(str(os.getpid()))
        tmp.rename(self.fault_file + ".pid")
        time.sleep(self.stall_s)


def register_counting(name: str, **kwargs) -> str:
    env_id = f"robopg-test/Counting{name}-v0"
    gym.register(env_id, entry_point="tests.ray_envs:CountingEnv", max_episode_steps=EPISODE_LENGTH,
                 kwargs=kwargs)
    return env_id
