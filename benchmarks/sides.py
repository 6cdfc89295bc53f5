"""Throughput sides as long-lived child processes: ``python -m benchmarks.sides KIND JSON``.

A side sets itself up once, runs to steady state, then measures one repetition each time the parent writes
``go`` on its stdin, and reports it on stdout. The parent alternates ``go`` between sides (A, B, C, A, ...),
so drift reaches every side alike, no side pays its start-up in the timing, and each side's peak RSS is its
own process's. While a side waits for ``go`` its clock is stopped: a repetition is timed from the moment it
resumes to the end of the whole iteration in which it reached its step count.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import READY, emit


class Pacer:
    """Blocks between repetitions; ``mark`` returns True once a repetition has been reported."""

    def __init__(self, steps: int):
        self.steps = steps
        self.t0 = self.s0 = None
        self.extra: dict = {}

    def wait(self, steps_now: int) -> None:
        if self.t0 is None:
            print(READY, flush=True)  # set up and warmed up: the parent starts rounds once every side is
        line = sys.stdin.readline().strip()
        if line != "go":  # "exit" or a closed pipe
            sys.stdout.flush()
            os._exit(0)
        self.s0, self.t0 = steps_now, time.perf_counter()

    def mark(self, steps_now: int, iterations: int = 1) -> None:
        if self.t0 is None:  # the end of the warm-up: wait for the first repetition
            self.wait(steps_now)
            return
        if steps_now - self.s0 >= self.steps:
            wall = time.perf_counter() - self.t0
            emit({"env_steps": steps_now - self.s0, "wall_s": wall, "steps_per_s": (steps_now - self.s0) / wall,
                  **self.extra})
            self.wait(steps_now)


def _actions(space, num_envs: int, count: int = 64, seed: int = 0) -> np.ndarray:
    """Precomputed uniform actions: Box.sample() costs ~15x a numpy draw and must not count against the limit."""
    rng = np.random.default_rng(seed)
    low, high = np.broadcast_to(space.low, space.shape), np.broadcast_to(space.high, space.shape)
    return rng.uniform(low, high, (count, num_envs, *space.shape)).astype(space.dtype)


def _step_forever(venv, space, num_envs: int, pacer: Pacer) -> None:
    acts = _actions(space, num_envs)
    per_rep = math.ceil(pacer.steps / num_envs)
    for k in range(8):  # warm-up
        venv.step(acts[k])
    steps = 0
    pacer.mark(steps)
    while True:
        for k in range(per_rep):
            venv.step(acts[k & 63])
        steps += per_rep * num_envs
        pacer.mark(steps)


def limit(env_id: str, num_envs: int, steps: int, backend: str = "gymnasium", threads: int = 0) -> None:
    """The simulator's limit: the very vector env robopg trains on, stepped with precomputed actions."""
    from robopg.envs import make_vector_env
    venv = make_vector_env(env_id, num_envs, backend=backend, threads=threads)
    venv.reset(seed=0)
    _step_forever(venv, venv.single_action_space, num_envs, Pacer(steps))


def envpool(env_id: str, num_envs: int, steps: int, threads: int = 1) -> None:
    """EnvPool's C++ batched MuJoCo task, synchronous (batch_size = num_envs)."""
    import envpool as ep
    venv = ep.make_gymnasium(env_id, num_envs=num_envs, batch_size=num_envs, num_threads=threads, seed=0)
    venv.reset()
    _step_forever(venv, venv.action_space, num_envs, Pacer(steps))


def robopg(env_id: str, num_envs: int, steps: int, backend: str = "gymnasium", algorithm: str = "pg",
           overrides: dict | None = None) -> None:
    """robopg's whole training loop: Trainer.train() with the env's ``algorithm`` preset at ``num_envs`` envs,
    then ``overrides``. (``algorithm`` is explicit: the suites measure pg unless told otherwise, whatever the
    robot's default rule.)"""
    from robopg.envs import resolve_backend
    from robopg.presets import make_config
    from robopg.trainer import Trainer
    config = make_config(env_id, algorithm=algorithm, num_envs=num_envs, env_backend=backend, tensorboard=False,
                         checkpoint_every=10**6, log_every=1e9, **(overrides or {}))
    config.steps = 10**9  # runs until the parent says exit; the lr schedule barely moves meanwhile
    config.env_backend = resolve_backend(env_id, config.env_backend)
    config.validate()
    pacer = Pacer(steps)
    pacer.extra = {"batch_size": math.ceil(config.batch_size / num_envs) * num_envs, "backend": config.env_backend}
    with tempfile.TemporaryDirectory() as d:
        def paced(trainer, rollout, row):  # the end of one whole iteration: sample, weights, update, log
            pacer.mark(trainer.env_steps)

        Trainer(config, Path(d), callbacks=[paced]).train()


def sb3(algo: str, env_id: str, num_envs: int, steps: int, batch_size: int | None = None) -> None:
    """SB3 A2C or PPO, default hyperparameters (PPO: ``n_steps = batch_size // num_envs`` when given),
    DummyVecEnv of ``num_envs``, CPU; paced at rollout ends, so a repetition is whole iterations (train, then
    collect)."""
    import torch
    torch.set_num_threads(1)
    from stable_baselines3 import A2C, PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    cls = {"a2c": A2C, "ppo": PPO}[algo]
    kwargs = {"n_steps": batch_size // num_envs} if batch_size else {}
    model = cls("MlpPolicy", make_vec_env(env_id, n_envs=num_envs, seed=0), device="cpu", seed=0, **kwargs)
    pacer = Pacer(steps)
    pacer.extra = {"batch_size": model.n_steps * num_envs}

    class Paced(BaseCallback):
        def _on_rollout_end(self):
            pacer.mark(self.num_timesteps)

        def _on_step(self):
            return True

    model.learn(total_timesteps=10**12, callback=Paced())


KINDS = {"limit": limit, "envpool": envpool, "robopg": robopg, "sb3": sb3}

if __name__ == "__main__":
    KINDS[sys.argv[1]](**json.loads(sys.argv[2]))
