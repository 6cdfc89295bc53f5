"""Making environments: checking ids, choosing the simulator backend, SAME_STEP vector envs."""

from __future__ import annotations

import difflib

import gymnasium as gym
from gymnasium.vector import AutoresetMode

from ..errors import EnvError
from ..native import SUPPORTED_IDS as NATIVE_IDS


def check_env_id(env_id: str) -> None:
    if env_id in gym.registry:
        return
    close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see gymnasium.registry for the ids"
    raise EnvError(f"unknown environment id {env_id!r}{hint}")


def native_ids() -> tuple[str, ...]:
    """The env ids robopg's batched native MuJoCo backend reproduces (see robopg.native)."""
    return tuple(NATIVE_IDS)


def resolve_backend(env_id: str, backend: str = "auto") -> str:
    """Which simulator backend runs ``env_id``: 'gymnasium' or 'native'."""
    if backend == "gymnasium":
        return backend
    supported = native_ids()
    if backend == "native":
        if env_id not in supported:
            raise EnvError(f"--env-backend native does not support {env_id}; it supports "
                           f"{', '.join(supported) or 'no ids yet'} (use --env-backend gymnasium)")
        return backend
    return "native" if env_id in supported else "gymnasium"


def make_vector_env(env_id: str, num_envs: int, vectorization: str = "sync", backend: str = "gymnasium",
                    threads: int = 0) -> gym.vector.VectorEnv:
    """A vector env in SAME_STEP autoreset mode: Gymnasium's, or robopg's native batched MuJoCo one.

    Gymnasium 1.x defaults to NEXT_STEP: the step after an episode ends returns the reset observation with
    reward 0 and ignores the action. A sampler storing that step fabricates a transition. With SAME_STEP
    the ending step itself returns the reset observation, and the true final observation (the s_{t+1} a
    truncation bootstraps from) arrives in ``info["final_obs"]``.
    """
    check_env_id(env_id)
    if resolve_backend(env_id, backend) == "native":
        from ..native import make_native_vector_env

        return make_native_vector_env(env_id, num_envs, threads=threads)
    try:
        return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode=vectorization,
                            vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP})
    except gym.error.Error as e:
        raise EnvError(f"cannot make {env_id}: {e}") from e


def max_episode_steps(env_id: str) -> int | None:
    return gym.spec(env_id).max_episode_steps
