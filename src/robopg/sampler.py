"""Collects batches of transitions from a vector env with batched, autograd-free policy inference."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

from .envs import get_vector_state, set_vector_state
from .envs.guard import ERROR_KEY
from .errors import EnvFailure


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
    env_errors: int = 0     # episodes dropped because their env failed (--on-env-error reset)
    context: np.ndarray | None = None  # [T, N, k] float32: each step's episode's randomised factors (randomization)
    episode_factors: np.ndarray | None = None  # [len(episode_returns), params]: each one's physics factors

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


class _Batch:
    """Bookkeeping of one ``collect``: which envs still contribute, and what ended."""

    def __init__(self, n: int):
        self.active = np.ones(n, dtype=bool)
        self.num_active = n
        self.collected = 0
        self.returns: list[float] = []
        self.lengths: list[int] = []
        self.factors: list[np.ndarray] = []  # with --randomize: each finished episode's physics factors
        self.episode_start = np.zeros(n, dtype=np.int64)  # where each env's current episode began in the batch
        self.env_errors = 0


class Sampler:
    """Steps a Gymnasium vector env (SAME_STEP autoreset) with a policy.

    Two batch modes:
    - ``steps``: T = ceil(batch_size / N) steps per env; episodes carry over between batches; an episode
      still running at the batch end is flagged truncated, to be bootstrapped from V(next_obs).
    - ``episodes``: all envs reset, then every episode runs to its end; an env stops contributing when it
      finishes an episode once the batch holds ``batch_size`` steps. Only whole episodes enter the batch,
      which the seed's Monte-Carlo estimators need to be unbiased without a value function.
    """

    def __init__(self, venv: gym.vector.VectorEnv, policy, batch_size: int, mode: str, seed: int,
                 env_id: str = "", first_env_index: int = 0, max_env_errors: int | None = None,
                 randomizer=None, context_obs: bool = False):
        self.venv = venv
        # For messages about a faulty env: its id, and the index of this sampler's first env in the run (a Ray
        # worker samples envs first_env_index, first_env_index + 1, ...).
        self.env_id = env_id or getattr(getattr(venv, "spec", None), "id", "") or "env"
        self.first_env_index = first_env_index
        # Episodes dropped because their env failed, in this process: past the limit a batch cannot finish
        # (an env that fails every episode never completes one), so the sampler stops the run itself.
        self.max_env_errors, self.env_errors = max_env_errors, 0
        self.policy = policy
        self.batch_size = batch_size
        self.mode = mode
        self.seed = seed
        self.num_envs = venv.num_envs
        space = venv.single_action_space
        self.discrete = isinstance(space, gym.spaces.Discrete)
        # context_obs (--policy-obs privileged): each observation ends with the randomiser's context of its
        # episode, the log physics factors the policy reads.
        self.context_obs = bool(context_obs)
        if self.context_obs and not (randomizer is not None and randomizer.names):
            raise ValueError("context_obs needs a randomiser with physics ranges")
        self.obs_dim = obs_dim = (int(venv.single_observation_space.shape[0])
                                  + (randomizer.context_dim if self.context_obs else 0))  # as rollouts store them
        act_shape = () if self.discrete else (int(np.prod(space.shape)),)
        self.steps_per_env = math.ceil(batch_size / self.num_envs)
        self._buf = _Buffers(self.steps_per_env + 1, self.num_envs, obs_dim, act_shape,
                             np.int64 if self.discrete else np.float32)
        self._obs: np.ndarray | None = None
        self._ep_return = np.zeros(self.num_envs)
        self._ep_length = np.zeros(self.num_envs, dtype=np.int64)
        self._seeded = False
        # Domain randomisation (robopg.randomization.Randomizer), or None: the nominal robot, untouched.
        self.randomizer = randomizer
        self._bounds = (None, None) if self.discrete else (space.low.reshape(-1), space.high.reshape(-1))
        # Optional profiling (benchmarks/scaling): a dict that collect() adds env-step and policy-inference
        # seconds to. None costs one comparison per step.
        self.timers: dict[str, float] | None = None

    # ------------------------------------------------------------------------------------------------
    def _reset(self) -> None:
        obs, _ = self.venv.reset(seed=None if self._seeded else self.seed)
        self._seeded = True
        self._obs = np.asarray(obs, dtype=np.float32)
        if self.randomizer is not None:
            self.randomizer.start(self.venv, np.arange(self.num_envs))
            self._obs = self._with_context(self.randomizer.observe(self._obs))
        self._ep_return[:] = 0.0
        self._ep_length[:] = 0

    def advance(self, env_steps: int, cell_probs: np.ndarray | None = None) -> None:
        """The run has taken ``env_steps`` env steps (a --randomize-ramp widens the ranges with them);
        ``cell_probs``: --randomize-focus's probabilities for this iteration's episode starts."""
        if self.randomizer is not None:
            self.randomizer.advance(env_steps, cell_probs)

    @torch.no_grad()
    def collect(self) -> Rollout:
        if self._obs is None or self.mode == "episodes":
            self._reset()
        b, n = self._buf, self.num_envs
        batch = _Batch(n)
        t = 0
        timers = self.timers
        clock = time.perf_counter
        sample_actions = self.policy.frozen_sampler()  # the policy is frozen while it samples a batch
        rand = self.randomizer
        context = [] if rand is not None and rand.context_dim else None
        while True:
            b.ensure(t)
            obs = self._obs
            b.obs[t] = obs
            if timers is not None:
                t0 = clock()
            action, env_action = sample_actions(obs)
            b.actions[t] = action
            if rand is not None:
                env_action = rand.act(env_action, *self._bounds)
                if context is not None:
                    context.append(rand.context())
            if timers is not None:
                t1 = clock()
                timers["policy_inference"] += t1 - t0
            next_obs, reward, terminated, truncated, info = self.venv.step(env_action)
            if timers is not None:
                timers["env_step"] += clock() - t1
            next_obs = np.asarray(next_obs, dtype=np.float32)
            if rand is not None:
                next_obs = self._with_context(rand.observe(next_obs))  # ended episodes' rows: fixed below
            b.rewards[t] = reward
            b.terminated[t] = terminated
            b.truncated[t] = truncated
            b.next_obs[t] = next_obs
            b.mask[t] = batch.active
            self._ep_return += reward
            self._ep_length += 1
            batch.collected += batch.num_active
            ended = terminated | truncated
            if not (np.isfinite(reward).all() and np.isfinite(next_obs).all()):
                for i in range(n):
                    self._check_finite(i, reward[i], next_obs[i], "observation")
            if ended.any():  # most steps end no episode: nothing below runs on them
                self._end_episodes(t, ended, info, batch, next_obs)
            self._obs = next_obs
            t += 1
            if self.mode == "steps" and t == self.steps_per_env:
                # Episodes still running are cut here: a truncation, bootstrapped from V(next_obs).
                b.truncated[t - 1] |= ~b.terminated[t - 1]
                break
            if self.mode == "episodes" and batch.num_active == 0:
                break
        factors = None
        if rand is not None and rand.names:
            factors = np.array(batch.factors).reshape(len(batch.returns), len(rand.names))
        return Rollout(b.obs[:t].copy(), b.actions[:t].copy(), b.rewards[:t].copy(), b.terminated[:t].copy(),
                       b.truncated[:t].copy(), b.next_obs[:t].copy(), b.mask[:t].copy(), batch.returns,
                       batch.lengths, batch.env_errors, None if context is None else np.stack(context), factors)

    def _end_episodes(self, t: int, ended: np.ndarray, info: dict, batch: _Batch, next_obs: np.ndarray) -> None:
        b = self._buf
        final_obs, has_final = info["final_obs"], info["_final_obs"]
        # SAME_STEP autoreset moves the ending step's own info (where a failed env's error is) to "final_info".
        final_info = info.get("final_info", {})
        failed = final_info.get("_" + ERROR_KEY)
        rand = self.randomizer
        if rand is not None:
            # final_obs may be an object array (Gymnasium's): the noisy rows, by env index.
            with_final = np.flatnonzero(ended & has_final)
            if len(with_final):
                rows = rand.observe_final(np.stack([final_obs[i] for i in with_final]))
                if self.context_obs:  # the ended episode's robot: its factors, before start() draws the next
                    rows = np.concatenate([rows, rand.context()[with_final]], 1)
                final_obs = dict(zip(with_final, rows))
        for i in np.flatnonzero(ended):
            if failed is not None and failed[i]:
                # Its env raised (and was reset): the unfinished episode leaves the batch, never fabricated.
                start = batch.episode_start[i]
                batch.collected -= int(b.mask[start:t + 1, i].sum())
                b.mask[start:t + 1, i] = False
                batch.env_errors += 1
                self.env_errors += 1
                if self.max_env_errors is not None and self.env_errors > self.max_env_errors:
                    raise EnvFailure(f"{self.env_errors} episodes dropped because their env failed, more than "
                                     f"--max-env-errors {self.max_env_errors}; last: {final_info[ERROR_KEY][i]}")
            else:
                if has_final[i]:
                    self._check_finite(i, 0.0, final_obs[i], "final observation")
                    b.next_obs[t, i] = final_obs[i]
                if batch.active[i]:
                    batch.returns.append(float(self._ep_return[i]))
                    batch.lengths.append(int(self._ep_length[i]))
                    if rand is not None:
                        batch.factors.append(rand.factors[i].copy())
                    if self.mode == "episodes" and batch.collected >= self.batch_size:
                        batch.active[i] = False
                        batch.num_active -= 1
            batch.episode_start[i] = t + 1
        self._ep_return[ended] = 0.0
        self._ep_length[ended] = 0
        if rand is not None:
            rand.start(self.venv, np.flatnonzero(ended))
            if self.context_obs:  # the next episodes' first observations: the robots start() just drew
                next_obs[ended, -rand.context_dim:] = rand.context()[ended]

    def _with_context(self, obs: np.ndarray) -> np.ndarray:
        """``obs`` as the policy reads it: with --policy-obs privileged, each row then its episode's context."""
        if not self.context_obs:
            return obs
        return np.concatenate([obs, self.randomizer.context()], 1)

    def _check_finite(self, i: int, reward: float, obs: np.ndarray, what: str) -> None:
        """EnvFailure naming env ``i``, its episode step and the first non-finite value, if there is one."""
        where = f"env {self.env_id}, env index {self.first_env_index + i}, episode step {int(self._ep_length[i])}"
        if not np.isfinite(reward):
            raise EnvFailure(f"{where}: reward is {reward}")
        bad = np.flatnonzero(~np.isfinite(obs))
        if bad.size:
            raise EnvFailure(f"{where}: {what}[{bad[0]}] is {obs[bad[0]]}")

    def reseed(self, seed: int) -> None:
        """Start fresh episodes, their envs seeded with ``seed``, at the next ``collect``."""
        self.seed = seed
        self._seeded = False
        self._obs = None
        if self.randomizer is not None:
            self.randomizer.reseed(seed)

    def iteration_stats(self) -> dict[str, float]:
        """Extra metrics of the last ``collect`` (a distributed sampler reports restarts and overhead)."""
        return {}

    def close(self) -> None:
        self.venv.close()

    # --- exact state, for resume --------------------------------------------------------------------
    def state_dict(self) -> dict:
        state = {"obs": None if self._obs is None else self._obs.copy(), "seeded": self._seeded,
                 "ep_return": self._ep_return.copy(), "ep_length": self._ep_length.copy(),
                 "envs": get_vector_state(self.venv) if self._obs is not None else None}
        if self.randomizer is not None:
            state["randomizer"] = self.randomizer.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        if state["obs"] is None:
            return
        if self.randomizer is not None:
            self.randomizer.load_state_dict(state["randomizer"])
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
