"""The Python entry points: ``train``, ``resume``, ``load``, ``evaluate``."""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import checkpoint
from .config import Config
from .envs import check_env_id, check_env_kwargs, make_vector_env, resolve_backend
from .episodes import episode_returns
from .errors import CheckpointError, ConfigError
from .policies import Policy, make_policy
from .runlock import LOCK, RunLock
from .trainer import Callback, Run, Trainer


def default_run_dir(config: Config) -> Path:
    name = config.name or f"{config.estimator}-{config.baseline}-s{config.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    return Path("runs") / config.env_id / name


def train(config: Config, run_dir: str | Path | None = None, overwrite: bool = False,
          callbacks: Sequence[Callback] = ()) -> Run:
    """Train a policy as ``config`` says; write the run directory; return the ``Run``.

    ``callbacks`` are called after every iteration (``robopg.trainer.Callback``). ``config`` is not changed:
    the run's own copy, with its backend, env count and directory resolved, is ``run.config``.
    """
    config.validate()
    check_env_id(config.env_id)
    check_env_kwargs(config.env_id, config.env_kwargs)
    if config.workers:
        from .distributed import require_ray
        require_ray()  # before the run directory exists: a missing extra leaves nothing behind
    run_dir = Path(run_dir or config.run_dir or default_run_dir(config))
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--run-dir: {run_dir} is a file, not a directory")
    config = dataclasses.replace(config, env_backend=resolve_backend(config.env_id, config.env_backend,
                                                                     config.env_kwargs),
                                 num_envs=config.resolved_num_envs(), run_dir=str(run_dir))
    created = not run_dir.exists()
    with RunLock(run_dir):
        if (run_dir / "config.yaml").exists():
            if not overwrite:
                raise ConfigError(f"--run-dir: {run_dir} already holds a run; resume it with `robopg resume "
                                  f"{run_dir}`, or pass --overwrite to start again")
            _empty(run_dir)
        config.save(run_dir / "config.yaml")
        try:
            trainer = Trainer(config, run_dir, callbacks)
            if config.distill_from:  # a fresh student; a resumed one has its own checkpoint
                from .distill import init_student

                try:  # a missing or damaged teacher: CheckpointError, one line
                    init_student(trainer.policy, trainer.physics_fit, config, load(config.distill_from))
                except BaseException:
                    trainer.close()
                    raise
        except BaseException:
            # Nothing was trained (an env that cannot be built, a Ray cluster that cannot be joined): leave no
            # half-made run behind that a second try would refuse to overwrite.
            if created:
                shutil.rmtree(run_dir, ignore_errors=True)
            else:
                (run_dir / "config.yaml").unlink(missing_ok=True)
            raise
        return trainer.train()


def _empty(run_dir: Path, keep: tuple[str, ...] = (LOCK,)) -> None:
    """Remove a run's files (for --overwrite, or a run restarted from nothing), keeping the lock this process
    holds."""
    for child in run_dir.iterdir():
        if child.name in keep:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def resume(run_dir: str | Path, steps: int | None = None, callbacks: Sequence[Callback] = ()) -> Run:
    """Continue an interrupted run from checkpoints/latest.pt; ``steps`` can extend its budget."""
    run_dir = Path(run_dir)
    config = load_config(run_dir)
    with RunLock(run_dir):
        if steps is not None:
            config.steps = steps
            config.validate()
            config.save(run_dir / "config.yaml")
        latest = run_dir / "checkpoints" / "latest.pt"
        if not latest.exists():
            # Stopped before its first checkpoint: nothing to continue from, so the run starts again (the same
            # config and seed give the numbers it would have had).
            _empty(run_dir, keep=(LOCK, "config.yaml"))
            return Trainer(config, run_dir, callbacks).train()
        data = checkpoint.load(latest, env_id=config.env_id)
        checkpoint.remove_stale_temporaries(run_dir / "checkpoints")
        trainer = Trainer(config, run_dir, callbacks)
        try:
            trainer.load_checkpoint(data)
        except BaseException:
            trainer.close()  # Ray workers, and a Ray instance started for the run, end here too
            raise
        return trainer.train()


