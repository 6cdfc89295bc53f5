"""The measured side of every benchmark, one per child process: ``python -m benchmarks.workers KIND JSON``.

Each function does a fixed amount of work, times only the steady state (set-up, imports and the first
iteration are excluded on every side alike), and returns a dict; ``common.run_child`` adds the peak RSS.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import emit


def _threads() -> None:
    import torch
    torch.set_num_threads(1)


def _actions(space, num_envs: int, count: int, seed: int = 0) -> np.ndarray:
    """Precomputed uniform actions: Box.sample() costs ~15x a numpy draw and must not count against the limit."""
    rng = np.random.default_rng(seed)
    low, high = np.broadcast_to(space.low, space.shape), np.broadcast_to(space.high, space.shape)
    return rng.uniform(low, high, (count, num_envs, *space.shape)).astype(space.dtype)


def limit(env_id: str, num_envs: int, steps: int, backend: str = "gymnasium", threads: int = 0) -> dict:
    """The simulator's limit: the very vector env robopg trains on, stepped with precomputed actions."""
    from robopg.envs import make_vector_env
    venv = make_vector_env(env_id, num_envs, backend=backend, threads=threads)
    venv.reset(seed=0)
    acts = _actions(venv.single_action_space, num_envs, 64)
    for k in range(8):  # warm-up
        venv.step(acts[k])
    t_steps = math.ceil(steps / num_envs)
    t0 = time.perf_counter()
    for k in range(t_steps):
        venv.step(acts[k & 63])
    wall = time.perf_counter() - t0
    venv.close()
    return {"env_steps": t_steps * num_envs, "wall_s": wall, "steps_per_s": t_steps * num_envs / wall}


def envpool(env_id: str, num_envs: int, steps: int, threads: int = 1) -> dict:
    """EnvPool's C++ batched MuJoCo task, synchronous (batch_size = num_envs), precomputed actions."""
    import envpool as ep
    venv = ep.make_gymnasium(env_id, num_envs=num_envs, batch_size=num_envs, num_threads=threads, seed=0)
    venv.reset()
    acts = _actions(venv.action_space, num_envs, 64)
    for k in range(8):
        venv.step(acts[k])
    t_steps = math.ceil(steps / num_envs)
    t0 = time.perf_counter()
    for k in range(t_steps):
        venv.step(acts[k & 63])
    wall = time.perf_counter() - t0
    venv.close()
    return {"env_steps": t_steps * num_envs, "wall_s": wall, "steps_per_s": t_steps * num_envs / wall,
            "threads": threads}


def _robopg_trainer(env_id: str, num_envs: int, backend: str, run_dir: Path, iterations: int, **overrides):
    from robopg.presets import make_config
    from robopg.trainer import Trainer
    config = make_config(env_id, num_envs=num_envs, env_backend=backend, tensorboard=False,
                         checkpoint_every=10**6, log_every=1e9, **overrides)
    per_iter = math.ceil(config.batch_size / num_envs) * num_envs
    config.steps = max(config.batch_size, iterations * per_iter)
    config.validate()
    from robopg.envs import resolve_backend
    config.env_backend = resolve_backend(env_id, config.env_backend)
    trainer = Trainer(config, run_dir)
    marks: list[tuple[int, float]] = []
    after = trainer._after_iteration

    def timed_after(row):  # the end of one whole iteration: sample, weights, update, log, checkpoint
        after(row)
        marks.append((trainer.env_steps, time.perf_counter()))

    trainer._after_iteration = timed_after
    return trainer, config, per_iter, marks


def robopg(env_id: str, num_envs: int, steps: int, backend: str = "gymnasium") -> dict:
    """robopg's whole training loop (Trainer.train) with the env's preset at ``num_envs`` envs."""
    from robopg.presets import make_config
    per_iter = math.ceil(make_config(env_id).batch_size / num_envs) * num_envs
    measured = max(1, math.ceil(steps / per_iter))
    with tempfile.TemporaryDirectory() as d:
        trainer, config, per_iter, marks = _robopg_trainer(env_id, num_envs, backend, Path(d), measured + 1)
        trainer.train()
    (s0, t0), (s1, t1) = marks[0], marks[-1]
    return {"env_steps": s1 - s0, "wall_s": t1 - t0, "steps_per_s": (s1 - s0) / (t1 - t0),
            "iterations": len(marks) - 1, "batch_size": per_iter, "backend": config.env_backend}


def sb3(algo: str, env_id: str, num_envs: int, steps: int) -> dict:
    """SB3 A2C or PPO, default hyperparameters, DummyVecEnv of ``num_envs``, CPU: learn() between rollout ends."""
    _threads()
    from stable_baselines3 import A2C, PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    cls = {"a2c": A2C, "ppo": PPO}[algo]
    model = cls("MlpPolicy", make_vec_env(env_id, n_envs=num_envs, seed=0), device="cpu", seed=0)
    per_iter = model.n_steps * num_envs
    measured = max(1, math.ceil(steps / per_iter))

    class Marks(BaseCallback):
        # Rollout end k to rollout end k+m spans m whole iterations (train, then collect); stopping at the
        # next step skips a last train() that no mark would time.
        def __init__(self):
            super().__init__()
            self.marks: list[tuple[int, float]] = []

        def _on_rollout_end(self):
            self.marks.append((self.num_timesteps, time.perf_counter()))

        def _on_step(self):
            return len(self.marks) < measured + 1

    cb = Marks()
    model.learn(total_timesteps=10**12, callback=cb)
    (s0, t0), (s1, t1) = cb.marks[0], cb.marks[-1]
    return {"env_steps": s1 - s0, "wall_s": t1 - t0, "steps_per_s": (s1 - s0) / (t1 - t0),
            "iterations": len(cb.marks) - 1, "batch_size": per_iter}


