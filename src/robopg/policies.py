"""Neural-network policies and the value function.

The observation normaliser lives inside the policy (and is shared with the value function), so a
checkpoint of the policy is complete: ``robopg.load(run).act(obs)`` needs nothing else.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from .envs import EnvError

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}
_LOG_2PI = math.log(2 * math.pi)


class ObsNormalizer(nn.Module):
    """Running mean and variance of observations (Chan et al.'s parallel update), clipped to +-clip.

    Statistics change only through ``update`` (called by the trainer after each policy update), never
    while sampling, so a batch's log-probabilities are those of the policy that produced it.
    """

    def __init__(self, dim: int, enabled: bool = True, clip: float = 10.0):
        super().__init__()
        self.enabled = enabled
        self.clip = clip
        self.register_buffer("mean", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("var", torch.ones(dim, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(1e-4, dtype=torch.float64))
        self._refresh()

    def _refresh(self) -> None:
        self._mean32 = self.mean.float()
        self._inv_std32 = (1.0 / torch.sqrt(self.var + 1e-8)).float()

    def _load_from_state_dict(self, *args, **kwargs):  # keep the float32 caches in step with loads
        super()._load_from_state_dict(*args, **kwargs)
        self._refresh()

    @torch.no_grad()
    def update(self, obs: np.ndarray | torch.Tensor) -> None:
        if not self.enabled:
            return
        x = torch.as_tensor(np.asarray(obs), dtype=torch.float64).reshape(-1, self.mean.numel())
        batch_mean, batch_var, n = x.mean(0), x.var(0, unbiased=False), x.shape[0]
        delta = batch_mean - self.mean
        total = self.count + n
        self.mean += delta * n / total
        m2 = self.var * self.count + batch_var * n + delta.pow(2) * self.count * n / total
        self.var.copy_(m2 / total)
        self.count.copy_(total)
        self._refresh()

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return obs
        return ((obs - self._mean32) * self._inv_std32).clamp(-self.clip, self.clip)

    def frozen(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """``forward`` with the statistics as they are now (see ``frozen_layers``)."""
        if not self.enabled:
            return lambda obs: obs
        mean, inv_std, clip = self._mean32, self._inv_std32, self.clip
        return lambda obs: ((obs - mean) * inv_std).clamp_(-clip, clip)


def run_layers(net: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """``net(x)``, calling each layer's ``forward`` directly: ``nn.Module.__call__``'s hook machinery costs
    ~5 us a layer, a third of one sampling step's inference for these small networks (measured)."""
    for layer in net:
        x = layer.forward(x)
    return x


def frozen_layers(net: nn.Sequential) -> Callable[[torch.Tensor], torch.Tensor]:
    """``net``'s forward with its parameters as they are now: ``addmm`` on copies of the weights (transposed
    views), the activations' ``forward`` called directly. The same operations as ``Linear.forward`` (so the
    same numbers), without the per-call attribute lookups, which cost more than the arithmetic at
    sampling's batch sizes."""
    steps: list = []
    for layer in net:
        if isinstance(layer, nn.Linear):
            # Copies, laid out as the parameters are (so addmm takes the same path): later updates of the
            # parameters do not reach a batch already being sampled.
            weight, bias = layer.weight.detach().clone(), layer.bias.detach().clone()
            steps.append(functools.partial(torch.addmm, bias, mat2=weight.t()))
        else:
            steps.append(layer.forward)

    def forward(x: torch.Tensor) -> torch.Tensor:
        for step in steps:
            x = step(x)
        return x

    return forward


def mlp(sizes: list[int], activation: str, out_gain: float) -> nn.Sequential:
    """Orthogonal init (gain sqrt 2 hidden, ``out_gain`` at the output): the usual choice for PG agents."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        linear = nn.Linear(sizes[i], sizes[i + 1])
        last = i == len(sizes) - 2
        nn.init.orthogonal_(linear.weight, gain=out_gain if last else math.sqrt(2))
        nn.init.zeros_(linear.bias)
        layers.append(linear)
        if not last:
            layers.append(_ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


SampleActions = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


class Policy(nn.Module):
    """Common interface: ``sample`` (no autograd), ``sampling`` (``sample`` for the many calls of one batch),
    ``log_prob_entropy`` (for the loss), ``act`` (numpy in, numpy out, for users)."""

    normalizer: ObsNormalizer

    def sampling(self) -> SampleActions:
        """``sample_actions(obs) -> (actions, env_actions)`` for float32 observations ``[N, obs_dim]``, with
        the parameters and normaliser frozen as they are now (detached: no autograd history is recorded); the
        sampler takes one per batch, during which the policy does not change. The same numbers as ``sample``
        and ``to_env`` (tested), ~40% less time per call at 16 envs (measured): a twentieth of a locomotion
        iteration."""
        raise NotImplementedError

    def act(self, obs, deterministic: bool = True) -> np.ndarray:
        """Action(s) for ``obs`` (one observation or a batch), ready to pass to ``env.step``."""
        x = torch.as_tensor(np.asarray(obs), dtype=torch.float32)
        single = x.dim() == 1
        with torch.no_grad():
            a = self.mode(x[None] if single else x) if deterministic else self.sample(x[None] if single else x)
        a = self.to_env(a.numpy())
        return a[0] if single else a


class GaussianPolicy(Policy):
    """Diagonal Gaussian over Box actions with a state-independent log-std.

    The log-probability is of the *sampled* action; clipping to the action bounds happens only in
    ``to_env``, when the action is sent to the environment, so the gradient is of the density that was
    actually sampled from.
    """

    def __init__(self, obs_dim: int, action_space: gym.spaces.Box, hidden: list[int], activation: str,
                 init_log_std: float, normalize_observations: bool = True):
        super().__init__()
        act_dim = int(np.prod(action_space.shape))
        self.action_shape = action_space.shape
        self.normalizer = ObsNormalizer(obs_dim, normalize_observations)
        self.mean_net = mlp([obs_dim, *hidden, act_dim], activation, out_gain=0.01)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(init_log_std)))
        self.register_buffer("low", torch.as_tensor(action_space.low, dtype=torch.float32).reshape(-1))
        self.register_buffer("high", torch.as_tensor(action_space.high, dtype=torch.float32).reshape(-1))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return run_layers(self.mean_net, self.normalizer.forward(obs))

    def sample(self, obs: torch.Tensor) -> torch.Tensor:
        # By hand: building a torch.distributions.Normal per step costs ~1.8x the whole inference.
        mean = self.forward(obs)
        return mean + torch.randn_like(mean) * self.log_std.exp()

    def sampling(self) -> SampleActions:
        normalize, mean_of = self.normalizer.frozen(), frozen_layers(self.mean_net)
        std = self.log_std.detach().exp()  # a new tensor: frozen too
        low, high, shape = self.low.numpy(), self.high.numpy(), self.action_shape

        def sample_actions(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            mean = mean_of(normalize(torch.from_numpy(obs)))
            actions = (mean + torch.randn_like(mean) * std).numpy()
            return actions, np.clip(actions, low, high).reshape(actions.shape[:-1] + shape)

        return sample_actions

    def mode(self, obs: torch.Tensor) -> torch.Tensor:
        return self(obs)

    def log_prob_entropy(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.forward(obs)
        z = (actions - mean) * torch.exp(-self.log_std)
        log_prob = (-0.5 * z.pow(2) - self.log_std - 0.5 * _LOG_2PI).sum(-1)
        entropy = (self.log_std + 0.5 * (1.0 + _LOG_2PI)).sum().expand(log_prob.shape)
        return log_prob, entropy

    def to_env(self, actions: np.ndarray) -> np.ndarray:
        low, high = self.low.numpy(), self.high.numpy()
        return np.clip(actions, low, high).reshape(actions.shape[:-1] + self.action_shape)


class CategoricalPolicy(Policy):
    """Softmax over Discrete actions."""

    def __init__(self, obs_dim: int, action_space: gym.spaces.Discrete, hidden: list[int], activation: str,
                 normalize_observations: bool = True):
        super().__init__()
        self.n = int(action_space.n)
        self.start = int(action_space.start)
        self.normalizer = ObsNormalizer(obs_dim, normalize_observations)
        self.logits_net = mlp([obs_dim, *hidden, self.n], activation, out_gain=0.01)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return run_layers(self.logits_net, self.normalizer.forward(obs))

    def sample(self, obs: torch.Tensor) -> torch.Tensor:
        # Gumbel-max: one fused op instead of a Categorical distribution object per step.
        logits = self.forward(obs)
        gumbel = -torch.log(-torch.log(torch.rand_like(logits).clamp_min(1e-20)))
        return (logits + gumbel).argmax(-1)

    def sampling(self) -> SampleActions:
        normalize, logits_of, start = self.normalizer.frozen(), frozen_layers(self.logits_net), self.start

        def sample_actions(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            logits = logits_of(normalize(torch.from_numpy(obs)))
            gumbel = -torch.log(-torch.log(torch.rand_like(logits).clamp_min(1e-20)))
            actions = (logits + gumbel).argmax(-1).numpy()
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


class ValueFunction(nn.Module):
    """V_phi(s): its own network (and optimiser, in the trainer), reading the policy's normaliser."""

    def __init__(self, normalizer: ObsNormalizer, hidden: list[int], activation: str):
        super().__init__()
        self.normalizer = normalizer
        self.net = mlp([normalizer.mean.numel(), *hidden, 1], activation, out_gain=1.0)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return run_layers(self.net, self.normalizer.forward(obs)).squeeze(-1)

    @torch.no_grad()
    def squared_error_grad(self, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Set every parameter's ``.grad`` to that of mean((V(x) - targets)^2) and return that loss;
        ``x`` is already normalised.

        Backpropagation by hand, for the ``mlp`` layout (Linear, activation, ..., Linear): the value
        function takes 40 small steps an iteration, and for 128-row minibatches autograd's bookkeeping
        costs more than the arithmetic (14 vs 21 ms per fit on HalfCheetah, measured). The gradients
        equal autograd's to float32 rounding (``tests/test_training.py``). The layers are read from a plan
        made once (module attribute lookups cost a tenth of a step) and the gradients written into the
        existing ``.grad`` tensors.
        """
        plan = self._plan
        inputs = []  # the input of each Linear: x, then the output of each activation
        h = x
        for weight, bias, activation, _ in plan:
            inputs.append(h)
            h = torch.addmm(bias, h, weight.t())
            if activation is not None:
                h = activation(h)
        diff = h.squeeze(-1) - targets
        g = (diff * (2.0 / diff.shape[0])).unsqueeze(-1)  # d loss / d output
        for i in range(len(plan) - 1, -1, -1):  # from the last Linear back
            weight, bias, _, _ = plan[i]
            _write_grad(weight, torch.mm, g.t(), inputs[i])
            _write_grad(bias, torch.sum, g, 0)
            if i > 0:
                g = g.mm(weight).mul_(plan[i - 1][3](inputs[i]))
        return diff.pow(2).mean()

    @property
    def _plan(self) -> list[tuple]:
        # (weight, bias, activation after it or None, that activation's slope), per Linear. Parameters keep
        # their identity through .to(), .double() and load_state_dict, so the plan stays valid.
        plan = self.__dict__.get("_plan_cache")
        if plan is None:
            layers = list(self.net)
            plan = []
            for i, layer in enumerate(layers):
                if isinstance(layer, nn.Linear):
                    act = layers[i + 1] if i + 1 < len(layers) else None
                    plan.append((layer.weight, layer.bias, None if act is None else act.forward,
                                 None if act is None else _activation_slope(act)))
            self.__dict__["_plan_cache"] = plan
        return plan


def _write_grad(p: torch.Tensor, op, *args) -> None:
    # Into the existing .grad (out=): no allocation per step, the same numbers as a fresh tensor.
    if p.grad is None:
        p.grad = op(*args)
    else:
        op(*args, out=p.grad)


def _activation_slope(activation: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """d activation / d input as a function of the activation's output ``y`` (as autograd's backward
    computes it)."""
    if isinstance(activation, nn.Tanh):
        return lambda y: 1.0 - y * y
    if isinstance(activation, nn.ReLU):
        return lambda y: (y > 0).to(y.dtype)
    if isinstance(activation, nn.ELU) and activation.alpha == 1.0:
        return lambda y: torch.where(y > 0, 1.0, y + 1.0)  # for z <= 0, y = exp(z) - 1: dy/dz = exp(z) = y + 1
    raise TypeError(f"no hand-written derivative for {activation}")


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


def make_policy(config, observation_space: gym.Space, action_space: gym.Space) -> Policy:
    check_spaces(config.env_id, observation_space, action_space)
    obs_dim = int(observation_space.shape[0])
    if isinstance(action_space, gym.spaces.Box):
        return GaussianPolicy(obs_dim, action_space, list(config.hidden_sizes), config.activation,
                              config.init_log_std, config.normalize_observations)
    return CategoricalPolicy(obs_dim, action_space, list(config.hidden_sizes), config.activation,
                             config.normalize_observations)
