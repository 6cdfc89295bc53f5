"""Collects batches of transitions from a vector env with batched, autograd-free policy inference."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

from .envs import get_vector_state, set_vector_state


@dataclass
class Rollout:
    """One batch, laid out ``[T, N]`` (time, env). ``next_obs[t]`` is the true s_{t+1}: the final observation
    where an episode ended (the env has already reset), else ``obs[t+1]``. ``truncated`` includes the cut
    at the end of a steps-mode batch. ``mask`` is False on steps that hold no transition (an env that
    finished its last episode of a whole-episode batch)."""

    obs: np.ndarray         # [T, N, obs_dim] float32
    actions: np.ndarray     # [T, N, act_dim] float32, or [T, N] int64
    rewards: np.ndarray     # [T, N] float64
    terminated: np.ndarray  # [T, N] bool
    truncated: np.ndarray   # [T, N] bool
    next_obs: np.ndarray    # [T, N, obs_dim] float32
    mask: np.ndarray        # [T, N] bool
    episode_returns: list[float]
    episode_lengths: list[int]

    @property
    def num_steps(self) -> int:
        return int(self.mask.sum())


class _Buffers:
    """Preallocated per-step arrays that double when a whole-episode batch runs longer than planned."""

    def __init__(self, capacity: int, n: int, obs_dim: int, act_shape: tuple, act_dtype):
        self.obs = np.zeros((capacity, n, obs_dim), np.float32)
        self.next_obs = np.zeros((capacity, n, obs_dim), np.float32)
        self.actions = np.zeros((capacity, n, *act_shape), act_dtype)
        self.rewards = np.zeros((capacity, n), np.float64)
        self.terminated = np.zeros((capacity, n), bool)
        self.truncated = np.zeros((capacity, n), bool)
        self.mask = np.zeros((capacity, n), bool)

    def ensure(self, t: int) -> None:
        if t < len(self.obs):
            return
        for name in ("obs", "next_obs", "actions", "rewards", "terminated", "truncated", "mask"):
            a = getattr(self, name)
            setattr(self, name, np.concatenate([a, np.zeros_like(a)]))


class Sampler:
    """Steps a Gymnasium vector env (SAME_STEP autoreset) with a policy.

    Two batch modes:
    - ``steps``: T = ceil(batch_size / N) steps per env; episodes carry over between batches; an episode
      still running at the batch end is flagged truncated, to be bootstrapped from V(next_obs).
    - ``episodes``: all envs reset, then every episode runs to its end; an env stops contributing when it
      finishes an episode once the batch holds ``batch_size`` steps. Only whole episodes enter the batch,
      which the seed's Monte-Carlo estimators need to be unbiased without a value function.
    """

    def __init__(self, venv: gym.vector.VectorEnv, policy, batch_size: int, mode: str, seed: int):
        self.venv = venv
        self.policy = policy
        self.batch_size = batch_size
        self.mode = mode
        self.seed = seed
        self.num_envs = venv.num_envs
        space = venv.single_action_space
        self.discrete = isinstance(space, gym.spaces.Discrete)
        obs_dim = int(venv.single_observation_space.shape[0])
        act_shape = () if self.discrete else (int(np.prod(space.shape)),)
        self.steps_per_env = math.ceil(batch_size / self.num_envs)
        self._buf = _Buffers(self.steps_per_env + 1, self.num_envs, obs_dim, act_shape,
                             np.int64 if self.discrete else np.float32)
        self._obs: np.ndarray | None = None
        self._ep_return = np.zeros(self.num_envs)
        self._ep_length = np.zeros(self.num_envs, dtype=np.int64)
        self._seeded = False
        # Optional profiling (benchmarks/scaling): a dict that collect() adds env-step and policy-inference
        # seconds to. None costs one comparison per step.
        self.timers: dict[str, float] | None = None

    # ------------------------------------------------------------------------------------------------
    def _reset(self) -> None:
        obs, _ = self.venv.reset(seed=None if self._seeded else self.seed)
        self._seeded = True
        self._obs = np.asarray(obs, dtype=np.float32)
        self._ep_return[:] = 0.0
        self._ep_length[:] = 0

    @torch.no_grad()
    def collect(self) -> Rollout:
        if self._obs is None or self.mode == "episodes":
            self._reset()
        b, n = self._buf, self.num_envs
        active = np.ones(n, dtype=bool)
        num_active = n
        ep_returns: list[float] = []
        ep_lengths: list[int] = []
        collected = 0
        t = 0
        timers = self.timers
        clock = time.perf_counter
        sample_actions = self.policy.frozen_sampler()  # the policy is frozen while it samples a batch
        while True:
            b.ensure(t)
            obs = self._obs
            b.obs[t] = obs
            if timers is not None:
                t0 = clock()
            action, env_action = sample_actions(obs)
            b.actions[t] = action
            if timers is not None:
                t1 = clock()
                timers["policy_inference"] += t1 - t0
            next_obs, reward, terminated, truncated, info = self.venv.step(env_action)
            if timers is not None:
                timers["env_step"] += clock() - t1
            next_obs = np.asarray(next_obs, dtype=np.float32)
            b.rewards[t] = reward
            b.terminated[t] = terminated
            b.truncated[t] = truncated
            b.next_obs[t] = next_obs
            b.mask[t] = active
            self._ep_return += reward
            self._ep_length += 1
            collected += num_active
            ended = terminated | truncated
            if ended.any():  # most steps end no episode: nothing below runs on them
                final_obs, has_final = info["final_obs"], info["_final_obs"]
                for i in np.flatnonzero(ended & has_final):
                    b.next_obs[t, i] = final_obs[i]
                for i in np.flatnonzero(ended):
                    if active[i]:
                        ep_returns.append(float(self._ep_return[i]))
                        ep_lengths.append(int(self._ep_length[i]))
                        if self.mode == "episodes" and collected >= self.batch_size:
                            active[i] = False
                            num_active -= 1
                self._ep_return[ended] = 0.0
                self._ep_length[ended] = 0
            self._obs = next_obs
            t += 1
            if self.mode == "steps" and t == self.steps_per_env:
                # Episodes still running are cut here: a truncation, bootstrapped from V(next_obs).
                b.truncated[t - 1] |= ~b.terminated[t - 1]
                break
            if self.mode == "episodes" and num_active == 0:
                break
        return Rollout(b.obs[:t].copy(), b.actions[:t].copy(), b.rewards[:t].copy(), b.terminated[:t].copy(),
                       b.truncated[:t].copy(), b.next_obs[:t].copy(), b.mask[:t].copy(), ep_returns, ep_lengths)

    def reseed(self, seed: int) -> None:
        """Start fresh episodes, their envs seeded with ``seed``, at the next ``collect``."""
        self.seed = seed
        self._seeded = False
        self._obs = None

    def iteration_stats(self) -> dict[str, float]:
        """Extra metrics of the last ``collect`` (a distributed sampler reports restarts and overhead)."""
        return {}

    def close(self) -> None:
        self.venv.close()

    # --- exact state, for resume --------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"obs": None if self._obs is None else self._obs.copy(), "seeded": self._seeded,
                "ep_return": self._ep_return.copy(), "ep_length": self._ep_length.copy(),
                "envs": get_vector_state(self.venv) if self._obs is not None else None}

    def load_state_dict(self, state: dict) -> None:
        if state["obs"] is None:
            return
        # Reset once so the wrappers are initialised, then overwrite every sub-env's exact state.
        self.venv.reset(seed=self.seed)
        if state["envs"] is not None:
            set_vector_state(self.venv, state["envs"])
            self._obs = state["obs"]
            self._ep_return[:] = state["ep_return"]
            self._ep_length[:] = state["ep_length"]
        else:
            # Sub-envs in other processes: their state cannot be read, so resume starts fresh episodes.
            self._obs = None
        self._seeded = True