def load_config(run_dir: str | Path) -> Config:
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{run_dir} is not a robopg run: it has no config.yaml")
    return Config.load(run_dir / "config.yaml")


def _checkpoint_path(path: Path, which: str) -> Path:
    return path if path.is_file() else path / "checkpoints" / f"{which}.pt"


def load(path: str | Path, which: str = "latest") -> Policy:
    """A trained policy from a run directory (its ``checkpoints/<which>.pt``) or a checkpoint file.

    ``policy.act(obs, deterministic=True)`` gives the action to send to the environment. A run trained with
    ``--obs-history K`` acts on the stacked input: build its env with ``make_vector_env(..., obs_history=K)``
    (``policy.config.obs_history``), or ``robopg.envs.history.ObservationHistoryEnv`` around a single env.
    """
    file = _checkpoint_path(Path(path), which)
    if which == "best-eval" and not file.exists() and (Path(path) / "config.yaml").is_file():
        raise CheckpointError(f"{path} has no checkpoints/best-eval.pt: it was trained without --eval-every")
    ckpt = checkpoint.load(file)
    config = Config.from_dict(ckpt["config"])
    env = make_vector_env(config.env_id, 1, env_kwargs=config.env_kwargs,
                          flatten_observations=config.flatten_observations, obs_history=config.obs_history)
    try:
        policy = make_policy(config, env.single_observation_space, env.single_action_space)
    finally:
        env.close()
    try:
        policy.load_state_dict(ckpt["policy"])
    except RuntimeError as e:
        raise CheckpointError(f"{path}: the saved policy does not match its config "
                                         f"({str(e).splitlines()[0][:200]})") from e
    policy.eval()
    policy.config = config
    return policy


def trained_env_options(policy: Policy, env_id: str) -> dict:
    """The env kwargs, flattening and observation history ``policy`` was trained with, when it was loaded with
    ``load`` and ``env_id`` is its env's (else the env's defaults); and the physics a --policy-obs privileged
    policy reads (``make_vector_env``'s ``physics_context``)."""
    from .randomization import policy_context

    own = getattr(policy, "config", None)
    own = own if own is not None and own.env_id == env_id else Config(env_id=env_id)
    return {"env_kwargs": own.env_kwargs, "flatten_observations": own.flatten_observations,
            "obs_history": own.obs_history, "physics_context": policy_context(own)}


def evaluate(policy: Policy, env_id: str, episodes: int = 10, seed: int = 10_000,
             deterministic: bool = True, num_envs: int | None = None, backend: str = "gymnasium",
             env_kwargs: dict | None = None, flatten_observations: bool | None = None) -> dict:
    """Mean and std of the return over ``episodes`` complete episodes (seeded, so repeatable).

    ``env_kwargs`` and ``flatten_observations`` default to those the policy was trained with (when it was
    loaded with ``load`` and ``env_id`` is its env's)."""
    if episodes <= 0:
        raise ConfigError(f"--episodes: must be positive, got {episodes}")
    n = min(num_envs or episodes, episodes, 16)
    own = trained_env_options(policy, env_id)
    venv = make_vector_env(env_id, n, backend=backend,
                           env_kwargs=own["env_kwargs"] if env_kwargs is None else env_kwargs,
                           flatten_observations=own["flatten_observations"] if flatten_observations is None
                           else flatten_observations, obs_history=own["obs_history"],
                           physics_context=own["physics_context"])
    try:
        # Each env contributes its episodes in order until the total is reached, so the set of episodes
        # (and the result) does not depend on which env finishes first.
        quota = np.array([episodes // n + (i < episodes % n) for i in range(n)])
        per_env = episode_returns(venv, policy, [seed + i for i in range(n)], quota, deterministic, block=n)
        returns = [r for env_returns in per_env for r in env_returns]
    finally:
        venv.close()
    return {"mean_return": float(np.mean(returns)), "std_return": float(np.std(returns)),
            "episodes": len(returns)}
