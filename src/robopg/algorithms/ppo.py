"""PPO (Schulman et al., 2017): several epochs of minibatch steps on the clipped surrogate of one batch, from
the same Psi as ``pg``.

    old log pi  = log pi_old(a_t|s_t), once per batch (the policy that sampled it)
    per epoch, per minibatch:  loss = -mean(min(r Psi, clip(r, 1-c, 1+c) Psi)) - c_H entropy
                               (approximate KL to pi_old: stop the epochs above 1.5 x --target-kl; adapt
                               the learning rate to --desired-kl, rsl_rl's schedule); clip the gradient; Adam
    then fit V (optionally clipped) and update the observation normaliser
    (--recompute-advantages: V takes one pass after each epoch, and each epoch's Psi comes from V as it is then)

At ratio 1 the clipped surrogate's gradient is the vanilla policy gradient with the same Psi, so one epoch of
one full-batch minibatch is ``pg``'s step (``tests/test_trust_region.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .. import losses
from ..errors import NonFiniteError
from ..optim import Adam, clip_grad_norm
from ..policies import Policy
from ..sampler import Rollout
from .critic import Critic
from .weights import Weights

# rsl_rl's adaptive schedule: the factor, and the bounds the learning rate stays within.
LR_FACTOR, LR_MIN, LR_MAX = 1.5, 1e-5, 1e-2


class PPO:
    name = "ppo"
    # Gaussian policies take their minibatch steps with the gradient written by hand
    # (GaussianPolicy.log_prob_grad): 320 steps of 64 rows an iteration are mostly autograd bookkeeping.
    # False: autograd for every policy, the reference (tests/test_trust_region.py compares the two).
    hand_backward = True

    def __init__(self, config, policy: Policy, num_envs: int):
        c = self.config = config
        self.policy = policy
        # fused: one kernel for all parameters (as pg's optimiser).
        self.optimizer = Adam(policy.parameters(), lr=c.lr)
        self.critic = Critic(config, policy, num_envs)
        self.value = self.critic.value
        self.clip_range, self.epochs = c.option("clip_range"), c.option("epochs")
        self.minibatch_size = c.option("minibatch_size")
        self.target_kl, self.desired_kl = c.option("target_kl"), c.option("desired_kl")
        self._params = list(policy.parameters())  # listing them walks the modules: ~30 us a minibatch

    def update(self, rollout: Rollout, iteration: int, progress: float) -> dict[str, float]:
        self._anneal(progress)
        w = self.critic.weights(rollout)
        clip = self.config.option("value_clip")
        if self.config.option("recompute_advantages"):
            stats = self._recomputing_epochs(rollout, w, iteration, clip)
        else:
            stats = self.policy_epochs(w, iteration)
            stats.update(self.critic.fit(w, iteration, clip))
        self.policy.normalizer.update(rollout.obs[rollout.mask])
        return stats

    def _recomputing_epochs(self, rollout: Rollout, w: Weights, iteration: int, clip: float | None
                            ) -> dict[str, float]:
        """--recompute-advantages: V takes one pass after each policy epoch, and the next epoch's Psi comes from
        the V so refitted. Statistics of V: the mean loss over the passes, the explained variance of the first."""
        fits = []

        def refit(w: Weights, last: bool) -> Weights:
            fits.append(self.critic.fit(w, iteration, clip, epochs=1))
            return w if last else self.critic.reweigh(rollout, w)

        stats = self.policy_epochs(w, iteration, refit)  # (config: recomputing needs a value function)
        stats.update(value_loss=sum(f["value_loss"] for f in fits) / len(fits),
                     explained_variance=fits[0]["explained_variance"])
        return stats

    def _anneal(self, progress: float) -> None:
        if self.desired_kl is not None:  # the learning rate follows the KL; it lives in the optimiser's state
            return
        frac = 1.0 - progress if self.config.lr_schedule == "linear" else 1.0
        for g in self.optimizer.param_groups:
            g["lr"] = self.config.lr * max(frac, 0.0)

    def policy_epochs(self, w: Weights, iteration: int,
                      after_epoch: Callable[[Weights, bool], Weights] | None = None) -> dict[str, float]:
        """Epochs x minibatches on the batch of ``w``; returns their statistics. ``after_epoch(w, last)``, if
        given, runs after each epoch (``last``: no epoch follows) and returns the weights of the next."""
        # (--mean-bound-coef's penalty is one more autograd term, and --action-gain learned one more factor of the
        # mean, which the hand-written gradient does not know: those steps take autograd's gradient.)
        hand = (self.hand_backward and hasattr(self.policy, "log_prob_grad")
                and not self.config.option("mean_bound_coef") and getattr(self.policy, "action_gain", None) is None)
        with torch.no_grad():
            old_log_prob, entropy = self.policy.log_prob_entropy(w.obs, w.actions)
            # The normaliser is fixed until the epochs end: the hand-written gradient takes the batch normalised
            # once (autograd's path normalises inside log_prob_entropy).
            inputs = self.policy.normalizer.forward(w.obs) if hand else w.obs
        n = w.obs.shape[0]
        num_minibatches = max(1, n // self.minibatch_size)
        done, sums, stopped = 0, {"policy_loss": 0.0, "clip_fraction": 0.0, "grad_norm": 0.0}, False
        for epoch in range(self.epochs):
            perm = torch.randperm(n)
            # One gather per epoch: the minibatches are contiguous slices of it, the same rows in the same order
            # as indexing each one by its part of perm.tensor_split(num_minibatches) (4 gathers fewer a step).
            shuffled = (inputs[perm], w.actions[perm], w.psi[perm], old_log_prob[perm])
            ratios = []  # of the minibatches stepped on: their clip fractions are taken once an epoch
            for rows in _sections(n, num_minibatches):
                mb = self._minibatch_step(*(t[rows] for t in shuffled), iteration, hand)
                if mb is None:
                    stopped = True
                    break
                done += 1
                ratios.append(mb.pop("ratio"))
                for k in mb:
                    sums[k] += mb[k]
            for fraction in self._clip_fractions(ratios):  # (added one by one, in order, as they were)
                sums["clip_fraction"] += fraction
            if after_epoch is not None:
                w = after_epoch(w, stopped or epoch == self.epochs - 1)
            if stopped:
                break
        with torch.no_grad():
            kl = float(losses.approx_kl(self.policy.log_prob_entropy(w.obs, w.actions)[0], old_log_prob))
        if not math.isfinite(kl):
            raise NonFiniteError(f"non-finite approximate KL at iteration {iteration}")
        stats = {k: v / max(done, 1) for k, v in sums.items()}
        return {**stats, "entropy": float(entropy.mean()), "lr": self.optimizer.param_groups[0]["lr"],
                "approx_kl": kl, "epochs_run": done / num_minibatches}

    def _minibatch_step(self, x: torch.Tensor, actions: torch.Tensor, psi: torch.Tensor, old: torch.Tensor,
                        iteration: int, hand: bool) -> dict[str, float] | None:
        """One Adam step on a minibatch (observations ``x``, normalised if ``hand``; ``old``: log pi_old); None
        (and no step) when --target-kl stops the epochs. ``hand``: the gradient written by hand, else autograd."""
        c = self.config
        if c.normalize_minibatch_advantages and psi.numel() > 1:
            psi = (psi - psi.mean()) / (psi.std() + 1e-8)
        if hand:
            parts = []

            def slope(log_prob: torch.Tensor) -> torch.Tensor:
                g, loss, ratio = losses.clipped_surrogate_slope(log_prob, old, psi, self.clip_range)
                parts.extend((loss, ratio))
                return g

            log_prob = self.policy.log_prob_grad(x, actions, slope, c.entropy_coef)
            surrogate, ratio = parts
        else:
            log_prob, entropy = self.policy.log_prob_entropy(x, actions)
            surrogate, ratio = losses.clipped_surrogate_loss(log_prob, old, psi, self.clip_range)
        with torch.no_grad():
            kl = float(losses.approx_kl(log_prob, old))
        policy_loss = float(surrogate.detach())  # (math.isfinite on it: torch.isfinite costs ~5 ops a step)
        if not (math.isfinite(kl) and math.isfinite(policy_loss)):
            what = "approximate KL" if not math.isfinite(kl) else "clipped surrogate"
            raise NonFiniteError(f"non-finite {what} at iteration {iteration}")
        if self.target_kl is not None and kl > 1.5 * self.target_kl:
            return None  # (the hand-written gradient is already in .grad: it is never stepped on)
        if self.desired_kl is not None:
            self._adapt_lr(kl)
        if not hand:
            self.optimizer.zero_grad(set_to_none=True)
            objective = surrogate - c.entropy_coef * entropy.mean()
            if c.option("mean_bound_coef"):
                objective = objective + c.mean_bound_coef * self.policy.mean_bound_penalty(x)
            objective.backward()
        params = [p for p in self._params if p.grad is not None]
        grad_norm = float(clip_grad_norm(params, c.max_grad_norm if c.max_grad_norm > 0 else math.inf))
        if not math.isfinite(grad_norm):
            raise NonFiniteError(f"non-finite policy gradient at iteration {iteration}")
        self.optimizer.step()
        return {"policy_loss": policy_loss, "grad_norm": grad_norm, "ratio": ratio.detach()}

    def _clip_fractions(self, ratios: list[torch.Tensor]) -> list[float]:
        """The fraction of each minibatch's ratios outside the clip range, in one pass when the minibatches are
        of one size (the counts are whole numbers, exact in any order: the same numbers as one at a time)."""
        def outside(r: torch.Tensor) -> torch.Tensor:
            return ((r - 1.0).abs() > self.clip_range).float().mean(dim=-1)

        if ratios and all(r.numel() == ratios[0].numel() for r in ratios):
            return outside(torch.stack(ratios)).tolist()
        return [float(outside(r)) for r in ratios]

    def _adapt_lr(self, kl: float) -> None:
        # The bounds stop the rule, never reverse it: a rate given below LR_MIN is not raised by a KL too large.
        for g in self.optimizer.param_groups:
            if kl > 2.0 * self.desired_kl:
                g["lr"] = min(g["lr"], max(LR_MIN, g["lr"] / LR_FACTOR))
            elif 0.0 < kl < 0.5 * self.desired_kl:
                g["lr"] = max(g["lr"], min(LR_MAX, g["lr"] * LR_FACTOR))

    # --- what carries over between iterations --------------------------------------------------------
    def modules(self) -> list[torch.nn.Module]:
        return [self.policy, *self.critic.modules()]

    def state_dict(self) -> dict:
        # The optimiser's state holds the adaptive learning rate too.
        return {"optimizer": self.optimizer.state_dict(), **self.critic.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.critic.load_state_dict(state)


def _sections(n: int, parts: int) -> list[slice]:
    """The index ranges of ``torch.arange(n).tensor_split(parts)``: the first n % parts hold one row more."""
    size, extra = divmod(n, parts)
    bounds = [0]
    for i in range(parts):
        bounds.append(bounds[-1] + size + (i < extra))
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]
