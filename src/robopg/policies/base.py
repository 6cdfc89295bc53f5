"""What every policy offers: reference sampling, the frozen fast sampler, log-probabilities, and ``act``."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..normalization import ObsNormalizer
from .networks import as_buffers, frozen_layers, mlp, run_layers

# obs [N, obs_dim] float32 -> (actions as sampled, actions as sent to the env)
FrozenSampler = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


class Policy(nn.Module):
    """``sample`` (reference: one call, live parameters), ``frozen_sampler`` (the fast path for the many calls
    of one batch, on a frozen copy), ``log_prob_entropy`` (for the loss), ``act`` (numpy in, numpy out)."""

    normalizer: ObsNormalizer
    physics_estimate: nn.Sequential | None  # --policy-obs estimated: the physics estimate (robopg.physics_estimate)

    def __init__(self):
        super().__init__()
        self.physics_estimate = None

    def _add_physics_estimate(self, obs_dim: int, hidden: list[int], activation: str, estimate_dim: int) -> int:
        """Give the policy a physics estimate of ``estimate_dim`` numbers (none if 0); returns the width of the
        network input that follows it. Its weights are buffers (``as_buffers``); its outputs start near 0, the
        nominal robot's log factors."""
        if estimate_dim:
            self.physics_estimate = as_buffers(mlp([obs_dim, *hidden, estimate_dim], activation, out_gain=0.01))
        return obs_dim + estimate_dim

    def net_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """The network's input for normalised observations ``x``: ``x``, then the physics estimate if any."""
        if self.physics_estimate is None:
            return x
        return torch.cat([x, run_layers(self.physics_estimate, x)], -1)

    def frozen_inputs(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """``net_inputs``, frozen (``frozen_layers``): normalised observations in, the network's input out."""
        if self.physics_estimate is None:
            return lambda x: x
        estimate = frozen_layers(self.physics_estimate)
        return lambda x: torch.cat([x, estimate(x)], -1)

    def frozen_net(self, net: nn.Sequential) -> Callable[[torch.Tensor], torch.Tensor]:
        """``net`` after ``net_inputs``, frozen (``frozen_layers``) for normalised observations."""
        head = frozen_layers(net)
        if self.physics_estimate is None:
            return head
        inputs = self.frozen_inputs()
        return lambda x: head(inputs(x))

    def sample(self, obs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def mode(self, obs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def to_env(self, actions: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def log_prob_entropy(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def frozen_sampler(self) -> FrozenSampler:
        """``sample_actions(obs) -> (actions, env_actions)`` for float32 observations ``[N, obs_dim]``, with
        the parameters and normaliser frozen as they are now (detached copies: no autograd history, and a
        later update cannot reach a batch being sampled). The same numbers as ``sample`` then ``to_env``
        (``tests/test_policies.py``), ~40% less time per call at 16 envs (measured)."""
        raise NotImplementedError

    def act(self, obs, deterministic: bool = True) -> np.ndarray:
        """Action(s) for ``obs`` (one observation or a batch), ready to pass to ``env.step``."""
        x = torch.as_tensor(np.asarray(obs), dtype=torch.float32)
        single = x.dim() == 1
        with torch.no_grad():
            a = self.mode(x[None] if single else x) if deterministic else self.sample(x[None] if single else x)
        a = self.to_env(a.numpy())
        return a[0] if single else a
