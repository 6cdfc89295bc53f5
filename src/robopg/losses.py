"""The losses: pure functions of tensors whose gradients are the estimates the update rules step along.

An estimator only chooses the weights Psi_t (``robopg.estimators``); every policy-gradient update here is
the gradient of one of these.
"""

from __future__ import annotations

import torch


def policy_gradient_loss(log_prob: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
    """-mean(log pi(a_t|s_t) * Psi_t) over the batch's n steps ([n], [n] -> scalar): its gradient is the
    negated policy-gradient estimate, averaged per step."""
    return -(log_prob * psi).mean()


def mean_bound_penalty(mean: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """mean over steps of sum_d (max(mean_d - high_d, 0)^2 + max(low_d - mean_d, 0)^2) ([n, d], [d], [d] ->
    scalar): zero while every mean is within the action bounds."""
    return ((mean - high).clamp(min=0).pow(2) + (low - mean).clamp(min=0).pow(2)).sum(-1).mean()


def linear_surrogate(params: list[torch.Tensor], gradient: torch.Tensor) -> torch.Tensor:
    """sum_k theta_k * stopgrad(-gradient_k): a loss whose gradient is exactly ``-gradient`` (a flat [P]
    vector in ``params`` order).

    For estimates that are not the gradient of a per-step weighted log-likelihood, such as the optimal
    constant baseline's, whose baseline differs per parameter: autograd then composes them with any other
    loss term (the entropy bonus) as it does for ``policy_gradient_loss``. The backward pass multiplies by
    one, so the gradient is the estimate to the bit.
    """
    total = torch.zeros((), dtype=gradient.dtype)
    offset = 0
    for p in params:
        n = p.numel()
        total = total + (p * (-gradient[offset:offset + n]).reshape(p.shape).to(p.dtype).detach()).sum()
        offset += n
    return total


def value_loss(values: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """mean((V(s_t) - target_t)^2) over [n] steps: the reference the value function's hand-written backward
    pass (``ValueFunction.squared_error_grad``) is tested against."""
    return (values - targets).pow(2).mean()


# --- trust-region update rules ---------------------------------------------------------------------------

def clipped_surrogate_loss(log_prob: torch.Tensor, old_log_prob: torch.Tensor, psi: torch.Tensor,
                           clip_range: float) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's loss (Schulman et al., 2017): -mean(min(r_t Psi_t, clip(r_t, 1-c, 1+c) Psi_t)) with the ratio
    r_t = pi(a_t|s_t) / pi_old(a_t|s_t) ([n] each -> scalar); also the [n] ratios.

    At the sampling policy (r = 1, inside the clip range) both terms equal Psi and their gradient is
    Psi * grad log pi: the gradient of ``policy_gradient_loss`` exactly (``tests/test_trust_region.py``).
    """
    ratio = torch.exp(log_prob - old_log_prob)
    clipped = torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    return -torch.min(ratio * psi, clipped * psi).mean(), ratio


def clipped_surrogate_slope(log_prob: torch.Tensor, old_log_prob: torch.Tensor, psi: torch.Tensor,
                            clip_range: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """d ``clipped_surrogate_loss`` / d log_prob ([n]), as autograd takes it, with the loss and the ratios.

    The min passes the gradient to the unclipped term r Psi where it is the smaller (a tie, r inside the
    clip range, splits it into two halves that add up to the same); where the clipped term is the smaller, r
    is outside the range and the clip's slope is 0. So the slope is -r Psi / n where r Psi <= clip(r) Psi,
    else 0.
    """
    ratio = torch.exp(log_prob - old_log_prob)
    unclipped = ratio * psi
    clipped = torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range) * psi
    loss = -torch.min(unclipped, clipped).mean()
    slope = torch.where(unclipped <= clipped, unclipped, 0.0).mul_(-1.0 / unclipped.numel())
    return slope, loss, ratio


def surrogate(log_prob: torch.Tensor, old_log_prob: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
    """TRPO's surrogate advantage L(theta) = mean(r_t Psi_t) ([n], [n], [n] -> scalar); its gradient at the
    sampling policy is the policy-gradient estimate."""
    return (torch.exp(log_prob - old_log_prob) * psi).mean()


def approx_kl(log_prob: torch.Tensor, old_log_prob: torch.Tensor) -> torch.Tensor:
    """mean((r - 1) - log r) over steps sampled from pi_old: an unbiased, never negative estimate of
    KL(pi_old || pi) from log-probabilities alone (Schulman's "k3"; what CleanRL logs as approx_kl)."""
    log_ratio = log_prob - old_log_prob
    return (torch.expm1(log_ratio) - log_ratio).mean()


def clipped_value_loss(values: torch.Tensor, old_values: torch.Tensor, targets: torch.Tensor,
                       clip: float) -> torch.Tensor:
    """PPO's optional value clipping ([n] each -> scalar): mean(max((V - y)^2, (V_old + clip(V - V_old, -c, c)
    - y)^2)); keeps each prediction within c of where the iteration began unless that lowers the error."""
    clipped = old_values + torch.clamp(values - old_values, -clip, clip)
    return torch.max((values - targets).pow(2), (clipped - targets).pow(2)).mean()


def gaussian_kl(mean_p: torch.Tensor, log_std_p: torch.Tensor, mean_q: torch.Tensor,
                log_std_q: torch.Tensor) -> torch.Tensor:
    """KL(N(mean_p, std_p^2) || N(mean_q, std_q^2)) of diagonal Gaussians, summed over action dims:
    [n, d] means, [d] (or [n, d]) log-stds -> [n]."""
    var_p, var_q = torch.exp(2 * log_std_p), torch.exp(2 * log_std_q)
    kl = log_std_q - log_std_p + (var_p + (mean_p - mean_q).pow(2)) / (2 * var_q) - 0.5
    return kl.sum(-1)


def categorical_kl(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """KL(softmax(logits_p) || softmax(logits_q)): [n, k], [n, k] -> [n]."""
    logp, logq = torch.log_softmax(logits_p, -1), torch.log_softmax(logits_q, -1)
    return (logp.exp() * (logp - logq)).sum(-1)
