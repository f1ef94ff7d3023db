"""Confidence loss: focal loss by gradient matching, background clamp, shared-b attenuation."""

import math

import pytest
import torch

from openfields.network.losses import components

ALPHAS = (0.25, 0.5, 1.0)
GAMMAS = (0.0, 1.0, 2.0)


def logits_grid():
    return torch.linspace(-4.0, 4.0, 17, dtype=torch.float64)


def focal_loss_gradient(logits, positive, alpha, gamma):
    """Autograd on the true focal loss FL = -alpha (1 - p)^gamma ln p, p = prob. of the true class."""
    x = logits.clone().requires_grad_(True)
    p = torch.sigmoid(x if positive else -x)
    focal = -alpha * (1.0 - p) ** gamma * torch.log(p)
    (grad,) = torch.autograd.grad(focal.sum(), x)
    return grad


def confidence_gradient(logits, target_value, x0_value, alpha, gamma):
    x = logits.clone().requires_grad_(True)
    targets = torch.full_like(logits, target_value)
    x0 = torch.full_like(logits, x0_value)
    loss = components.confidence_loss(x, targets, x0, focal_alpha=alpha, focal_gamma=gamma)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    return grad


# x0 with ls2 = -ln 2, so that the foreground attenuation factor e^{-ls2} / 2 is exactly 1
UNIT_ATTENUATION_X0 = 3.0 * math.atanh(-math.log(2.0) / 3.0)


def test_soft_clamp_keeps_small_values_and_grows_logarithmically_above_the_limit():
    values = torch.tensor([-1.0, 0.0, 4.9, 5.0, 6.0, 105.0])
    clamped = components.soft_clamp(values, 5.0)
    expected = torch.tensor([-1.0, 0.0, 4.9, 5.0, 5.0 + math.log(2.0), 5.0 + math.log(101.0)])
    assert torch.allclose(clamped, expected)


def test_soft_clamp_has_unit_slope_at_the_limit_and_finite_gradients_everywhere():
    values = torch.tensor([5.0 + 1e-6, 0.0, -3.0], requires_grad=True)
    components.soft_clamp(values, 5.0).sum().backward()
    assert torch.allclose(values.grad, torch.tensor([1.0, 1.0, 1.0]), atol=1e-5)


@pytest.mark.parametrize('alpha', ALPHAS)
@pytest.mark.parametrize('gamma', GAMMAS)
def test_background_gradient_equals_the_focal_loss_gradient(alpha, gamma):
    logits = logits_grid()
    grad = confidence_gradient(logits, 0.0, 0.0, alpha, gamma)
    assert torch.allclose(grad, focal_loss_gradient(logits, False, alpha, gamma), atol=1e-10)


@pytest.mark.parametrize('alpha', ALPHAS)
@pytest.mark.parametrize('gamma', GAMMAS)
def test_foreground_gradient_equals_the_focal_loss_gradient_at_unit_attenuation(alpha, gamma):
    logits = logits_grid()
    grad = confidence_gradient(logits, 1.0, UNIT_ATTENUATION_X0, alpha, gamma)
    assert torch.allclose(grad, focal_loss_gradient(logits, True, alpha, gamma), atol=1e-10)


@pytest.mark.parametrize('x0', (-2.0, 0.0, 1.5))
def test_foreground_gradient_is_scaled_by_the_attenuation_factor(x0):
    logits = logits_grid()
    ls2 = 3.0 * math.tanh(x0 / 3.0)
    grad = confidence_gradient(logits, 1.0, x0, 0.5, 1.0)
    expected = 0.5 * math.exp(-ls2) * focal_loss_gradient(logits, True, 0.5, 1.0)
    assert torch.allclose(grad, expected, atol=1e-10)


