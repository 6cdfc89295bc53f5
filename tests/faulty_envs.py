"""Robots that misbehave, for the fault tests. Importable by name (``tests.faulty_envs``) from subprocesses and
Ray workers; importing registers them."""

import gymnasium as gym
import numpy as np

EPISODE_LENGTH = 20
NUM_ENVS = 3  # the tests' vector envs


class FaultyEnv(gym.Env):
    """Episodes of EPISODE_LENGTH steps, reward 1 per step, observation (step in episode / length, episode id).

    Faults, counted in steps this env instance has taken (``at``), or in its resets (``reset_fails``):
    ``nan_obs_at``: observation[1] is NaN; ``inf_reward_at``: the reward is +inf; ``raise_at``: ``step`` raises
    (a driver fault); ``reset_fails``: resets with these numbers raise; ``only_index``: only the env made
    ``only_index``-th of each vector env misbehaves (envs are made in index order, ``NUM_ENVS`` at a time).
    """

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float64)
    action_space = gym.spaces.Discrete(2)
    made = 0

    def __init__(self, nan_obs_at: int = 0, inf_reward_at: int = 0, raise_at: tuple = (), reset_fails: tuple = (),
                 only_index: int = -1):
        self.index = FaultyEnv.made % NUM_ENVS
        FaultyEnv.made += 1
        faulty = only_index < 0 or self.index == only_index
        self.nan_obs_at = nan_obs_at if faulty else 0
        self.inf_reward_at = inf_reward_at if faulty else 0
        self.raise_at = set(raise_at) if faulty else set()
        self.reset_fails = set(reset_fails) if faulty else set()
        self.steps_taken = 0
        self.resets = 0

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.resets += 1
        if self.resets in self.reset_fails:
            raise OSError(f"motor driver timeout on reset {self.resets}")
        self.t = 0
        self.episode_id = self.np_random.uniform()
        return self._obs(), {}

    def _obs(self):
        return np.array([self.t / EPISODE_LENGTH, self.episode_id])

    def step(self, action):
        self.steps_taken += 1
        if self.steps_taken in self.raise_at:
            raise RuntimeError(f"encoder lost at step {self.steps_taken}")
        self.t += 1
        obs = self._obs()
        if self.steps_taken == self.nan_obs_at:
            obs[1] = np.nan
        reward = np.inf if self.steps_taken == self.inf_reward_at else 1.0
        return obs, reward, False, False, {}


def register(name: str, **kwargs) -> str:
    env_id = f"robopg-test/Faulty{name}-v0"
    if env_id not in gym.registry:
        gym.register(env_id, entry_point="tests.faulty_envs:FaultyEnv", max_episode_steps=EPISODE_LENGTH,
                     kwargs=kwargs)
    return env_id


NAN_OBS = register("NaNObs", nan_obs_at=30, only_index=1)
INF_REWARD = register("InfReward", inf_reward_at=45, only_index=2)
RAISES = register("Raises", raise_at=(50,), only_index=1)
RAISES_OFTEN = register("RaisesOften", raise_at=tuple(range(7, 10_000, 13)), only_index=0)
RAISES_TWICE = register("RaisesTwice", raise_at=(33, 71), only_index=1)
RESET_FAILS = register("ResetFails", reset_fails=(3,), only_index=0)
