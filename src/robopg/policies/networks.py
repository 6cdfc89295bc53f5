"""Multilayer perceptrons, and the two ways of running one: ``run_layers`` (the reference, reading the live
parameters) and ``frozen_layers`` (the sampling fast path, on copies taken once per batch)."""

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
