"""Scale loss: relative L1 error of softplus(x), soft clamped, then Huber."""

import math

import pytest
import torch

from openfields import headmeta
from openfields.network.losses import CompositeLoss, LossSettings, components


def inverse_softplus(value):
    return math.log(math.expm1(value))


def scale(predicted_scale, target, **kwargs):
    x = torch.tensor([inverse_softplus(predicted_scale)], dtype=torch.float64, requires_grad=True)
    loss = components.scale_loss(x, torch.tensor([target], dtype=torch.float64), **kwargs)
    loss.sum().backward()
    return loss.item(), x.grad.item()


def test_zero_loss_and_gradient_when_softplus_of_the_prediction_equals_the_target():
    for target in (0.5, 3.0, 40.0):
        value, grad = scale(target, target)
        assert value == pytest.approx(0.0, abs=1e-12)
        assert grad == pytest.approx(0.0, abs=1e-9)


def test_small_relative_error_is_quadratic_hand_computed():
    # t = 1, softplus(x) = 2: d = 1 / (0.1 + 1) = 0.9090909, loss = d^2 / 2 = 0.4132231
    # gradient d * (1 / 1.1) * sigmoid(x) with sigmoid(softplus^-1(2)) = 1 - e^-2
    value, grad = scale(2.0, 1.0)
    assert value == pytest.approx(0.4132231, abs=1e-7)
    assert grad == pytest.approx(0.9090909 / 1.1 * (1.0 - math.exp(-2.0)), abs=1e-6)


def test_large_relative_error_is_linear_and_b_scale_divides_it():
    # t = 1, softplus(x) = 4.3: d = 3.3 / 1.1 = 3 -> loss = d - 1/2 = 2.5; b_scale 2: d = 1.5 -> 1.0
    assert scale(4.3, 1.0)[0] == pytest.approx(2.5, abs=1e-9)
    assert scale(4.3, 1.0, b_scale=2.0)[0] == pytest.approx(1.0, abs=1e-9)


def test_scale_soft_clamp_limits_the_relative_error():
    # d = 22 / 1.1 = 20 -> 5 + ln 16 -> Huber: 4.5 + ln 16
    assert scale(23.0, 1.0)[0] == pytest.approx(4.5 + math.log(16.0), abs=1e-9)
    assert scale(23.0, 1.0, soft_clamp_value=50.0)[0] == pytest.approx(19.5, abs=1e-9)


def test_nan_scale_targets_are_masked_in_the_composite_loss():
    meta = headmeta.Cif(name='cif', dataset='test', keypoints=['a', 'b', 'c'], sigmas=[0.1] * 3)
    x = torch.zeros(1, 3, 5, 2, 2, dtype=torch.float64)
    x[:, :, 4] = inverse_softplus(2.0)
    t = torch.full((1, 3, 5, 2, 2), float('nan'), dtype=torch.float64)
    t[0, 0, 4, 0, 0] = 1.0  # the only finite scale target: loss 0.4132231 as above
    x.requires_grad_(True)
    losses = CompositeLoss(meta, LossSettings())(x, t)
    losses['test.cif.scales'].backward()
    assert losses['test.cif.scales'].item() == pytest.approx(0.4132231, abs=1e-7)
    assert torch.isfinite(x.grad).all()
    assert torch.count_nonzero(x.grad[:, :, 4]).item() == 1


def test_caf_scales_compare_channels_six_and_seven_with_targets_seven_and_eight():
    meta = headmeta.Caf(name='caf', dataset='test', keypoints=['a', 'b'], sigmas=[0.1, 0.1],
                        skeleton=[(1, 2)])
    x = torch.zeros(1, 1, 8, 1, 1, dtype=torch.float64)
    x[0, 0, 6:8, 0, 0] = torch.tensor([inverse_softplus(2.0), inverse_softplus(5.0)])
    t = torch.full((1, 1, 9, 1, 1), float('nan'), dtype=torch.float64)
    t[0, 0, 7:9, 0, 0] = torch.tensor([2.0, 5.0])
    loss = CompositeLoss(meta, LossSettings())
    assert loss(x, t)['test.caf.scales'].item() == pytest.approx(0.0, abs=1e-12)
    t[0, 0, 7:9, 0, 0] = torch.tensor([5.0, 2.0])  # swapped targets
    assert loss(x, t)['test.caf.scales'].item() > 1.0
