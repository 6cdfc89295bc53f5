"""``robopg.optim.Adam``: torch's fused Adam without ``torch.optim``, equal to it to the bit, its state
interchangeable with torch's, and it never imports ``torch._dynamo``."""

import copy
import subprocess
import sys

import pytest
import torch

from robopg.optim import Adam, clip_grad_norm
from robopg.policies import ObsNormalizer, ValueFunction


def _pair(seed=0):
    torch.manual_seed(seed)
    a = ValueFunction(ObsNormalizer(5), [16, 16], "tanh")
    return a, copy.deepcopy(a)


def _steps(value, optimizer, x, y, steps):
    for step in steps:
        value.squared_error_grad(x[step::2], y[step::2])
        optimizer.step()
        if step == 3:
            optimizer.param_groups[0]["lr"] = 1e-3  # a changed learning rate is read on every step


def _same(mod_a, mod_b, opt_a, opt_b):
    assert all(torch.equal(pa, pb) for pa, pb in zip(mod_a.parameters(), mod_b.parameters()))
    sa, sb = opt_a.state_dict(), opt_b.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    assert sa["state"].keys() == sb["state"].keys()
    for i in sa["state"]:
        for k in ("step", "exp_avg", "exp_avg_sq"):
            assert sa["state"][i][k].dtype == sb["state"][i][k].dtype
            assert torch.equal(sa["state"][i][k], sb["state"][i][k]), (i, k)


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_adam_is_torch_fused_adam_to_the_bit(weight_decay):
    a, b = _pair()
    opt_a = torch.optim.Adam(a.net.parameters(), lr=3e-3, fused=True, weight_decay=weight_decay)
    opt_b = Adam(b.net.parameters(), lr=3e-3, weight_decay=weight_decay)
    x, y = torch.randn(64, 5), torch.randn(64)
    _steps(a, opt_a, x, y, range(6))
    _steps(b, opt_b, x, y, range(6))
    _same(a.net, b.net, opt_a, opt_b)


def test_a_checkpointed_state_resumes_the_same_in_either_class():
    """torch's state loads into robopg's and robopg's into torch's (old checkpoints hold torch's); both go on
    exactly as the optimiser that was never saved."""
    x, y = torch.randn(64, 5), torch.randn(64)
    ref, _ = _pair()
    opt_ref = Adam(ref.net.parameters(), lr=3e-3)
    _steps(ref, opt_ref, x, y, range(8))
    for first, second in ((torch.optim.Adam, Adam), (Adam, torch.optim.Adam)):
        a, b = _pair()
        make = {torch.optim.Adam: lambda p: torch.optim.Adam(p, lr=3e-3, fused=True), Adam: lambda p: Adam(p, lr=3e-3)}
        opt_a = make[first](a.net.parameters())
        _steps(a, opt_a, x, y, range(5))
        b.net.load_state_dict(a.net.state_dict())
        saved = copy.deepcopy(opt_a.state_dict())
        opt_b = make[second](b.net.parameters())
        opt_b.load_state_dict(saved)
        assert opt_b.param_groups[0]["lr"] == 1e-3  # the saved learning rate, not the constructor's
        _steps(b, opt_b, x, y, range(5, 8))
        _same(ref.net, b.net, opt_ref, opt_b)


def test_parameters_without_a_gradient_are_skipped_and_wrong_states_refused():
    w, v = torch.zeros(3, requires_grad=True), torch.zeros(2, requires_grad=True)
    opt = Adam([w, v], lr=0.1)
    w.grad = torch.ones(3)
    opt.step()
    assert torch.all(w < 0) and torch.equal(v, torch.zeros(2)) and v not in opt.state
    opt.zero_grad()
    assert w.grad is None
    with pytest.raises(ValueError, match="does not match"):
        Adam([w], lr=0.1).load_state_dict(opt.state_dict())
    with pytest.raises(ValueError, match="empty"):
        Adam([], lr=0.1)


def test_step_counts_stay_torch_s_when_some_steps_leave_a_parameter_out(tmp_path):
    # Once every parameter has stepped, robopg counts steps in one shared tensor; steps where a parameter has no
    # gradient count the others only, as torch does, and the saved state (views of that tensor) reloads into
    # either class through torch.save.
    def run(make, tmp):
        torch.manual_seed(0)
        w, v = torch.randn(4, requires_grad=True), torch.randn(3, requires_grad=True)
        opt = make([w, v])
        for k in range(7):
            w.grad = torch.full((4,), 0.1 * k + 0.3)
            v.grad = None if k in (0, 4) else torch.full((3,), 0.2 - 0.05 * k)
            opt.step()
        torch.save(opt.state_dict(), tmp)
        return w, v, opt

    ours = run(lambda p: Adam(p, lr=0.05), tmp_path / "ours.pt")
    theirs = run(lambda p: torch.optim.Adam(p, lr=0.05, fused=True), tmp_path / "theirs.pt")
    assert torch.equal(ours[0], theirs[0]) and torch.equal(ours[1], theirs[1])
    assert [float(ours[2].state[p]["step"]) for p in ours[:2]] == [7.0, 5.0]
    for saved in ("ours.pt", "theirs.pt"):
        for make in (lambda p: Adam(p, lr=0.05), lambda p: torch.optim.Adam(p, lr=0.05, fused=True)):
            w, v = ours[0].detach().clone().requires_grad_(), ours[1].detach().clone().requires_grad_()
            opt = make([w, v])
            opt.load_state_dict(torch.load(tmp_path / saved))
            w.grad, v.grad = torch.full((4,), 0.7), torch.full((3,), -0.1)
            opt.step()
            steps = [float(opt.state[p]["step"]) for p in (w, v)]
            assert steps == [8.0, 6.0], (saved, steps)


def test_clip_grad_norm_is_torch_clip_grad_norm():
    a, b = _pair()
    x, y = torch.randn(32, 5), torch.randn(32)
    for value in (a, b):
        value.squared_error_grad(x, y * 100)
    want = torch.nn.utils.clip_grad_norm_(list(a.net.parameters()), 0.5)
    got = clip_grad_norm(list(b.net.parameters()), 0.5)
    assert torch.equal(want, got)
    assert all(torch.equal(pa.grad, pb.grad) for pa, pb in zip(a.net.parameters(), b.net.parameters()))


def test_training_never_imports_torch_dynamo(tmp_path):
    # torch.optim's first zero_grad/state_dict call imports torch._dynamo: 2 s of every process's start.
    config = "make_config('CartPole-v1', steps=512, batch_size=256, num_envs=2, algorithm='ppo', tensorboard=False)"
    code = ("import sys; from robopg.api import train; from robopg.presets import make_config; "
            f"train({config}, run_dir={str(tmp_path / 'run')!r}); print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"
