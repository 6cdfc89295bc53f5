"""The losses: their gradients are the estimates, to the bit where the update depends on it."""

import torch

from robopg import losses


def test_policy_gradient_loss_gradient_is_the_weighted_score_mean():
    torch.manual_seed(0)
    theta = torch.randn(3, requires_grad=True, dtype=torch.float64)
    x = torch.randn(10, 3, dtype=torch.float64)
    psi = torch.randn(10, dtype=torch.float64)
    log_prob = torch.log_softmax(x * theta, -1)[:, 0]
    losses.policy_gradient_loss(log_prob, psi).backward()
    scores = torch.autograd.functional.jacobian(lambda t: torch.log_softmax(x * t, -1)[:, 0], theta.detach())
    assert torch.allclose(theta.grad, -(scores * psi[:, None]).mean(0), rtol=1e-12)


def test_linear_surrogate_has_exactly_the_negated_estimate_as_gradient():
    torch.manual_seed(1)
    params = [torch.randn(4, 3, requires_grad=True), torch.randn(5, requires_grad=True)]
    g = torch.randn(17, dtype=torch.float64)
    g[3] = 0.0  # its estimate -0.0 must arrive as -0.0
    losses.linear_surrogate(params, g).backward()
    expected = -g
    assert torch.equal(params[0].grad, expected[:12].reshape(4, 3).float())
    assert torch.equal(params[1].grad, expected[12:].float())
    assert torch.signbit(params[0].grad.reshape(-1)[3])  # even the sign of a zero


def test_linear_surrogate_composes_with_another_loss_as_written_gradients_would():
    # The optimal baseline's old path wrote -g into .grad, then backpropagated the entropy term on top.
    torch.manual_seed(2)
    p = torch.randn(6, requires_grad=True)
    g = torch.randn(6, dtype=torch.float64)
    (losses.linear_surrogate([p], g) - 0.01 * p.pow(2).sum()).backward()
    via_loss = p.grad.clone()
    p.grad = -g.to(p.dtype)
    (-0.01 * p.pow(2).sum()).backward()
    assert torch.equal(via_loss, p.grad)


def test_value_loss_is_the_mean_squared_error():
    assert losses.value_loss(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 1.0])).item() == 2.5
