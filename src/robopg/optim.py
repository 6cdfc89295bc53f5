"""Cheaper ``step`` and gradient clipping for the many small steps of the value fit and of PPO.

The value function takes ``value_epochs x value_minibatches`` (40 by default) small Adam steps every
iteration. ``torch.optim.Adam.step`` spends ~80 us of bookkeeping per call around a ~40 us kernel (its
profiler hooks, state and group checks, device grouping), a fifth of a whole 128-row value step
(measured on HalfCheetah). ``adam_step`` calls the same kernel with the same arguments, so the numbers are
those of ``optimizer.step()`` to the bit (``tests/test_policies.py`` checks it against this torch).
"""

from __future__ import annotations

import torch


def adam_step(optimizer: torch.optim.Adam) -> None:
    """``optimizer.step()`` for a fused Adam of one parameter group whose parameters all have gradients."""
    group = optimizer.param_groups[0]
    params = group["params"]
    states = [optimizer.state.get(p) for p in params]
    plain = (len(optimizer.param_groups) == 1 and group["fused"] and not group["amsgrad"]
             and not group["maximize"] and not group["decoupled_weight_decay"]
             and all(p.grad is not None for p in params))
    if not plain or not all(states):  # the first step creates the state: let torch do it
        optimizer.step()
        return
    steps = [s["step"] for s in states]
    torch._foreach_add_(steps, 1)
    beta1, beta2 = group["betas"]
    torch._fused_adam_(params, [p.grad for p in params], [s["exp_avg"] for s in states],
                       [s["exp_avg_sq"] for s in states], [], steps, amsgrad=False, lr=group["lr"],
                       beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"],
                       maximize=False, grad_scale=None, found_inf=None)


def clip_grad_norm(params: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """``torch.nn.utils.clip_grad_norm_(params, max_norm)`` for parameters that all have gradients of one
    device and dtype: the same operations (so the same numbers), without its per-call grouping and checks;
    returns the total norm before clipping."""
    grads = [p.grad for p in params]
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, 2.0)), 2.0)
    torch._foreach_mul_(grads, torch.clamp(max_norm / (total + 1e-6), max=1.0))
    return total
