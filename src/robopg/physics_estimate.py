"""A physics estimate inside the policy (--policy-obs estimated): system identification trained beside the
policy, as the concurrently trained estimators of legged-robot controllers are (Ji et al., 2022), on the
privileged context robopg's randomiser already records.

The policy's network reads ``[x, e(x)]``, where x is the normalised observation (with --obs-history, the last
few observations and actions) and e(x) an estimate of the episode's log physics factors (the privileged
critic's context). Training knows the true factors, so e is fit by regression on them after each policy
update; a robot the policy is deployed on needs no factors at all, only x.

e is held in the policy as *buffers*, not parameters: to every update rule it is a fixed part of the input,
like the observation normaliser, and the policy gradient never moves it. The fit trains a twin network with
parameters and copies its weights into the policy's buffers after the update, so an iteration samples and
updates with the same e.
"""

from __future__ import annotations

import collections
import copy
import math

import numpy as np
import torch

from .config import PHYSICS_ESTIMATE_EPOCHS, PHYSICS_ESTIMATE_LR
from .errors import NonFiniteError
from .estimators import balance
from .normalization import ObsNormalizer
from .optim import Adam
from .policies.networks import as_parameters
from .randomization import regions
from .sampler import Rollout

MINIBATCHES = 8  # per pass over a batch, as the value function's default


class PhysicsEstimateFit:
    """The twin of a policy's physics-estimate network, with its optimiser; ``fit(rollout)`` regresses it on the
    rollout's true context and writes the result into the policy."""

    def __init__(self, config, policy):
        self.policy = policy
        self.twin = as_parameters(copy.deepcopy(policy.physics_estimate))
        c = config
        lr = PHYSICS_ESTIMATE_LR if c.physics_estimate_lr is None else c.physics_estimate_lr
        self.epochs = PHYSICS_ESTIMATE_EPOCHS if c.physics_estimate_epochs is None else c.physics_estimate_epochs
        self.optimizer = Adam(self.twin.parameters(), lr=lr)
        self.config = config  # --physics-estimate-regions reads its ranges
        # The newest batches' raw observations and true contexts: normalised when fit, since a policy that is
        # learning moves its observation normaliser.
        self.replay = collections.deque(maxlen=c.physics_estimate_replay or 1)
        # A student (--distill-from) estimates its teacher's inputs: the context as the teacher's normaliser
        # scaled it (robopg.distill fills in the teacher's statistics).
        dim = policy.physics_estimate[-1].out_features
        self.target = ObsNormalizer(dim, c.normalize_observations) if c.distill_from else None

    def fit(self, rollout: Rollout, iteration: int) -> dict[str, float]:
        """``epochs`` passes of minibatch regression of the context on the normalised observations of the
        rollout's steps and of the replay's older batches (``--physics-estimate-replay``). Returns the squared
        error of the estimate the rollout was sampled with, and its R^2 (the share of the context's variance it
        explains, averaged over the context's numbers): measured on steps the network had not been fit to."""
        m = rollout.mask
        self.replay.append((torch.as_tensor(rollout.obs[m]), torch.as_tensor(rollout.context[m], dtype=torch.float32)))
        rows = len(self.replay[-1][0])  # the newest batch's
        with torch.no_grad():
            x = self.policy.normalizer(torch.cat([obs for obs, _ in self.replay]))
            target = torch.cat([context for _, context in self.replay])
            weight = self._weights(target)
            if self.target is not None:
                target = self.target(target)
            newest = slice(x.shape[0] - rows, None)
            error = (self.twin(x[newest]) - target[newest]).pow(2).mean(0)  # of the estimate it was sampled with
        n = x.shape[0]
        size = max(1, rows // MINIBATCHES)  # a batch's minibatch, so each older batch adds steps to a pass
        step_losses = []
        for _ in range(self.epochs):
            perm = torch.randperm(n)
            x_epoch, target_epoch = x[perm], target[perm]
            weight_epoch = None if weight is None else weight[perm]
            for start in range(0, n, size):
                part = slice(start, start + size)
                squared = (self.twin(x_epoch[part]) - target_epoch[part]).pow(2)
                loss = (squared if weight_epoch is None else weight_epoch[part, None] * squared).mean()
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                step_losses.append(loss.detach())
        finite = torch.isfinite(error).all() and torch.isfinite(torch.stack(step_losses)).all()
        if not (finite and all(torch.isfinite(q).all() for q in self.twin.parameters())):  # before the policy reads it
            raise NonFiniteError(f"non-finite physics estimate loss at iteration {iteration}")
        self.policy.physics_estimate.load_state_dict(self.twin.state_dict())
        var = target[newest].var(0, unbiased=False)
        explained = 1.0 - error / var.clamp_min(1e-12)
        return {"physics_estimate_loss": float(error.mean()),
                "physics_estimate_r2": float(explained[var > 0].mean()) if (var > 0).any() else math.nan}

    def _weights(self, context: torch.Tensor) -> torch.Tensor | None:
        """--physics-estimate-regions: each fit row's weight, so that every region of the ranges present in the
        fit's rows carries the same share of the regression (mean 1 over the rows); None without the option. From
        the true context, before a student's target normaliser rescales it."""
        region = regions(self.config, context.numpy(), self.config.physics_estimate_regions)
        if region is None:
            return None
        every = np.ones(len(region), dtype=bool)
        return torch.as_tensor(balance(every.astype(np.float64), every, region), dtype=torch.float32)

    def state_dict(self) -> dict:
        return {"twin": self.twin.state_dict(), "optimizer": self.optimizer.state_dict(),
                "replay": self._kept(),
                **({} if self.target is None else {"target": self.target.state_dict()})}

    def load_state_dict(self, state: dict) -> None:
        self.twin.load_state_dict(state["twin"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.replay.clear()
        self.replay.extend(state.get("replay", []))
        if self.target is not None:
            self.target.load_state_dict(state["target"])


    def _kept(self) -> list:
        """The batches the next fits will still read (the oldest leaves when the next batch comes in)."""
        keep = self.replay.maxlen - 1
        return list(self.replay)[-keep:] if keep else []


def make_physics_fit(config, policy) -> PhysicsEstimateFit | None:
    return PhysicsEstimateFit(config, policy) if getattr(policy, "physics_estimate", None) is not None else None
