"""robopg's native backend: Gymnasium v5 MuJoCo robots stepped in one batched MuJoCo call per control step.

Same model files, formulas, default weights, reset noise (the same draws, seed for seed), episode ends
and time limits as Gymnasium's v5 classes; ``tests/test_native.py`` checks the equivalence step by step.
Per-env physics parameters (``NativeVectorEnv.set_physics`` / ``get_physics``, see ``robopg.physics``) give
the same trajectories as the same factors on Gymnasium's envs (``tests/test_physics.py``).
"""

from __future__ import annotations

from typing import Any

from ..errors import EnvError
from .tasks import TASKS, Task
from .vector_env import NativeVectorEnv, available_cores

SUPPORTED_IDS: tuple[str, ...] = tuple(TASKS)


def native_task(env_id: str, env_kwargs: dict[str, Any] | None = None) -> Task:
    """The task ``gym.make(env_id, **env_kwargs)`` builds, as the native backend runs it; EnvError naming the id,
    argument or value it does not reproduce."""
    if env_id not in TASKS:
        raise EnvError(f"the native backend does not support {env_id}; it supports {', '.join(SUPPORTED_IDS)} "
                       "(use --env-backend gymnasium)")
    task = TASKS[env_id]
    try:
        return task.with_options(env_kwargs)
    except KeyError as e:
        takes = ", ".join(task.options) or "none"
        raise EnvError(f"--env-kwargs: the native backend's {env_id} does not take {e.args[0]!r} (it takes: "
                       f"{takes}; use --env-backend gymnasium)") from None
    except ValueError as e:
        raise EnvError(f"--env-kwargs: {e} (the native backend's {env_id})") from None


def supports(env_id: str, env_kwargs: dict[str, Any] | None = None) -> bool:
    """Whether the native backend reproduces ``gym.make(env_id, **env_kwargs)``."""
    try:
        native_task(env_id, env_kwargs)
    except EnvError:
        return False
    return True


def make_native_vector_env(env_id: str, num_envs: int, threads: int = 0, max_episode_steps: int | None = None,
                           env_kwargs: dict[str, Any] | None = None) -> NativeVectorEnv:
    """A native vector env for ``env_id`` (one of ``SUPPORTED_IDS``) built as ``gym.make(env_id, **env_kwargs)``
    would be (the arguments its task reproduces: ``Task.options``); ``threads=0`` uses every core available to
    this process; ``max_episode_steps`` overrides the registered time limit, as in ``gym.make``."""
    return NativeVectorEnv(native_task(env_id, env_kwargs), num_envs, threads, max_episode_steps)


__all__ = ["SUPPORTED_IDS", "NativeVectorEnv", "available_cores", "make_native_vector_env", "native_task",
           "supports"]
