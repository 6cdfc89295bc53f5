"""Adam for robopg's networks, and a cheaper gradient clipping, without ``torch.optim``.

``Adam`` is ``torch.optim.Adam(params, lr, fused=True)`` for one parameter group, calling the same fused kernel
with the same arguments in the same order, so its numbers are torch's to the bit (``tests/test_optim.py``). Two
reasons not to use torch's class:

- Cost per step. The value function takes ``value_epochs x value_minibatches`` (40 by default) small Adam steps
  every iteration, and PPO ``epochs x minibatches``. ``torch.optim.Adam.step`` spends ~80 us of bookkeeping per
  call around a ~40 us kernel (profiler hooks, state and group checks, device grouping): a fifth of a whole
  128-row value step (measured on HalfCheetah).
- Start-up. ``torch.optim``'s ``zero_grad``, ``add_param_group`` and ``state_dict`` are wrapped in
  ``torch._disable_dynamo``, whose first call imports ``torch._dynamo``: 2 s of every ``robopg`` process's
  start (measured: 7.6 s -> 5.5 s for a 2,048-step CartPole run), which every CLI call and test subprocess pays.

Its ``state_dict`` has ``torch.optim.Adam``'s layout, so checkpoints written by either load into the other.
"""

from __future__ import annotations

from collections.abc import Iterable
from copy import deepcopy

import torch


class Adam:
    """Fused Adam of one parameter group: ``param_groups[0]["lr"]`` may be changed between steps (schedules,
    the KL-adaptive rate); parameters whose ``grad`` is None are skipped, as torch skips them."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0):
        params = list(params)
        if not params:
            raise ValueError("Adam got an empty parameter list")
        for p in params:
            if not (p.is_floating_point() and p.is_leaf):
                raise ValueError("Adam optimises floating-point leaf tensors only")
        # torch.optim.Adam's group keys and defaults (fused=True), so that state_dict() reads as torch's.
        self.param_groups = [{"params": params, "lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay,
                              "amsgrad": False, "maximize": False, "foreach": None, "capturable": False,
                              "differentiable": False, "fused": True, "decoupled_weight_decay": False}]
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}
        # Once every parameter has stepped: each one's "step" is a view of this one tensor, so that counting a
        # step is one add (torch._foreach_add_ on the separate counts costs ~25 us, a tenth of a small step).
        self._counts: torch.Tensor | None = None

    @property
    def params(self) -> list[torch.Tensor]:
        return self.param_groups[0]["params"]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.detach_().zero_()

    @torch.no_grad()
    def step(self) -> None:
        group = self.param_groups[0]
        params = [p for p in self.params if p.grad is not None]
        if not params:
            return
        states = [self.state.get(p) or self._new_state(p) for p in params]
        steps = self._count_step(states)
        beta1, beta2 = group["betas"]
        torch._fused_adam_(params, [p.grad for p in params], [s["exp_avg"] for s in states],
                           [s["exp_avg_sq"] for s in states], [], steps, amsgrad=False, lr=group["lr"],
                           beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"],
                           maximize=False, grad_scale=None, found_inf=None)

    def _count_step(self, states: list[dict[str, torch.Tensor]]) -> list[torch.Tensor]:
        """Add 1 to the step count of each of ``states`` (those of the parameters stepping now); returns the
        counts. The same float32 adds as torch's ``_foreach_add_(steps, 1)``, so the same numbers."""
        if len(states) != len(self.params):  # some parameters have no gradient: only the others count
            steps = [s["step"] for s in states]
            torch._foreach_add_(steps, 1)
            return steps
        if self._counts is None:
            self._counts = torch.stack([s["step"] for s in states])
            for i, s in enumerate(states):
                s["step"] = self._counts[i]
        self._counts.add_(1)
        return [s["step"] for s in states]

    def _new_state(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        # What torch's _init_group creates for a fused group: a float32 step on the parameter's device.
        state = {"step": torch.zeros((), dtype=torch.float32, device=p.device),
                 "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                 "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}
        self.state[p] = state
        return state

    # --- torch.optim.Adam's state_dict layout: parameters by index ---------------------------------------
    def state_dict(self) -> dict:
        index = {p: i for i, p in enumerate(self.params)}
        group = {k: v for k, v in self.param_groups[0].items() if k != "params"}
        return {"state": {index[p]: s for p, s in self.state.items()},
                "param_groups": [{**group, "params": list(range(len(self.params)))}]}

    def load_state_dict(self, state_dict: dict) -> None:
        groups = state_dict.get("param_groups")
        if not isinstance(groups, list) or len(groups) != 1 or len(groups[0].get("params", ())) != len(self.params):
            raise ValueError("loaded optimizer state does not match this optimizer's parameters")
        saved = deepcopy(groups[0])
        ids = saved.pop("params")
        state = {}
        for i, p in zip(ids, self.params):
            if i in state_dict["state"]:
                # As torch casts them: the step to float32 (fused), moments to the parameter's dtype and device.
                state[p] = {k: (v.to(dtype=torch.float32, device=p.device) if k == "step"
                                else v.to(dtype=p.dtype, device=p.device)).clone()
                            for k, v in state_dict["state"][i].items()}
        self.param_groups[0].update(saved)
        self.state, self._counts = state, None


def clip_grad_norm(params: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """``torch.nn.utils.clip_grad_norm_(params, max_norm)`` for parameters that all have gradients of one
    device and dtype: the same operations (so the same numbers), without its per-call grouping and checks;
    returns the total norm before clipping."""
    grads = [p.grad for p in params]
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, 2.0)), 2.0)
    torch._foreach_mul_(grads, torch.clamp(max_norm / (total + 1e-6), max=1.0))
    return total
