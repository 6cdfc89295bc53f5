"""Diagonal Gaussian policy over Box actions: continuous joints."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional

from .. import losses
from ..normalization import ObsNormalizer
from .base import FrozenSampler, Policy
from .networks import frozen_layers, linear_plan, mlp, plan_backward, plan_forward, run_layers, write_grad

_LOG_2PI = math.log(2 * math.pi)


class ActionGain(nn.Module):
    """--action-gain learned: a gain per action dimension, ``exp(B tanh(l / B))`` with ``l = W x + b`` linear in
    the policy network's input ``x``, so it stays within [e^-B, e^B] (B = log 3). W and b start at zero: a gain
    of exactly 1, and the policy's first actions are those it would take without one. ``start_powers`` (one per
    input at the end of ``x``: the physics estimate's log factors) start W's columns there instead, so that the
    gain starts as about the product of the estimated factors to those powers (--action-gain-start), and still at
    1 on the nominal robot, whose log factors are 0.

    ``trained=False`` (--action-gain held) keeps W and b as buffers, never stepped: the gain is then exactly its
    start, a function of the physics estimate alone, and the mean network learns everything else.

    Why a product and not one more input: a policy whose robot turns out to be half as heavy has to scale its
    whole action down (the same torque accelerates it twice as hard), and an MLP that reads the robot's physics as
    one more input has to build that product out of its hidden units; pg did not (docs/robustness.md)."""

    def __init__(self, in_dim: int, act_dim: int, start_powers: Sequence[float] = (), trained: bool = True):
        super().__init__()
        weight, bias = torch.zeros(act_dim, in_dim), torch.zeros(act_dim)
        if len(start_powers):
            weight[:, in_dim - len(start_powers):] = torch.tensor(start_powers, dtype=torch.float32)
        # Buffers when held: the same state_dict keys, and no parameter for an optimiser or a gradient to see.
        for name, value in (("weight", weight), ("bias", bias)):
            if trained:
                setattr(self, name, nn.Parameter(value))
            else:
                self.register_buffer(name, value)
        self.bound = math.log(3.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _bounded_gain(x, self.weight, self.bias, self.bound)

    def frozen(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """``forward`` with copies of the parameters as they are now (the sampling fast path's)."""
        weight, bias, bound = self.weight.detach().clone(), self.bias.detach().clone(), self.bound
        return lambda x: _bounded_gain(x, weight, bias, bound)


def _bounded_gain(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, bound: float) -> torch.Tensor:
    """exp(B tanh((W x + b) / B)): one expression for the live module and its frozen copy, so both give the same
    numbers to the bit."""
    return torch.exp(torch.tanh(functional.linear(x, weight, bias) / bound) * bound)


class GaussianPolicy(Policy):
    """Mean from an MLP, state-independent log-std.

    The log-probability is of the *sampled* action; clipping to the action bounds happens only in
    ``to_env``, when the action is sent to the environment, so the gradient is of the density that was
    actually sampled from.
    """

    def __init__(self, obs_dim: int, action_space: gym.spaces.Box, hidden: list[int], activation: str,
                 init_log_std: float, normalize_observations: bool = True, estimate_dim: int = 0,
                 action_gain: str = "fixed", gain_start_powers: Sequence[float] = ()):
        super().__init__()
        act_dim = int(np.prod(action_space.shape))
        self.action_shape = action_space.shape
        self.normalizer = ObsNormalizer(obs_dim, normalize_observations)
        in_dim = self._add_physics_estimate(obs_dim, hidden, activation, estimate_dim)
        self.mean_net = mlp([in_dim, *hidden, act_dim], activation, out_gain=0.01)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(init_log_std)))
        if len(gain_start_powers) > estimate_dim:
            raise ValueError(f"{len(gain_start_powers)} gain start powers for a physics estimate of {estimate_dim}")
        # (After the other parameters, which it draws nothing before: without it they are what they were.)
        self.action_gain = (None if action_gain == "fixed" else
                            ActionGain(in_dim, act_dim, gain_start_powers, trained=action_gain == "learned"))
        self.register_buffer("low", torch.as_tensor(action_space.low, dtype=torch.float32).reshape(-1))
        self.register_buffer("high", torch.as_tensor(action_space.high, dtype=torch.float32).reshape(-1))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = self.net_inputs(self.normalizer.forward(obs))
        mean = run_layers(self.mean_net, x)
        return mean if self.action_gain is None else mean * self.action_gain(x)

    def sample(self, obs: torch.Tensor) -> torch.Tensor:
        # By hand: building a torch.distributions.Normal per step costs ~1.8x the whole inference.
        mean = self.forward(obs)
        return mean + torch.randn_like(mean) * self.log_std.exp()

    def frozen_sampler(self) -> FrozenSampler:
        normalize, mean_of = self.normalizer.frozen(), self._frozen_mean()
        std = self.log_std.detach().exp().numpy()  # a new array: frozen too
        low, high, shape = self.low.numpy(), self.high.numpy(), self.action_shape

        def sample_actions(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            mean = mean_of(torch.from_numpy(normalize(obs)))
            # The noise from torch's generator, as sample() draws it; sample()'s multiply and add, in NumPy.
            actions = mean.numpy() + torch.randn_like(mean).numpy() * std
            return actions, np.clip(actions, low, high).reshape(actions.shape[:-1] + shape)

        return sample_actions

    def _frozen_mean(self) -> Callable[[torch.Tensor], torch.Tensor]:
        if self.action_gain is None:
            return self.frozen_net(self.mean_net)
        inputs, head, gain = self.frozen_inputs(), frozen_layers(self.mean_net), self.action_gain.frozen()

        def mean_of(x: torch.Tensor) -> torch.Tensor:
            x = inputs(x)
            return head(x) * gain(x)

        return mean_of

    def mode(self, obs: torch.Tensor) -> torch.Tensor:
        return self(obs)

    def cap_log_std(self, cap: float) -> None:
        """Clip the log std under ``cap`` (--log-std-cap): a projection after the optimiser's step, so the
        optimiser's state is left as it is."""
        with torch.no_grad():
            self.log_std.clamp_(max=cap)

    def mean_bound_penalty(self, obs: torch.Tensor) -> torch.Tensor:
        """``losses.mean_bound_penalty`` of the means at ``obs`` (raw observations): --mean-bound-coef's term."""
        return losses.mean_bound_penalty(self(obs), self.low, self.high)

    def log_prob_entropy(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.forward(obs)
        z = (actions - mean) * torch.exp(-self.log_std)
        log_prob = (-0.5 * z.pow(2) - self.log_std - 0.5 * _LOG_2PI).sum(-1)
        entropy = (self.log_std + 0.5 * (1.0 + _LOG_2PI)).sum().expand(log_prob.shape)
        return log_prob, entropy

    @torch.no_grad()
    def log_prob_grad(self, x: torch.Tensor, actions: torch.Tensor,
                      loss_slope: Callable[[torch.Tensor], torch.Tensor], entropy_coef: float) -> torch.Tensor:
        """Set every parameter's ``.grad`` to that of ``L(log_prob) - entropy_coef * mean(entropy)`` and return
        ``log_prob``, for observations ``x`` already normalised; ``loss_slope(log_prob)`` gives dL/d log_prob
        per row ([n]).

        Backpropagation by hand, for PPO's many small minibatch steps, where autograd's bookkeeping costs
        more than the arithmetic. With z = (a - mean) / std: d log_prob / d mean = z / std and
        d log_prob / d log_std = z^2 - 1; the entropy, sum(log_std) + const, adds 1 per log_std.
        ``tests/test_trust_region.py`` checks it against autograd on ``log_prob_entropy``.
        """
        plan = linear_plan(self.mean_net)
        mean, inputs = plan_forward(plan, self.net_inputs(x))
        inv_std = torch.exp(-self.log_std)
        z = (actions - mean) * inv_std
        log_prob = (-0.5 * z.pow(2) - self.log_std - 0.5 * _LOG_2PI).sum(-1)
        slope = loss_slope(log_prob).unsqueeze(-1)
        gz = slope * z
        write_grad(self.log_std, torch.sum, gz * z - slope, 0)
        if entropy_coef:  # (x - 0 is x to the bit, -0.0 and NaN included: no op needed)
            self.log_std.grad.sub_(entropy_coef)
        plan_backward(plan, inputs, gz * inv_std)
        return log_prob

    def to_env(self, actions: np.ndarray) -> np.ndarray:
        low, high = self.low.numpy(), self.high.numpy()
        return np.clip(actions, low, high).reshape(actions.shape[:-1] + self.action_shape)
