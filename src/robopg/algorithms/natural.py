"""The natural policy gradient (Kakade, 2002) and TRPO (Schulman et al., 2015): the same policy-gradient
estimate g (from the same Psi as ``pg``), preconditioned by the Fisher matrix F of the policy.

    g     = grad_theta mean(r_t Psi_t) at theta_old (+ c_H grad entropy)      the seed's estimate
    x     = CG(F + d I, g)                                                    x ~= F^-1 g, by F-vector products
    step  = sqrt(2 delta / x'(F + d I)x) x                                    quadratic KL of the step = delta
    npg:  theta += step
    trpo: theta += 0.8^j step for the first j whose exact mean KL(old || new) <= delta and whose surrogate
          improves (j < --backtracks; none: the iteration keeps theta_old)

F is the Hessian, at theta_old, of the batch's mean KL(pi_old(.|s) || pi_theta(.|s)), the KL in closed form
for the Gaussian and categorical policies: E_s E_{a~pi}[score score'] with the expectation over actions
exact and the one over states the batch's (``tests/test_trust_region.py`` checks it against exact Fisher
matrices). Its product with a vector is a second backward pass (Pearlmutter's double backpropagation).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .. import losses
from ..errors import NonFiniteError
from ..policies import GaussianPolicy, Policy
from ..sampler import Rollout
from .critic import Critic
from .weights import Weights

BACKTRACK_COEF = 0.8  # Spinning Up's and SB3's shrink factor per backtrack


def flat(tensors) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def flat_grad(output: torch.Tensor, params: list[torch.Tensor], **kw) -> torch.Tensor:
    grads = torch.autograd.grad(output, params, allow_unused=True, **kw)
    return flat([torch.zeros_like(p) if g is None else g for g, p in zip(grads, params)])


def distribution(policy: Policy, obs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The parameters of pi(.|s) for each row of ``obs``: (mean [n, d], log_std [d]) or (logits [n, k],)."""
    if isinstance(policy, GaussianPolicy):
        return policy.forward(obs), policy.log_std
    return (policy.forward(obs),)


def kl_from(old: tuple[torch.Tensor, ...], policy: Policy, obs: torch.Tensor) -> torch.Tensor:
    """[n]: KL(pi_old(.|s) || pi_theta(.|s)) in closed form, for ``old`` = ``distribution(...)`` detached."""
    new = distribution(policy, obs)
    if len(old) == 2:
        return losses.gaussian_kl(old[0], old[1], new[0], new[1])
    return losses.categorical_kl(old[0], new[0])


