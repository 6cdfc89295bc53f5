"""One Ray rollout worker: a vector env, a copy of the policy and a ``Sampler``, in its own process.

The class is plain Python (``robopg.distributed`` wraps it with ``ray.remote``), so it imports without Ray
and can be run in-process to replay what a worker sampled.
"""

from __future__ import annotations

import os
import time

import gymnasium as gym
import numpy as np
import torch

from .config import Config
from .envs import make_vector_env_for
from .policies import make_policy
from .randomization import make_randomizer
from .sampler import Rollout, Sampler


def worker_seed(run_seed: int, index: int, incarnation: int) -> int:
    """The seed of worker ``index``'s envs and action noise in its ``incarnation``-th life.

    Every restart (and every resume) starts a new incarnation with fresh, still deterministic, seeds: a
    restarted worker must not replay the episodes its predecessor already delivered.
    """
    entropy = [run_seed & 0xFFFFFFFF, index, incarnation]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


class RolloutWorker:
    def __init__(self, config: dict, env_spec: gym.envs.registration.EnvSpec | None, index: int,
                 batch_size: int, incarnation: int = 0):
        c = Config.from_dict(config)
        torch.set_num_threads(c.torch_threads)
        if env_spec is not None and env_spec.id not in gym.registry:
            # An env registered in the learner's process (a user's own robot) exists here too, as long as
            # its entry point is importable on this node.
            gym.registry[env_spec.id] = env_spec
        self.index = index
        self.run_seed = c.seed
        self.venv = make_vector_env_for(c, c.envs_per_worker)
        self.policy = make_policy(c, self.venv.single_observation_space, self.venv.single_action_space)
        self.sampler = Sampler(self.venv, self.policy, batch_size, c.resolved_batch_mode(), 0, c.env_id,
                               first_env_index=index * c.envs_per_worker, max_env_errors=c.max_env_errors,
                               randomizer=make_randomizer(c, c.envs_per_worker, 0, index * c.envs_per_worker,
                                                          venv=self.venv),
                               context_obs=c.policy_obs == "privileged")
        self.incarnation = -1
        self._reseed(incarnation)

    def _reseed(self, incarnation: int) -> None:
        seed = worker_seed(self.run_seed, self.index, incarnation)
        torch.manual_seed(seed)
        # Fresh episodes from the new seed: whatever the envs held belongs to an earlier incarnation.
        self.sampler.reseed(seed)
        self.incarnation = incarnation

    def pid(self) -> int:
        return os.getpid()

    def ready(self) -> int:
        return self.index

    def node_id(self) -> str:
        import ray  # only ever called inside a Ray worker

        return ray.get_runtime_context().get_node_id()

    def collect(self, policy_state: dict, incarnation: int, env_steps: int = 0,
                cell_probs=None) -> tuple[Rollout, float, float]:
        """Sample this worker's share with the learner's weights and normaliser statistics.

        ``incarnation`` is the learner's count for this worker; a process that Ray restarted (its
        ``__init__`` ran again with the first incarnation) or a resumed run reseeds before sampling;
        ``env_steps``, the run's so far, sets a --randomize-ramp's width, and ``cell_probs`` the iteration's
        --randomize-focus probabilities. Returns the rollout, and the wall and CPU seconds spent sampling (the
        learner reports the rest of its wait as overhead; CPU seconds measure a worker's speed apart from other
        load on its node).
        """
        if incarnation != self.incarnation:
            self._reseed(incarnation)
        self.policy.load_state_dict(policy_state)
        self.sampler.advance(env_steps, cell_probs)
        t0, c0 = time.perf_counter(), time.process_time()
        rollout = self.sampler.collect()
        return rollout, time.perf_counter() - t0, time.process_time() - c0

    def close(self) -> None:
        self.venv.close()
