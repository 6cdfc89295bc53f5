"""``adam_step``: torch's fused Adam kernel called directly, equal to ``optimizer.step()`` to the bit."""

import copy

import pytest
import torch

from robopg.optim import adam_step
from robopg.policies import ObsNormalizer, ValueFunction


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_adam_step_is_optimizer_step_to_the_bit(weight_decay):
    torch.manual_seed(0)
    a = ValueFunction(ObsNormalizer(5), [16, 16], "tanh")
    b = copy.deepcopy(a)
    opt_a = torch.optim.Adam(a.net.parameters(), lr=3e-3, fused=True, weight_decay=weight_decay)
    opt_b = torch.optim.Adam(b.net.parameters(), lr=3e-3, fused=True, weight_decay=weight_decay)
    x, y = torch.randn(64, 5), torch.randn(64)
    for step in range(6):  # the first step creates Adam's state; the rest take the fast path
        for value, step_fn in ((a, opt_a.step), (b, lambda: adam_step(opt_b))):
            value.squared_error_grad(x[step::2], y[step::2])
            step_fn()
        if step == 3:
            for opt in (opt_a, opt_b):
                opt.param_groups[0]["lr"] = 1e-3  # a changed learning rate is read on every step
    for pa, pb in zip(a.net.parameters(), b.net.parameters()):
        assert torch.equal(pa, pb)
    for sa, sb in zip(opt_a.state.values(), opt_b.state.values()):
        assert all(torch.equal(sa[k], sb[k]) for k in ("step", "exp_avg", "exp_avg_sq"))


def test_adam_step_falls_back_to_torch_where_it_does_not_apply():
    torch.manual_seed(0)
    value = ValueFunction(ObsNormalizer(3), [8], "tanh")
    opt = torch.optim.Adam(value.net.parameters(), lr=1e-2, amsgrad=True)  # not fused, amsgrad
    before = [p.detach().clone() for p in value.net.parameters()]
    for _ in range(2):
        value.squared_error_grad(torch.randn(10, 3), torch.randn(10))
        adam_step(opt)
    assert all(not torch.equal(p, q) for p, q in zip(before, value.net.parameters()))
    assert all(s["max_exp_avg_sq"].abs().sum() > 0 for s in opt.state.values())
