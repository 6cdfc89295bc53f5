"""Policies (Gaussian for continuous joints, categorical for discrete actions) and the value function.

The observation normaliser lives inside the policy (and is shared with the value function), so a
checkpoint of the policy is complete: ``robopg.load(run).act(obs)`` needs nothing else.
"""

from __future__ import annotations

import gymnasium as gym

from ..errors import ConfigError
from ..normalization import ObsNormalizer
from .base import FrozenSampler, Policy
from .categorical import CategoricalPolicy
from .gaussian import GaussianPolicy
from .spaces import check_spaces
from .value import ValueFunction


def make_policy(config, observation_space: gym.Space, action_space: gym.Space) -> Policy:
    from ..randomization import estimate_dim, gain_start_powers, policy_context

    check_spaces(config.env_id, observation_space, action_space)
    # A --policy-obs privileged policy reads the env's observation and then the true physics (the sampler, or
    # robopg.envs.context in evaluation, appends it).
    obs_dim = int(observation_space.shape[0]) + len(policy_context(config))
    gain = getattr(config, "action_gain", "fixed")
    if isinstance(action_space, gym.spaces.Box):
        return GaussianPolicy(obs_dim, action_space, list(config.hidden_sizes), config.activation,
                              config.init_log_std, config.normalize_observations, estimate_dim(config), gain,
                              gain_start_powers(config))
    if gain != "fixed":
        raise ConfigError("--action-gain: the policy's actions are discrete, there is no action to scale: use it on "
                          "continuous (Box) actions")
    return CategoricalPolicy(obs_dim, action_space, list(config.hidden_sizes), config.activation,
                             config.normalize_observations, estimate_dim(config))


__all__ = ["CategoricalPolicy", "FrozenSampler", "GaussianPolicy", "ObsNormalizer", "Policy", "ValueFunction",
           "check_spaces", "make_policy"]