def mean_kl(old, policy: Policy, obs: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    kl = kl_from(old, policy, obs)
    return kl.mean() if weights is None else (kl * weights).sum() / weights.sum()


def fisher_product(policy: Policy, obs: torch.Tensor,
                   weights: torch.Tensor | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """``v -> F v`` at the current parameters, F = Hessian of the (``weights``-weighted) mean over ``obs``
    of KL(pi_current || pi_theta): the first backward pass is built once, each product is one more."""
    params = list(policy.parameters())
    old = tuple(t.detach() for t in distribution(policy, obs))
    grad_kl = flat_grad(mean_kl(old, policy, obs, weights), params, create_graph=True)

    def product(v: torch.Tensor) -> torch.Tensor:
        return flat_grad((grad_kl * v).sum(), params, retain_graph=True)

    return product


def conjugate_gradient(matvec: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, iters: int,
                       residual_tol: float = 1e-10) -> torch.Tensor:
    """x ~= A^-1 b for symmetric positive (semi-)definite A given as ``matvec``; from x = 0, so for a singular
    A and b in its range x stays in the range (the minimum-norm solution). NonFiniteError on a non-finite
    product."""
    x = torch.zeros_like(b)
    r, p = b.clone(), b.clone()
    rr = r @ r
    for _ in range(iters):
        if rr <= residual_tol:
            break
        Ap = matvec(p)
        pAp = p @ Ap
        if not torch.isfinite(pAp):
            raise NonFiniteError("non-finite Fisher-vector product")
        alpha = rr / pAp
        x = x + alpha * p
        r = r - alpha * Ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


def line_search(evaluate: Callable[[torch.Tensor], tuple[float, float]], full_step: torch.Tensor,
                accept: Callable[[float, float], bool], backtracks: int,
                coef: float = BACKTRACK_COEF) -> tuple[int, float, float, bool]:
    """Try ``coef^j * full_step`` for j = 0..backtracks-1: ``evaluate(step)`` sets theta_old + step and returns
    (mean KL, surrogate improvement); the first step ``accept`` takes stays. Returns (j, kl, improvement,
    accepted); when none is accepted the caller restores theta_old (j = backtracks)."""
    kl = improvement = math.nan
    for j in range(backtracks):
        kl, improvement = evaluate(coef ** j * full_step)
        if accept(kl, improvement):
            return j, kl, improvement, True
    return backtracks, kl, improvement, False


class NaturalGradient:
    """``npg`` and ``trpo`` (``config.algorithm``): one natural-gradient step per iteration, then V's fit."""

    def __init__(self, config, policy: Policy, num_envs: int):
        self.config, self.policy = config, policy
        self.name = config.algorithm
        self.critic = Critic(config, policy, num_envs)
        self.value = self.critic.value
        self.max_kl, self.cg_iters = config.option("max_kl"), config.option("cg_iters")
        self.damping, self.backtracks = config.option("cg_damping"), config.option("backtracks")

    def update(self, rollout: Rollout, iteration: int, progress: float) -> dict[str, float]:
        w = self.critic.weights(rollout)
        stats = self.policy_step(w, iteration)
        stats.update(self.critic.fit(w, iteration))
        self.policy.normalizer.update(rollout.obs[rollout.mask])
        return stats

    def policy_step(self, w: Weights, iteration: int) -> dict[str, float]:
        """The step for the batch (obs, actions, psi) of ``w``; returns its statistics."""
        params = list(self.policy.parameters())
        old_params = torch.nn.utils.parameters_to_vector(params).detach()
        with torch.no_grad():
            old_log_prob = self.policy.log_prob_entropy(w.obs, w.actions)[0]
            # Copies: setting the parameters below replaces their data, which a view of log_std would follow.
            old = tuple(t.detach().clone() for t in distribution(self.policy, w.obs))
        objective = self._objective(w, old_log_prob)
        try:
            g, x, xFx = self.direction(objective, w.obs)  # g: the seed's estimate, x: natural direction
        except NonFiniteError as e:
            raise NonFiniteError(f"{e} at iteration {iteration}") from None
        full_step = math.sqrt(2 * self.max_kl / xFx) * x if xFx > 0 else torch.zeros_like(x)
        surrogate_before = float(objective.detach())

        def evaluate(step: torch.Tensor) -> tuple[float, float]:
            torch.nn.utils.vector_to_parameters(old_params + step, params)
            with torch.no_grad():
                kl = float(mean_kl(old, self.policy, w.obs))
                after = float(self._objective(w, old_log_prob))
            if not (math.isfinite(kl) and math.isfinite(after)):
                raise NonFiniteError(f"non-finite {'KL' if not math.isfinite(kl) else 'surrogate'} at iteration "
                                     f"{iteration}")
            return kl, after - surrogate_before

        if self.name == "npg":
            j, (kl, gain), accepted = 0, evaluate(full_step), True
        else:
            j, kl, gain, accepted = line_search(evaluate, full_step, self.accept, self.backtracks)
            if not accepted:
                torch.nn.utils.vector_to_parameters(old_params, params)
        with torch.no_grad():
            entropy = float(self.policy.log_prob_entropy(w.obs, w.actions)[1].mean())
        return {"policy_loss": -surrogate_before, "entropy": entropy, "grad_norm": float(g.norm()),
                "approx_kl": kl if accepted else 0.0, "backtracks": float(j),
                "surrogate_improvement": gain if accepted else 0.0}

    def direction(self, objective: torch.Tensor, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
        """(g, x, x'(F + d I)x): the gradient of ``objective`` at the current parameters, the natural
        direction x ~= (F + d I)^-1 g by CG with F over the states ``obs``, and its quadratic norm."""
        params = list(self.policy.parameters())
        g = flat_grad(objective, params)
        if not torch.isfinite(g).all():
            raise NonFiniteError("non-finite surrogate gradient")
        fvp = fisher_product(self.policy, obs)
        damped = lambda v: fvp(v) + self.damping * v  # noqa: E731
        x = conjugate_gradient(damped, g, self.cg_iters)
        xFx = float(x @ damped(x))
        if not math.isfinite(xFx):
            raise NonFiniteError("non-finite Fisher-vector product")
        return g, x, xFx

    def accept(self, kl: float, improvement: float) -> bool:
        """TRPO's test of a candidate step: inside the KL radius, and the surrogate improves."""
        return kl <= self.max_kl and improvement > 0

    def _objective(self, w: Weights, old_log_prob: torch.Tensor) -> torch.Tensor:
        log_prob, entropy = self.policy.log_prob_entropy(w.obs, w.actions)
        return losses.surrogate(log_prob, old_log_prob, w.psi) + self.config.entropy_coef * entropy.mean()

    # --- what carries over between iterations --------------------------------------------------------
    def modules(self) -> list[torch.nn.Module]:
        return [self.policy, *self.critic.modules()]

    def state_dict(self) -> dict:
        return self.critic.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.critic.load_state_dict(state)
