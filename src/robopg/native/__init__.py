"""robopg's native backend: Gymnasium v5 MuJoCo robots stepped in one batched MuJoCo call per control step.

Same model files, formulas, default weights, reset noise (the same draws, seed for seed), episode ends
and time limits as Gymnasium's v5 classes; ``tests/test_native.py`` checks the equivalence step by step.
Per-env physics parameters (``NativeVectorEnv.set_physics`` / ``get_physics``, see ``robopg.physics``) give
the same trajectories as the same factors on Gymnasium's envs (``tests/test_physics.py``).
"""

from __future__ import annotations

from ..errors import EnvError
from .tasks import TASKS
from .vector_env import NativeVectorEnv, available_cores

SUPPORTED_IDS: tuple[str, ...] = tuple(TASKS)


def make_native_vector_env(env_id: str, num_envs: int, threads: int = 0,
                           max_episode_steps: int | None = None) -> NativeVectorEnv:
    """A native vector env for ``env_id`` (one of ``SUPPORTED_IDS``); ``threads=0`` uses every core
    available to this process; ``max_episode_steps`` overrides the registered time limit, as in
    ``gym.make``."""
    if env_id not in TASKS:
        raise EnvError(f"the native backend does not support {env_id}; it supports {', '.join(SUPPORTED_IDS)} "
                       "(use --env-backend gymnasium)")
    return NativeVectorEnv(TASKS[env_id], num_envs, threads, max_episode_steps)


__all__ = ["SUPPORTED_IDS", "NativeVectorEnv", "available_cores", "make_native_vector_env"]
