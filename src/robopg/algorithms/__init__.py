"""Update rules: how a rollout's weights Psi turn into a parameter step. One module per rule.

Each is an object with ``update(rollout, iteration, progress) -> dict of floats``, ``modules()``,
``state_dict()`` and ``load_state_dict()``; the runner (``robopg.trainer``) only samples, calls ``update``,
logs and checkpoints.
"""

from __future__ import annotations

from ..errors import ConfigError
from .frozen import Frozen
from .natural import NaturalGradient
from .policy_gradient import PolicyGradient
from .ppo import PPO

ALGORITHMS = {"pg": PolicyGradient, "npg": NaturalGradient, "trpo": NaturalGradient, "ppo": PPO}


def make_algorithm(config, policy, num_envs: int):
    if getattr(config, "distill_from", ""):  # a student: only its physics estimate learns
        return Frozen(config, policy, num_envs)
    if getattr(config, "mean_bound_coef", None) and not hasattr(policy, "mean_bound_penalty"):
        raise ConfigError("--mean-bound-coef: the policy's actions are discrete, there are no bounds for a mean to "
                          "pass: use it on continuous (Box) actions")
    if getattr(config, "log_std_cap", None) is not None and not hasattr(policy, "cap_log_std"):
        raise ConfigError("--log-std-cap: the policy's actions are discrete, it has no log std to cap: use it on "
                          "continuous (Box) actions")
    return ALGORITHMS[getattr(config, "algorithm", "pg")](config, policy, num_envs)


__all__ = ["ALGORITHMS", "PPO", "Frozen", "NaturalGradient", "PolicyGradient", "make_algorithm"]
