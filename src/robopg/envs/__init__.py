"""Environments: making them (``make``) and capturing their exact state for resume (``state``)."""

from ..errors import EnvError
from .make import (
    check_env_id,
    check_env_kwargs,
    env_spec,
    make_env,
    make_vector_env,
    make_vector_env_for,
    max_episode_steps,
    native_ids,
    resolve_backend,
    split_env_id,
)
from .state import get_env_state, get_vector_state, set_env_state, set_vector_state

__all__ = ["EnvError", "check_env_id", "check_env_kwargs", "env_spec", "get_env_state", "get_vector_state",
           "make_env", "make_vector_env", "make_vector_env_for", "max_episode_steps", "native_ids",
           "resolve_backend", "set_env_state", "set_vector_state", "split_env_id"]
