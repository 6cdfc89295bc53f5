"""One-shot measured runs, one per child process: ``python -m benchmarks.workers KIND JSON``.

``learn_sb3`` and ``learn_zoo`` (the learning suite's SB3 runs) and ``scale`` (one scaling cell). Each returns a
dict that ``common.run_child`` prints and adds the child's peak RSS to. Throughput's long-lived sides are in
``benchmarks.sides``.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import emit


def _threads() -> None:
    import torch
    torch.set_num_threads(1)


def _robopg_trainer(env_id: str, num_envs: int, backend: str, run_dir: Path, iterations: int, **overrides):
    from robopg.presets import make_config
    from robopg.trainer import Trainer
    # pg unless told: the suites measure the seed's method whatever the robot's default rule.
    config = make_config(env_id, **{"algorithm": "pg", **overrides}, num_envs=num_envs, env_backend=backend,
                         tensorboard=False, checkpoint_every=10**6, log_every=1e9)
    per_iter = math.ceil(config.batch_size / num_envs) * num_envs
    config.steps = max(config.batch_size, iterations * per_iter)
    config.validate()
    from robopg.envs import resolve_backend
    config.env_backend = resolve_backend(env_id, config.env_backend)
    marks: list[tuple[int, float]] = []

    def mark(trainer, rollout, row):  # the end of one whole iteration: sample, weights, update, log
        marks.append((trainer.env_steps, time.perf_counter()))

    trainer = Trainer(config, run_dir, callbacks=[mark])
    return trainer, config, per_iter, marks


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


def zoo_hyperparams(env_id: str) -> tuple[str, dict]:
    """rl-zoo3's PPO hyperparameters (``rl_zoo3/hyperparams/ppo.yml``) for the newest older version of
    ``env_id`` it lists (v4, v3, v2: the same robots and rewards up to small changes), else its MuJoCo defaults
    (the ``Ant-v4`` entry: SB3's defaults with VecNormalize); returns the key used and its entry."""
    import rl_zoo3
    import yaml
    table = yaml.safe_load((Path(rl_zoo3.__file__).parent / "hyperparams" / "ppo.yml").read_text())
    name = env_id.rsplit("-v", 1)[0]
    for version in ("v4", "v3", "v2"):
        if f"{name}-{version}" in table:
            return f"{name}-{version}", dict(table[f"{name}-{version}"])
    return "Ant-v4 (rl-zoo3's MuJoCo defaults)", dict(table["Ant-v4"])


def _zoo_kwargs(hp: dict) -> tuple[int, dict, dict | None]:
    """(n_envs, PPO kwargs, VecNormalize kwargs or None) from an rl-zoo3 entry, as its ExperimentManager reads
    it: ``lin_X`` is a schedule falling linearly from X to 0, ``policy_kwargs`` a Python expression over nn."""
    import torch.nn as nn
    hp = dict(hp)
    n_envs = int(hp.pop("n_envs", 1))
    normalize = hp.pop("normalize", False)
    for unused in ("n_timesteps", "policy", "env_wrapper", "callback", "frame_stack"):
        hp.pop(unused, None)
    for k in ("learning_rate", "clip_range"):
        if isinstance(hp.get(k), str) and hp[k].startswith("lin_"):
            start = float(hp[k][4:])
            hp[k] = lambda progress, start=start: progress * start
    if isinstance(hp.get("policy_kwargs"), str):
        hp["policy_kwargs"] = eval(hp["policy_kwargs"], {"nn": nn, "dict": dict})  # noqa: S307 (rl-zoo3's own file)
    norm = None
    if normalize:
        norm = {"gamma": hp.get("gamma", 0.99)}
        if isinstance(normalize, str):
            norm.update(eval(normalize, {"dict": dict}))  # noqa: S307
    return n_envs, hp, norm


def learn_zoo(env_id: str, seed: int, steps: int, out: str, env_kwargs: dict | None = None) -> dict:
    """SB3 PPO with rl-zoo3's tuned hyperparameters for ``env_id`` (``zoo_hyperparams``), VecNormalize as
    rl-zoo3 wraps it; the final policy is evaluated as ``learn_sb3``'s (10 deterministic episodes, eval seed
    10000), through the training run's frozen observation statistics and with raw rewards. ``env_kwargs``: the
    env's options, in training and evaluation alike."""
    _threads()
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecNormalize

    source, hp = zoo_hyperparams(env_id)
    n_envs, kwargs, norm = _zoo_kwargs(hp)
    env_kwargs = dict(env_kwargs or {})
    venv = make_vec_env(env_id, n_envs=n_envs, seed=seed, env_kwargs=env_kwargs)
    if norm is not None:
        venv = VecNormalize(venv, **norm)
    model = PPO("MlpPolicy", venv, device="cpu", seed=seed, **kwargs)
    curve: list[tuple[int, float]] = []
    from stable_baselines3.common.callbacks import BaseCallback

    class Episodes(BaseCallback):
        def _on_step(self):
            for info in self.locals["infos"]:
                if "episode" in info:
                    curve.append((self.num_timesteps, float(info["episode"]["r"])))
            return True

    t0 = time.perf_counter()
    model.learn(total_timesteps=steps, callback=Episodes())
    wall = time.perf_counter() - t0
    Path(out).mkdir(parents=True, exist_ok=True)
    model.save(str(Path(out) / "model.zip"))
    eval_env = make_vec_env(env_id, n_envs=1, seed=10_000, env_kwargs=env_kwargs)
    if norm is not None:
        venv.save(str(Path(out) / "vecnormalize.pkl"))
        eval_env = VecNormalize.load(str(Path(out) / "vecnormalize.pkl"), eval_env)
        eval_env.training, eval_env.norm_reward = False, False
    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=10, deterministic=True)
    return {"final_return": float(mean), "final_std": float(std), "eval_episodes": 10, "wall_s": wall,
            "env_steps": int(model.num_timesteps), "curve": curve, "num_envs": n_envs, "zoo_entry": source,
            "env_kwargs": env_kwargs,
            "hyperparameters": {k: (v if isinstance(v, (int, float, str, bool)) else repr(v))
                                for k, v in hp.items()}}


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
    from robopg.normalization import RewardScaler

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
        trainer.algorithm.update = timed(trainer.algorithm.update, "update")
        trainer.algorithm.critic.value_fit.fit = timed(trainer.algorithm.critic.value_fit.fit, "value_fit")
        start = {}

        def reset_after_warmup(trainer, rollout, row):  # after the callback that marks the iteration's end
            if len(marks) == warmup and not start:
                start["t"] = time.perf_counter()
                start["steps"] = trainer.env_steps
                for dct in (timers, parts):
                    for k in dct:
                        dct[k] = 0.0

        trainer.callbacks.append(reset_after_warmup)
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


KINDS = {"learn_sb3": learn_sb3, "learn_zoo": learn_zoo, "scale": scale}

if __name__ == "__main__":
    kind, kwargs = sys.argv[1], json.loads(sys.argv[2])
    emit(KINDS[kind](**kwargs))
