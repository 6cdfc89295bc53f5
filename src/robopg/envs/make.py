"""Making environments: checking ids (Gymnasium's own and ``module:EnvId``), choosing the simulator backend,
SAME_STEP vector envs with the run's env kwargs and observation flattening."""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import logging
import os
import sys
from typing import Any

import gymnasium as gym
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers import FlattenObservation

from ..errors import EnvError
from ..native import SUPPORTED_IDS as NATIVE_IDS
from ..native import make_native_vector_env, native_task, supports
from ..physics import get_physics
from .context import PhysicsContext
from .guard import EnvGuard
from .history import ObservationHistory, ObservationHistoryEnv

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


def split_env_id(env_id: str) -> tuple[str, str]:
    """Gymnasium's ``"module:EnvId"`` -> ("module", "EnvId"); a plain id -> ("", id)."""
    module, _, name = env_id.rpartition(":")
    return module, name


def import_env_module(module: str) -> None:
    """Import the module that registers a ``module:EnvId`` id, as ``gym.make`` does. A module beside the user
    (in the current directory) is found even when ``robopg`` runs as an installed script, whose ``sys.path``
    starts at its own folder rather than at the current directory, as ``python -m`` would."""
    try:
        importlib.import_module(module)
        return
    except ModuleNotFoundError as e:
        cwd = os.getcwd()
        if e.name != module.split(".")[0] or cwd in sys.path or "" in sys.path:
            raise EnvError(f"cannot import {module!r} (for {module}:<EnvId>): {_one_line(e)}") from None
    except Exception as e:  # the user's module raised while importing: its error, in one line
        raise EnvError(f"cannot import {module!r} (for {module}:<EnvId>): {_one_line(e)}") from None
    sys.path.append(cwd)
    try:
        importlib.import_module(module)
    except Exception as e:
        raise EnvError(f"cannot import {module!r} (for {module}:<EnvId>): {_one_line(e)}") from None


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:300]}" if text else type(e).__name__


def check_env_id(env_id: str) -> None:
    module, name = split_env_id(env_id)
    if module:
        import_env_module(module)
    if name in gym.registry:
        return
    if module:
        own = _registered_by(module)
        raise EnvError(f"unknown environment id {name!r}: importing {module!r} registered no such id"
                       + (f"; it registers {', '.join(own)}" if own else ""))
    close = difflib.get_close_matches(name, list(gym.registry), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see gymnasium.registry for the ids"
    raise EnvError(f"unknown environment id {env_id!r}{hint} (an env of your own: MODULE:ID, e.g. "
                   f"my_robots:Arm-v0, imports MODULE first)")


def _registered_by(module: str) -> list[str]:
    """The ids whose entry point lives in ``module``'s package."""
    package = module.split(".")[0]
    found = []
    for env_id, spec in gym.registry.items():
        entry = spec.entry_point
        where = entry if isinstance(entry, str) else getattr(entry, "__module__", "") or ""
        if where.split(":")[0].split(".")[0] == package:
            found.append(env_id)
    return found


def env_spec(env_id: str) -> gym.envs.registration.EnvSpec:
    """The registered spec of ``env_id`` (its module imported first for ``module:EnvId``)."""
    check_env_id(env_id)
    return gym.spec(split_env_id(env_id)[1])


def check_env_kwargs(env_id: str, env_kwargs: dict[str, Any] | None) -> None:
    """EnvError naming a key the env's constructor does not take (checked before anything is made)."""
    if not env_kwargs:
        return
    entry = env_spec(env_id).entry_point
    try:
        creator = gym.envs.registration.load_env_creator(entry) if isinstance(entry, str) else entry
        params = inspect.signature(creator).parameters.values()
    except (TypeError, ValueError, ImportError, AttributeError):
        return  # no signature to read: the constructor itself will say
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return
    names = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unknown = [k for k in env_kwargs if k not in names]
    if unknown:
        raise EnvError(f"--env-kwargs: {env_id} does not accept {', '.join(map(repr, unknown))} (it takes: "
                       f"{', '.join(n for n in names if n != 'self') or 'no arguments'})")


def native_ids() -> tuple[str, ...]:
    """The env ids robopg's batched native MuJoCo backend reproduces (see robopg.native)."""
    return tuple(NATIVE_IDS)


def resolve_backend(env_id: str, backend: str = "auto", env_kwargs: dict[str, Any] | None = None) -> str:
    """Which simulator backend runs ``env_id``: 'gymnasium' or 'native'. The native backend reproduces each
    robot with its default arguments and the few others its task names (``robopg.native.tasks.Task.options``);
    any other env kwargs mean Gymnasium's."""
    if backend == "gymnasium":
        return backend
    supported = native_ids()
    if backend == "native":
        if env_id not in supported:
            raise EnvError(f"--env-backend native does not support {env_id}; it supports "
                           f"{', '.join(supported) or 'no ids yet'} (use --env-backend gymnasium)")
        native_task(env_id, env_kwargs)  # EnvError naming an argument it does not reproduce
        return backend
    return "native" if supports(env_id, env_kwargs) else "gymnasium"


def make_vector_env(env_id: str, num_envs: int, vectorization: str = "sync", backend: str = "gymnasium",
                    threads: int = 0, env_kwargs: dict[str, Any] | None = None,
                    flatten_observations: bool = False, on_env_error: str = "stop",
                    obs_history: int = 0, physics_context: tuple[str, ...] = ()) -> gym.vector.VectorEnv:
    """A vector env in SAME_STEP autoreset mode: Gymnasium's, or robopg's native batched MuJoCo one.

    Gymnasium 1.x defaults to NEXT_STEP: the step after an episode ends returns the reset observation with
    reward 0 and ignores the action. A sampler storing that step fabricates a transition. With SAME_STEP
    the ending step itself returns the reset observation, and the true final observation (the s_{t+1} a
    truncation bootstraps from) arrives in ``info["final_obs"]``.

    Each Gymnasium sub-env is wrapped in an ``EnvGuard`` (``on_env_error``: 'stop' or 'reset'), so an env that
    raises is reported by id and index; the native backend's batched physics raises no per-env errors.
    ``obs_history`` K > 0 stacks the last K observations and actions onto every observation (``history``);
    ``physics_context`` (physics parameter names) then appends the log of each env's factors of them
    (``context``: how a ``--policy-obs privileged`` policy is evaluated).
    """
    venv = _make_vector_env(env_id, num_envs, vectorization, backend, threads, env_kwargs, flatten_observations,
                            on_env_error)
    try:
        if obs_history:
            venv = ObservationHistory(venv, obs_history)
        if physics_context:
            get_physics(venv)  # an EnvError here if the env has no physics to read
            venv = PhysicsContext(venv, physics_context)
    except EnvError:
        venv.close()
        raise
    return venv


def _make_vector_env(env_id, num_envs, vectorization, backend, threads, env_kwargs, flatten_observations,
                     on_env_error) -> gym.vector.VectorEnv:
    check_env_id(env_id)
    if resolve_backend(env_id, backend, env_kwargs) == "native":
        return make_native_vector_env(env_id, num_envs, threads=threads,  # flat Box observations already
                                      env_kwargs=env_kwargs)
    check_env_kwargs(env_id, env_kwargs)
    fns = [functools.partial(_make_guarded, split_env_id(env_id)[1], i, on_env_error, env_kwargs or {},
                             flatten_observations) for i in range(num_envs)]
    try:
        if vectorization == "sync":
            venv = gym.vector.SyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)
        else:
            fns[0]().close()  # a bad id or argument fails here, in this process, with Gymnasium's own message
            venv = gym.vector.AsyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)
    except gym.error.Error as e:
        raise EnvError(f"cannot make {env_id}: {e}") from e
    except (TypeError, ValueError) as e:  # the env's constructor refused its arguments
        raise EnvError(f"cannot make {env_id}{_with(env_kwargs)}: {_one_line(e)}") from e
    _check_flat(env_id, venv.single_observation_space, venv)
    return venv


