"""What every update rule carries beside the policy: the value function with its fit (a privileged one with
--critic-obs privileged), and the reward scaler. Psi comes from ``weights.compute_weights``."""

from __future__ import annotations

import math
import pickle

import torch

from .. import losses
from ..errors import NonFiniteError
from ..normalization import RewardScaler
from ..policies import Policy, ValueFunction
from ..randomization import critic_context_dim
from ..sampler import Rollout
from ..value_fit import ValueFit, blur_context
from .weights import Weights, compute_weights


class Critic:
    """``weights(rollout)`` -> Psi (and V's targets); ``fit(weights, iteration)`` -> V's statistics."""

    def __init__(self, config, policy: Policy, num_envs: int):
        c = self.config = config
        self.value_fit = None
        if c.baseline == "value":
            value = ValueFunction(policy.normalizer, list(c.hidden_sizes), c.activation, critic_context_dim(c),
                                  blind=c.critic_obs == "blind")
            self.value_fit = ValueFit(value, c.value_lr, c.value_epochs, c.value_minibatches, c.context_noise())
        self.value = self.value_fit.value if self.value_fit else None
        self.gamma = c.gamma
        self.balance_power = 0.0 if c.balance_from else c.balance_power  # --balance-from: see balance()
        self.reward_scaler = RewardScaler(num_envs, c.gamma) if c.normalize_rewards else None

    def discount(self, gamma: float) -> None:
        """Weigh the batches from now on with ``gamma`` (--gamma-schedule), the reward scaler's returns too."""
        self.gamma = gamma
        if self.reward_scaler is not None:
            self.reward_scaler.gamma = gamma

    def balance(self, on: bool) -> None:
        """Weigh the batches from now on with --balance-regions' power (``on``) or as the plain mean."""
        self.balance_power = self.config.balance_power if on else 0.0

    def weights(self, rollout: Rollout) -> Weights:
        return compute_weights(self.config, rollout, self.value, self.reward_scaler, gamma=self.gamma,
                               balance_power=self.balance_power)

    def reweigh(self, rollout: Rollout, w: Weights) -> Weights:
        """``w``'s batch weighed again with the value function as it is now (the rewards as scaled then)."""
        return compute_weights(self.config, rollout, self.value, None, rewards=w.rewards, gamma=self.gamma,
                               balance_power=self.balance_power)

    def fit(self, w: Weights, iteration: int, clip: float | None = None, epochs: int | None = None
            ) -> dict[str, float]:
        """Fit V to ``w``'s targets: ``epochs`` passes (not given: --value-epochs)."""
        if self.value_fit is None:
            return {}
        epochs = self.value_fit.epochs if epochs is None else epochs
        try:
            if clip is None:
                return self.value_fit.fit(w.value_inputs, w.targets, w.old_values, epochs)
            return self._fit_clipped(w, clip, epochs)
        except NonFiniteError as e:
            raise NonFiniteError(f"{e} at iteration {iteration}") from None

    def _fit_clipped(self, w: Weights, clip: float, epochs: int) -> dict[str, float]:
        """PPO's value clipping: the same epochs, minibatches and Adam as ``ValueFit``, on the clipped loss
        (autograd: the hand backward pass of ``ValueFunction`` is for the plain squared error)."""
        fit, value = self.value_fit, self.value
        n = w.obs.shape[0]
        size = max(1, n // fit.minibatches)
        with torch.no_grad():
            x = value.normalizer(w.value_inputs)
        step_losses = []
        for _ in range(epochs):
            perm = torch.randperm(n)
            x_epoch = blur_context(value, x, fit.context_noise)
            for start in range(0, n, size):
                rows = perm[start:start + size]
                loss = losses.clipped_value_loss(value.values_of_normalized(x_epoch[rows]), w.old_values[rows],
                                                 w.targets[rows], clip)
                fit.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                fit.optimizer.step()
                step_losses.append(loss.detach())
        step_losses = torch.stack(step_losses)
        if not torch.isfinite(step_losses).all():
            raise NonFiniteError("non-finite value loss")
        var = float(w.targets.var())
        explained = 1.0 - float((w.targets - w.old_values).var()) / var if var > 0 else math.nan
        return {"value_loss": float(step_losses.mean()), "explained_variance": explained}

    def modules(self) -> list[torch.nn.Module]:
        return [self.value] if self.value is not None else []

    def state_dict(self) -> dict:
        state = {}
        if self.value_fit is not None:
            state.update(self.value_fit.state_dict())
        if self.reward_scaler is not None:
            state["reward_scaler"] = pickle.dumps(self.reward_scaler.state_dict())
        return state

    def load_state_dict(self, state: dict) -> None:
        if self.value_fit is not None:
            self.value_fit.load_state_dict(state)
        if self.reward_scaler is not None:
            self.reward_scaler.load_state_dict(pickle.loads(state["reward_scaler"]))
