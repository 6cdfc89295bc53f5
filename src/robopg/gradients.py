"""Policy-gradient computations that need more than one backward pass: per-step score vectors, the
optimal (variance-minimising) constant baseline, and within-batch gradient statistics."""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, grad, vmap


class _LogProb(nn.Module):
    def __init__(self, policy):
        super().__init__()
        self.policy = policy

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.policy.log_prob_entropy(obs, actions)[0]


def per_step_scores(policy, obs: torch.Tensor, actions: torch.Tensor, chunk_size: int = 1024) -> torch.Tensor:
    """[n, P]: row t is grad_theta log pi(a_t|s_t), flattened in ``policy.parameters()`` order."""
    wrapper = _LogProb(policy)
    names = [f"policy.{k}" for k, _ in policy.named_parameters()]
    params = {n: p.detach() for n, (_, p) in zip(names, policy.named_parameters())}

    def logp(p, o, a):
        return functional_call(wrapper, p, (o[None], a[None])).sum()

    grads = vmap(grad(logp), in_dims=(None, 0, 0), chunk_size=chunk_size)(params, obs, actions)
    return torch.cat([grads[n].reshape(obs.shape[0], -1) for n in names], dim=1)


def optimal_baseline_gradient(scores: torch.Tensor, psi: torch.Tensor, episode: torch.Tensor,
                              eps: float = 1e-12) -> torch.Tensor:
    """sum_t g_t * (Psi_t - b), with a separate constant b_k per parameter k (Greensmith, Bartlett & Baxter,
    2004): b_k = E[g_k^2 Psi] / E[g_k^2] minimises the variance of coordinate k among constant baselines.

    ``scores``: [n, P] per-step grad log pi; ``psi``: [n]; ``episode``: [n] episode index of each step.
    b is estimated from the batch, leaving each episode's own steps out of the b its steps use (as the
    'mean' baseline does), so it is independent of that episode's actions and the estimate stays unbiased.
    Returns the *sum* over steps; divide by the number of episodes (or steps) as the caller's estimator does.
    """
    num_episodes = int(episode.max()) + 1 if episode.numel() else 0
    g2 = scores.pow(2)
    per_ep = lambda x: torch.zeros(num_episodes, x.shape[1], dtype=x.dtype).index_add_(0, episode, x)  # noqa: E731
    s2psi, s2, g_sum = per_ep(g2 * psi[:, None]), per_ep(g2), per_ep(scores)
    # An episode alone in its batch (or a parameter no other episode moved) gets b = 0: nothing to learn from.
    others = s2.sum(0) - s2
    b = torch.where(others > eps, (s2psi.sum(0) - s2psi) / others.clamp_min(eps), torch.zeros_like(others))
    return scores.T @ psi - (g_sum * b).sum(0)


def chunk_gradient_stats(policy, obs: torch.Tensor, actions: torch.Tensor, psi: torch.Tensor,
                         chunk: torch.Tensor, num_chunks: int) -> dict[str, float]:
    """Variance and signal-to-noise ratio of the batch's policy gradient, from independent chunks of it.

    The batch gradient is the mean of ``num_chunks`` chunk gradients (chunks of whole env columns are
    independent), so tr Var(batch gradient) ~= tr(sample covariance of chunk gradients) / num_chunks.
    SNR = ||batch gradient||^2 / tr Var(batch gradient).
    """
    grads = []
    params = [p for p in policy.parameters() if p.requires_grad]
    for j in range(num_chunks):
        sel = chunk == j
        if not sel.any():
            continue
        log_prob, _ = policy.log_prob_entropy(obs[sel], actions[sel])
        g = torch.autograd.grad((log_prob * psi[sel]).mean(), params)
        grads.append(torch.cat([x.reshape(-1) for x in g]))
    if len(grads) < 2:
        return {"grad_var": float("nan"), "grad_snr": float("nan")}
    G = torch.stack(grads)
    var = G.var(0, unbiased=True).sum() / G.shape[0]
    mean = G.mean(0)
    return {"grad_var": float(var), "grad_snr": float(mean.pow(2).sum() / var) if var > 0 else float("nan")}