def make_vector_env_for(config, num_envs: int, backend: str | None = None) -> gym.vector.VectorEnv:
    """``make_vector_env`` with everything a run's config says about its env (id, backend, vectorization,
    threads, env kwargs, flattening, observation history)."""
    return make_vector_env(config.env_id, num_envs, config.vectorization, backend or config.env_backend,
                           config.env_threads, config.env_kwargs, config.flatten_observations, config.on_env_error,
                           config.obs_history)


def make_env(env_id: str, env_kwargs: dict[str, Any] | None = None, flatten_observations: bool = False,
             obs_history: int = 0, **make_kwargs: Any) -> gym.Env:
    """One Gymnasium env (e.g. to render): ``gym.make`` with the run's env kwargs, flattening and history."""
    check_env_id(env_id)
    check_env_kwargs(env_id, env_kwargs)
    try:
        env = gym.make(split_env_id(env_id)[1], **(env_kwargs or {}), **make_kwargs)
    except (TypeError, ValueError) as e:
        raise EnvError(f"cannot make {env_id}{_with(env_kwargs)}: {_one_line(e)}") from e
    env = FlattenObservation(env) if flatten_observations else env
    _check_flat(env_id, env.observation_space, env)
    if obs_history:
        try:
            return ObservationHistoryEnv(env, obs_history)
        except EnvError:
            env.close()
            raise
    return env


def _with(env_kwargs: dict[str, Any] | None) -> str:
    return f" with --env-kwargs {' '.join(f'{k}={v!r}' for k, v in env_kwargs.items())}" if env_kwargs else ""


def _check_flat(env_id: str, space: gym.Space, env) -> None:
    if isinstance(space, (gym.spaces.Dict, gym.spaces.Tuple)):
        env.close()
        raise EnvError(f"{env_id} has {type(space).__name__} observations; robopg's policies take one flat "
                       f"vector: pass --flatten-observations (Gymnasium's FlattenObservation)")


def _make_guarded(env_id: str, index: int, on_env_error: str, env_kwargs: dict[str, Any],
                  flatten_observations: bool) -> gym.Env:
    env = gym.make(env_id, **env_kwargs)
    return EnvGuard(FlattenObservation(env) if flatten_observations else env, index, on_env_error)


def max_episode_steps(env_id: str) -> int | None:
    return env_spec(env_id).max_episode_steps