# --- learning -----------------------------------------------------------------------------------------
def learn_sb3(algo: str, env_id: str, seed: int, steps: int, num_envs: int, out: str) -> dict:
    """Train SB3 A2C/PPO with default hyperparameters; every episode's return is recorded from Monitor; the
    final policy is evaluated for 10 deterministic episodes (the protocol ``robopg eval`` uses)."""
    _threads()
    from stable_baselines3 import A2C, PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    cls = {"a2c": A2C, "ppo": PPO}[algo]
    model = cls("MlpPolicy", make_vec_env(env_id, n_envs=num_envs, seed=seed), device="cpu", seed=seed)

    class Episodes(BaseCallback):
        def __init__(self):
            super().__init__()
            self.curve: list[tuple[int, float]] = []

        def _on_step(self):
            for info in self.locals["infos"]:
                if "episode" in info:
                    self.curve.append((self.num_timesteps, float(info["episode"]["r"])))
            return True

    cb = Episodes()
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps, callback=cb)
    wall = time.perf_counter() - t0
    Path(out).mkdir(parents=True, exist_ok=True)
    model.save(str(Path(out) / "model.zip"))
    eval_env = make_vec_env(env_id, n_envs=1, seed=10_000)
    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=10, deterministic=True)
    return {"final_return": float(mean), "final_std": float(std), "eval_episodes": 10, "wall_s": wall,
            "env_steps": int(model.num_timesteps), "curve": cb.curve, "num_envs": num_envs}


# --- scaling ------------------------------------------------------------------------------------------
def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    import resource
    return pages * resource.getpagesize() / 2**20


def scale(env_id: str, num_envs: int, batch_size: int, iterations: int, backend: str = "gymnasium") -> dict:
    """robopg's loop at one (num_envs, batch_size), with the time of each part of an iteration."""
    import robopg.estimators as est
    import robopg.metrics as met
    from robopg.trainer import RewardScaler

    rss_before = _rss_mb()
    timers = {"env_step": 0.0, "policy_inference": 0.0}
    parts = {"sample": 0.0, "estimator": 0.0, "value_fit": 0.0, "update": 0.0, "logging": 0.0}

    def timed(fn, key):
        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                parts[key] += time.perf_counter() - t
        return wrapper

    # Monkeypatched in this child only: the trainer looks these up at call time.
    est.weights = timed(est.weights, "estimator")
    RewardScaler.scale = timed(RewardScaler.scale, "estimator")
    met.MetricsLog.write = timed(met.MetricsLog.write, "logging")
    met.Progress.update = timed(met.Progress.update, "logging")

    warmup = 1 if batch_size <= 4096 else 0
    with tempfile.TemporaryDirectory() as d:
        trainer, config, per_iter, marks = _robopg_trainer(env_id, num_envs, backend, Path(d),
                                                           iterations + warmup, batch_size=batch_size)
        rss_built = _rss_mb()
        trainer.sampler.timers = timers
        trainer.sampler.collect = timed(trainer.sampler.collect, "sample")
        trainer.update = timed(trainer.update, "update")
        trainer._fit_value = timed(trainer._fit_value, "value_fit")
        trainer._row = timed(trainer._row, "logging")
        after = trainer._after_iteration  # already wrapped to mark the iteration's end
        start = {}

        def after_and_reset(row):
            t = time.perf_counter()
            after(row)
            parts["logging"] += time.perf_counter() - t  # checkpoints count as logging
            if len(marks) == warmup and not start:
                start["t"] = time.perf_counter()
                start["steps"] = trainer.env_steps
                for dct in (timers, parts):
                    for k in dct:
                        dct[k] = 0.0

        trainer._after_iteration = after_and_reset
        t_begin = time.perf_counter()
        trainer.train()
    if not start:
        start = {"t": t_begin, "steps": 0}
    s1, t1 = marks[-1]
    wall = t1 - start["t"]
    n_iter = len(marks) - warmup
    # update() contains the estimator and the value fit: report the rest of it as the policy update.
    sample_other = parts["sample"] - timers["env_step"] - timers["policy_inference"]
    policy_update = parts["update"] - parts["estimator"] - parts["value_fit"]
    breakdown = {"env_step": timers["env_step"], "policy_inference": timers["policy_inference"],
                 "sampler_other": sample_other, "estimator": parts["estimator"], "policy_update": policy_update,
                 "value_fit": parts["value_fit"], "logging": parts["logging"]}
    breakdown["other"] = wall - sum(breakdown.values())
    return {"env_steps": s1 - start["steps"], "wall_s": wall, "steps_per_s": (s1 - start["steps"]) / wall,
            "iterations": n_iter, "s_per_iteration": wall / n_iter, "batch_size": per_iter,
            "breakdown_s": breakdown, "rss_before_mb": rss_before, "rss_built_mb": rss_built,
            "rss_end_mb": _rss_mb(), "backend": config.env_backend}


KINDS = {"limit": limit, "envpool": envpool, "robopg": robopg, "sb3": sb3, "learn_sb3": learn_sb3, "scale": scale}

if __name__ == "__main__":
    kind, kwargs = sys.argv[1], json.loads(sys.argv[2])
    emit(KINDS[kind](**kwargs))
