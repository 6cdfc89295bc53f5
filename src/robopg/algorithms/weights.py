"""From a rollout to what every update rule consumes: the policy's batch (observations and actions of the
steps that hold a transition) and the weights Psi_t, with the value targets when a value function exists."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import estimators
from ..normalization import RewardScaler
from ..policies import ValueFunction
from ..randomization import nominal, regions
from ..sampler import Rollout


@dataclass
class Weights:
    """Tensors over the n masked steps of a rollout, in the rollout's [T, N] order."""

    obs: torch.Tensor               # [n, obs_dim]
    actions: torch.Tensor           # [n, act_dim] or [n]
    psi: torch.Tensor               # [n] float32: the weights of the policy gradient
    targets: torch.Tensor | None    # [n] float32: the value function's regression targets
    old_values: torch.Tensor | None  # [n] float32: V(s_t) before this update (for explained variance)
    critic_obs: torch.Tensor | None = None  # [n, obs_dim + k]: a privileged value function's inputs (s_t, c)
    rewards: np.ndarray | None = None  # [T, N]: the rewards Psi was computed from (after reward scaling)

    @property
    def value_inputs(self) -> torch.Tensor:
        """What the value function is fit on: the observations, or with --critic-obs privileged (s_t, c)."""
        return self.obs if self.critic_obs is None else self.critic_obs


def compute_weights(config, rollout: Rollout, value: ValueFunction | None,
                    reward_scaler: RewardScaler | None, rewards: np.ndarray | None = None,
                    gamma: float | None = None, balance_power: float | None = None) -> Weights:
    """Psi_t as ``config.estimator`` and ``config.baseline`` say, then normalised if asked. ``rewards``: those
    of an earlier ``Weights`` of the same rollout, to compute Psi again with a refitted value function (the
    scaler, which learns from each batch it scales, is then not called). ``gamma``: the discount, if not
    ``config.gamma`` (--gamma-schedule); ``balance_power``: --balance-regions' power, if not ``config.balance_power``
    (0 before --balance-from)."""
    c, m = config, rollout.mask
    if rewards is None:
        rewards = rollout.rewards
    elif reward_scaler is not None:
        raise ValueError("rewards given (already scaled) and a reward scaler: a batch is scaled once")
    if reward_scaler is not None:
        rewards = reward_scaler.scale(rollout.rewards, rollout.terminated, rollout.truncated, m)
    values = next_values = critic_obs = None
    if value is not None:
        obs, next_obs = rollout.obs, rollout.next_obs
        if getattr(value, "context_dim", 0):
            # next_obs[t] belongs to the same episode as obs[t] (the final observation where it ended), so
            # both are read with that episode's context.
            obs, next_obs = privileged_inputs(rollout.obs, rollout.context), privileged_inputs(rollout.next_obs,
                                                                                                 rollout.context)
            critic_obs = torch.as_tensor(obs[m])
        with torch.no_grad():
            values = value(torch.as_tensor(obs)).double().numpy()
            next_values = value(torch.as_tensor(next_obs)).double().numpy()
    psi, targets = estimators.weights(c.estimator, c.baseline, rewards, rollout.terminated, rollout.truncated, m,
                                      c.gamma if gamma is None else gamma, c.lam, values, next_values)
    if c.normalize_advantages:
        psi = estimators.normalize(psi, m, center=c.baseline != "optimal")
    region = None if rollout.context is None else regions(c, rollout.context, c.balance_regions)
    if region is not None:  # --balance-regions: after normalisation, which would undo the scaling
        weighed = m & ~nominal(c, rollout.context) if c.balance_nominal == "apart" else m
        psi = estimators.balance(psi, weighed, region, c.balance_power if balance_power is None else balance_power)
    return Weights(torch.as_tensor(rollout.obs[m]), torch.as_tensor(rollout.actions[m]),
                   torch.as_tensor(psi[m], dtype=torch.float32),
                   None if targets is None else torch.as_tensor(targets[m], dtype=torch.float32),
                   None if values is None else torch.as_tensor(values[m], dtype=torch.float32), critic_obs, rewards)


def privileged_inputs(obs: np.ndarray, context: np.ndarray | None) -> np.ndarray:
    """[..., obs_dim] observations and [..., k] contexts -> [..., obs_dim + k] float32 critic inputs."""
    if context is None:
        raise ValueError("a privileged value function needs the rollout's context (sampled with --randomize)")
    return np.concatenate([obs, context.astype(np.float32)], axis=-1)


def episode_ids(rollout: Rollout) -> np.ndarray:
    """[n]: the index of the episode each masked step belongs to."""
    return estimators.episode_ids(rollout.terminated, rollout.truncated)[rollout.mask]
