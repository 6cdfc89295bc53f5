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
