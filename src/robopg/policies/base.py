"""What every policy offers: reference sampling, the frozen fast sampler, log-probabilities, and ``act``."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..normalization import ObsNormalizer

# obs [N, obs_dim] float32 -> (actions as sampled, actions as sent to the env)
FrozenSampler = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


class Policy(nn.Module):
    """``sample`` (reference: one call, live parameters), ``frozen_sampler`` (the fast path for the many calls
    of one batch, on a frozen copy), ``log_prob_entropy`` (for the loss), ``act`` (numpy in, numpy out)."""

    normalizer: ObsNormalizer

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
