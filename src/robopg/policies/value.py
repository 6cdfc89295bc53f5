"""The value function V_phi(s), and the hand-written backward pass that fits it fast.

``forward`` with autograd and ``losses.value_loss`` is the reference; ``squared_error_grad`` is the fast
path, equal to it to the bit (``tests/test_policies.py``).
"""

from __future__ import annotations

import torch
from torch import nn

from ..normalization import ObsNormalizer
from .networks import activation_slope, linear_plan, mlp, plan_backward, plan_forward, run_layers


class ContextInputs(nn.Module):
    """The privileged critic's input normaliser: the policy's normaliser on the observation columns, the
    context columns (log physics factors, already near zero and of unit scale) passed through, or zeroed
    (``blind``: the same network without the information, the control that tells what the information does
    from what the wider network does)."""

    def __init__(self, normalizer: ObsNormalizer, context_dim: int, blind: bool = False):
        super().__init__()
        self.inner, self.obs_dim, self.context_dim, self.blind = normalizer, normalizer.mean.numel(), context_dim, blind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context = x[..., self.obs_dim:]
        return torch.cat([self.inner(x[..., :self.obs_dim]), torch.zeros_like(context) if self.blind else context],
                         dim=-1)


class ValueFunction(nn.Module):
    """Its own network (and optimiser, in the algorithm), reading the policy's normaliser.

    With ``context_dim > 0`` (``--critic-obs privileged``) it is V(s, c): its inputs are the observation
    followed by ``context_dim`` context values (the episode's randomised physics), which the policy never
    sees. A baseline may depend on anything but the action, so the gradient estimate stays unbiased
    (``tests/test_privileged_baseline.py``)."""

    def __init__(self, normalizer: ObsNormalizer, hidden: list[int], activation: str, context_dim: int = 0,
                 blind: bool = False):
        super().__init__()
        self.context_dim = context_dim
        self.normalizer = ContextInputs(normalizer, context_dim, blind) if context_dim else normalizer
        self.net = mlp([normalizer.mean.numel() + context_dim, *hidden, 1], activation, out_gain=1.0)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.values_of_normalized(self.normalizer.forward(obs))

    def values_of_normalized(self, x: torch.Tensor) -> torch.Tensor:
        """V for observations ``x`` already normalised."""
        return run_layers(self.net, x).squeeze(-1)

    @torch.no_grad()
    def squared_error_grad(self, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Set every parameter's ``.grad`` to that of ``value_loss(values_of_normalized(x), targets)`` and
        return that loss.

        Backpropagation by hand, for the ``mlp`` layout (Linear, activation, ..., Linear): the value
        function takes 40 small steps an iteration, and for 128-row minibatches autograd's bookkeeping
        costs more than the arithmetic (14 vs 21 ms per fit on HalfCheetah, measured). The layers are read
        from a plan made once (module attribute lookups cost a tenth of a step) and the gradients written
        into the existing ``.grad`` tensors.
        """
        plan = linear_plan(self.net)
        h, inputs = plan_forward(plan, x)
        diff = h.squeeze(-1) - targets
        g = (diff * (2.0 / diff.shape[0])).unsqueeze(-1)  # d loss / d output
        plan_backward(plan, inputs, g)
        return diff.pow(2).mean()

    @torch.no_grad()
    def squared_error_grad_reference(self, x: torch.Tensor, targets: torch.Tensor
                                     ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """What ``squared_error_grad`` computes, written plainly: every layer's output kept, then the chain
        rule from the last layer back; returns the loss and the gradients in ``net.parameters()`` order
        instead of writing ``.grad``. The fast path must equal it to the bit (``tests/test_policies.py``).

        Autograd is the reference for the mathematics (equal to 1e-10 in float64), not for the last bit:
        its tanh and ELU backward kernels round 1 - y^2 differently, and matching them would change the
        numbers of every run with a value baseline trained so far."""
        outputs = [x]
        for layer in self.net:
            outputs.append(layer(outputs[-1]))
        diff = outputs[-1].squeeze(-1) - targets
        grad = (diff * (2.0 / diff.shape[0])).unsqueeze(-1)
        grads: dict[nn.Parameter, torch.Tensor] = {}
        for i in range(len(self.net) - 1, -1, -1):
            layer = self.net[i]
            if isinstance(layer, nn.Linear):
                grads[layer.weight] = grad.t() @ outputs[i]
                grads[layer.bias] = grad.sum(0)
                if i > 0:
                    grad = grad @ layer.weight
            else:
                grad = grad * activation_slope(layer)(outputs[i + 1])
        return diff.pow(2).mean(), [grads[p] for p in self.net.parameters()]