def test_surrogate_gradient_is_exact_where_the_focal_gradient_exceeds_one():
    # alpha = 1, gamma = 2, p = 0.1: |dFL/dx| = 0.9 (0.81 + 2 * 0.9 * 0.1 * ln 10) = 1.102...,
    # where a smooth-L1 surrogate would cap the gradient at 1
    logit = torch.tensor([math.log(0.1 / 0.9)], dtype=torch.float64)
    grad = confidence_gradient(logit, 1.0, UNIT_ATTENUATION_X0, 1.0, 2.0)
    expected = -0.9 * (0.81 + 2 * 0.9 * 0.1 * math.log(10.0))
    assert grad.item() == pytest.approx(expected, abs=1e-10)
    assert abs(grad.item()) > 1.0


def test_foreground_value_at_zero_logit_hand_computed():
    # alpha 0.5, gamma 1, x = 0: p = p̄ = 1/2, g = 0.5 * 0.5 * (0.5 + 0.5 ln 2) = 0.2116434
    # l = g^2 / 2 = 0.0223964; x0 = 0 -> ls2 = 0: loss = l / 2 + 0 + 1.5
    zero, one = torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    loss = components.confidence_loss(zero, one, zero)
    g = 0.25 * (0.5 + 0.5 * math.log(2.0))
    assert g == pytest.approx(0.2116434, abs=1e-7)
    assert loss.item() == pytest.approx(0.5 * 0.5 * g * g + 1.5, abs=1e-12)
    assert loss.item() == pytest.approx(1.5111982, abs=1e-6)


def test_background_value_is_the_plain_surrogate_without_attenuation():
    # background x = 0: same g as a positive at 0, no attenuation, no offset; x0 plays no role
    for x0 in (-5.0, 0.0, 5.0):
        loss = components.confidence_loss(torch.zeros(1), torch.zeros(1), torch.full((1,), x0))
        assert loss.item() == pytest.approx(0.5 * 0.2116434 ** 2, abs=1e-6)


def test_background_clamp_zeroes_loss_and_gradient_of_very_confident_negatives():
    logits = torch.tensor([-16.0, -14.0], requires_grad=True)
    loss = components.confidence_loss(logits, torch.zeros(2), torch.zeros(2))
    loss.sum().backward()
    assert loss[0].item() == 0.0 and logits.grad[0].item() == 0.0
    assert loss[1].item() > 0.0 and logits.grad[1].item() > 0.0


def test_background_clamp_does_not_apply_to_positives():
    logits = torch.tensor([-16.0], requires_grad=True)
    loss = components.confidence_loss(logits, torch.ones(1), torch.full((1,), UNIT_ATTENUATION_X0))
    loss.sum().backward()
    # a positive at x = -16 has p̄ ~ 1: gradient -alpha = -0.5 (gamma = 1)
    assert logits.grad.item() == pytest.approx(-0.5, abs=1e-5)


def test_x0_receives_gradient_only_from_foreground_elements():
    x0 = torch.zeros(4, requires_grad=True)
    logits, targets = torch.tensor([1.0, -1.0, 0.5, 2.0]), torch.tensor([1.0, 0.0, 0.0, 1.0])
    loss = components.confidence_loss(logits, targets, x0)
    loss.sum().backward()
    assert x0.grad[1].item() == 0.0 and x0.grad[2].item() == 0.0
    assert x0.grad[0].item() != 0.0 and x0.grad[3].item() != 0.0


def test_values_are_non_negative_and_reach_the_infimum_zero_for_confident_foreground():
    generator = torch.Generator().manual_seed(0)
    logits = 30.0 * torch.randn(10000, generator=generator)
    targets = (torch.rand(10000, generator=generator) > 0.5).float()
    x0 = 30.0 * torch.randn(10000, generator=generator)
    loss = components.confidence_loss(logits, targets, x0, focal_alpha=1.0, focal_gamma=2.0)
    assert torch.isfinite(loss).all() and (loss >= 0.0).all()
    # a perfect positive with the smallest log-variance: l -> 0, ls2 -> -3, loss -> 0
    best = components.confidence_loss(torch.tensor([40.0]), torch.ones(1), torch.tensor([-100.0]))
    assert best.item() == pytest.approx(0.0, abs=1e-6)
