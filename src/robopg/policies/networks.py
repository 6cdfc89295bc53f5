"""Multilayer perceptrons, and the ways of running one: ``run_layers`` (the reference, reading the live
parameters), ``frozen_layers`` (the sampling fast path, on copies taken once per batch), and ``plan_forward``
/ ``plan_backward`` (a forward pass that keeps what backpropagation by hand needs, and that backpropagation,
for the update steps whose minibatches are too small for autograd's bookkeeping to pay)."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
from torch import nn

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}


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
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


def as_buffers(net: nn.Sequential) -> nn.Sequential:
    """``net`` with each Linear's weight and bias turned into buffers (the same names and values): saved in the
    state dict and moved by ``.to()``, but not among ``parameters()``, so no update rule's optimiser sees them."""
    return _swap_tensors(net, lambda layer, name, value: layer.register_buffer(name, value))


def as_parameters(net: nn.Sequential) -> nn.Sequential:
    """The inverse of ``as_buffers``: each Linear's weight and bias as parameters again (copies)."""
    return _swap_tensors(net, lambda layer, name, value: layer.register_parameter(name, nn.Parameter(value.clone())))


def _swap_tensors(net: nn.Sequential, register) -> nn.Sequential:
    for layer in net:
        if isinstance(layer, nn.Linear):
            for name in ("weight", "bias"):
                value = getattr(layer, name).detach()
                delattr(layer, name)
                register(layer, name, value)
    return net


def run_layers(net: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """``net(x)``, calling each layer's ``forward`` directly: ``nn.Module.__call__``'s hook machinery costs
    ~5 us a layer, a third of one sampling step's inference for these small networks (measured)."""
    for layer in net:
        x = layer.forward(x)
    return x


def frozen_layers(net: nn.Sequential) -> Callable[[torch.Tensor], torch.Tensor]:
    """``run_layers(net, .)`` with the parameters as they are now: ``addmm`` on copies of the weights
    (transposed views), the activations' ``forward`` called directly. The same operations as
    ``Linear.forward`` (so the same numbers: ``tests/test_policies.py``), without the per-call attribute
    lookups, which cost more than the arithmetic at sampling's batch sizes."""
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


# (weight, bias, activation after it or None, that activation's slope), per Linear of an ``mlp``.
Plan = list[tuple]


def linear_plan(net: nn.Sequential) -> Plan:
    """The layers of ``net`` (an ``mlp``) as a plan, made once and cached on the module: attribute lookups
    cost a tenth of a small step. Parameters keep their identity through .to(), .double() and load_state_dict,
    so the plan stays valid."""
    plan = net.__dict__.get("_robopg_plan")
    if plan is None:
        layers = list(net)
        plan = []
        for i, layer in enumerate(layers):
            if isinstance(layer, nn.Linear):
                act = layers[i + 1] if i + 1 < len(layers) else None
                plan.append((layer.weight, layer.bias, None if act is None else act.forward,
                             None if act is None else activation_slope(act)))
        net.__dict__["_robopg_plan"] = plan
    return plan


def plan_forward(plan: Plan, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The network's output for ``x``, and the input of each Linear (x, then each activation's output)."""
    inputs = []
    h = x
    for weight, bias, activation, _ in plan:
        inputs.append(h)
        h = torch.addmm(bias, h, weight.t())
        if activation is not None:
            h = activation(h)
    return h, inputs


def plan_backward(plan: Plan, inputs: list[torch.Tensor], g: torch.Tensor) -> None:
    """Backpropagate ``g`` = d loss / d output ([n, out]) from the last Linear back, writing every parameter's
    ``.grad`` (into the existing tensors: no allocation per step)."""
    for i in range(len(plan) - 1, -1, -1):
        weight, bias, _, _ = plan[i]
        write_grad(weight, torch.mm, g.t(), inputs[i])
        write_grad(bias, torch.sum, g, 0)
        if i > 0:
            g = g.mm(weight).mul_(plan[i - 1][3](inputs[i]))


def write_grad(p: torch.Tensor, op, *args) -> None:
    # Into the existing .grad (out=): no allocation per step, the same numbers as a fresh tensor.
    if p.grad is None:
        p.grad = op(*args)
    else:
        op(*args, out=p.grad)


def activation_slope(activation: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """d activation / d input as a function of the activation's output ``y`` (as autograd's backward
    computes it)."""
    if isinstance(activation, nn.Tanh):
        return lambda y: 1.0 - y * y
    if isinstance(activation, nn.ReLU):
        return lambda y: (y > 0).to(y.dtype)
    if isinstance(activation, nn.ELU) and activation.alpha == 1.0:
        return lambda y: torch.where(y > 0, 1.0, y + 1.0)  # for z <= 0, y = exp(z) - 1: dy/dz = exp(z) = y + 1
    raise TypeError(f"no hand-written derivative for {activation}")
