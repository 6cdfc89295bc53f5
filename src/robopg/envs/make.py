"""Making environments: checking ids, choosing the simulator backend, SAME_STEP vector envs."""

from __future__ import annotations

import difflib
import functools
import logging

import gymnasium as gym
from gymnasium.vector import AutoresetMode

from ..errors import EnvError
from ..native import SUPPORTED_IDS as NATIVE_IDS
from .guard import EnvGuard

# MuJoCo's warnings (HalfCheetah's model warns that 'settotalmass' is deprecated every time it is built) go to
# this logger, not into a MUJOCO_LOG.TXT in the working directory; a training run writes them to <run>/run.log.
MUJOCO_LOG = logging.getLogger("robopg.mujoco")
MUJOCO_LOG.addHandler(logging.NullHandler())


def _route_mujoco_warnings() -> None:
    import mujoco

    def warn(message: str) -> None:
        # Called from MuJoCo's C code: an exception escaping here would abort the process (C++ terminate).
        try:
            MUJOCO_LOG.warning("MuJoCo: %s", message)
        except BaseException:  # noqa: BLE001
            pass

    mujoco.set_mju_user_warning(warn)


_route_mujoco_warnings()


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
                    threads: int = 0, on_env_error: str = "stop") -> gym.vector.VectorEnv:
    """A vector env in SAME_STEP autoreset mode: Gymnasium's, or robopg's native batched MuJoCo one.

    Gymnasium 1.x defaults to NEXT_STEP: the step after an episode ends returns the reset observation with
    reward 0 and ignores the action. A sampler storing that step fabricates a transition. With SAME_STEP
    the ending step itself returns the reset observation, and the true final observation (the s_{t+1} a
    truncation bootstraps from) arrives in ``info["final_obs"]``.

    Each Gymnasium sub-env is wrapped in an ``EnvGuard`` (``on_env_error``: 'stop' or 'reset'), so an env that
    raises is reported by id and index; the native backend's batched physics raises no per-env errors.
    """
    check_env_id(env_id)
    if resolve_backend(env_id, backend) == "native":
        from ..native import make_native_vector_env

        return make_native_vector_env(env_id, num_envs, threads=threads)
    fns = [functools.partial(_make_guarded, env_id, i, on_env_error) for i in range(num_envs)]
    try:
        if vectorization == "sync":
            return gym.vector.SyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)
        fns[0]().close()  # a bad id or argument fails here, in this process, with Gymnasium's own message
        return gym.vector.AsyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)
    except gym.error.Error as e:
        raise EnvError(f"cannot make {env_id}: {e}") from e


def _make_guarded(env_id: str, index: int, on_env_error: str) -> gym.Env:
    return EnvGuard(gym.make(env_id), index, on_env_error)


def max_episode_steps(env_id: str) -> int | None:
    return gym.spec(env_id).max_episode_steps
