"""Which observation and action spaces robopg's policies can handle; a clear error for the rest."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from ..errors import EnvError


def check_spaces(env_id: str, observation_space: gym.Space, action_space: gym.Space) -> None:
    """Raise EnvError (shown as a one-line error) for spaces robopg's policies cannot handle."""
    if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 1:
        raise EnvError(f"{env_id}: robopg's policies take flat Box observations; this env has "
                       f"{observation_space} (flatten it with gymnasium.wrappers.FlattenObservation)")
    if isinstance(action_space, gym.spaces.Box):
        if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
            raise EnvError(f"{env_id}: Box action space {action_space} has infinite bounds; robopg clips "
                           "Gaussian actions to the bounds and needs them finite")
        return
    if isinstance(action_space, gym.spaces.Discrete):
        return
    raise EnvError(f"{env_id}: action space {type(action_space).__name__} is not supported "
                   "(robopg supports Box for continuous joints and Discrete)")
