"""Softmax policy over Discrete actions."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from ..normalization import ObsNormalizer
from .base import FrozenSampler, Policy
from .networks import mlp, run_layers


def _gumbel_argmax(logits: torch.Tensor) -> torch.Tensor:
    # Gumbel-max: one fused op instead of a Categorical distribution object per step.
    gumbel = -torch.log(-torch.log(torch.rand_like(logits).clamp_min(1e-20)))
    return (logits + gumbel).argmax(-1)


class CategoricalPolicy(Policy):
    def __init__(self, obs_dim: int, action_space: gym.spaces.Discrete, hidden: list[int], activation: str,
                 normalize_observations: bool = True, estimate_dim: int = 0):
        super().__init__()
        self.n = int(action_space.n)
        self.start = int(action_space.start)
        self.normalizer = ObsNormalizer(obs_dim, normalize_observations)
        self.logits_net = mlp([self._add_physics_estimate(obs_dim, hidden, activation, estimate_dim), *hidden, self.n],
                              activation, out_gain=0.01)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return run_layers(self.logits_net, self.net_inputs(self.normalizer.forward(obs)))

    def sample(self, obs: torch.Tensor) -> torch.Tensor:
        return _gumbel_argmax(self.forward(obs))

    def frozen_sampler(self) -> FrozenSampler:
        normalize, logits_of, start = self.normalizer.frozen(), self.frozen_net(self.logits_net), self.start

        def sample_actions(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            actions = _gumbel_argmax(logits_of(torch.from_numpy(normalize(obs)))).numpy()
            return actions, actions.astype(np.int64) + start

        return sample_actions

    def mode(self, obs: torch.Tensor) -> torch.Tensor:
        return self(obs).argmax(-1)

    def log_prob_entropy(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logp_all = torch.log_softmax(self(obs), -1)
        log_prob = logp_all.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
        entropy = -(logp_all.exp() * logp_all).sum(-1)
        return log_prob, entropy

    def to_env(self, actions: np.ndarray) -> np.ndarray:
        return actions.astype(np.int64) + self.start
